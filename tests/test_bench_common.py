"""The benchmarks' shared machine probe: figures a reader can compare runs through."""

from __future__ import annotations

import math

from bench.common import machine_probe


def test_machine_probe_reports_finite_positive_speeds():
    probe = machine_probe(scale=0.05, repeats=2)
    assert set(probe) == {"python_loop_ns_per_iter", "sha256_mib_per_s"}
    for key in ("python_loop_ns_per_iter", "sha256_mib_per_s"):
        assert math.isfinite(probe[key]) and probe[key] > 0, probe
    # Sanity bounds wide enough for any machine this runs on: a loop step between 1 ns and 10 us, hashing between
    # 1 MiB/s and 100 GiB/s. A unit mix-up (seconds for nanoseconds, bytes for MiB) falls outside them.
    assert 1 <= probe["python_loop_ns_per_iter"] <= 10_000, probe
    assert 1 <= probe["sha256_mib_per_s"] <= 100_000, probe
