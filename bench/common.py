"""Shared pieces of the benchmarks: landing generated data through the ``lakehouse generate`` command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Generated:
    """What one ``lakehouse generate`` run landed: its summary (truth/generation.json), wall time and output."""

    summary: dict
    seconds: float
    stdout: str


def generate_landing(data_root: Path, *, start: str, days: int, orders_per_day: int, customers: int, seed: int,
                     extra: Sequence[str] = ()) -> Generated:
    """Run ``lakehouse generate`` in a subprocess (its own time and memory) with only ``LAKEHOUSE_DATA_ROOT`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_DATA_ROOT"] = str(data_root)
    cmd = [sys.executable, "-m", "lakehouse.cli", "generate", "--start", str(start), "--days", str(days),
           "--orders-per-day", str(orders_per_day), "--customers", str(customers), "--seed", str(seed),
           *extra, "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"lakehouse generate failed (exit {proc.returncode})")
    summary = json.loads((Path(data_root) / "truth" / "generation.json").read_text())
    return Generated(summary, seconds, proc.stdout)


def machine_probe(scale: float = 1.0, repeats: int = 3) -> dict:
    """How fast this machine is right now, on two fixed single-thread workloads (best of ``repeats``, about 0.5 s at
    ``scale=1``): a pure-Python loop (what JSON triage and the driver pay) and SHA-256 over memory (native code, like
    the engine's hashing). This machine's speed drifts between sessions by a third or more for the same code, so each
    benchmark records the probe beside its figures: compare runs through it, not across raw seconds alone."""
    n = max(1, int(2_000_000 * scale))
    block = bytes(range(256)) * 4096  # 1 MiB
    mib = max(1, int(64 * scale))
    loop_s, hash_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        acc = 0
        for i in range(n):
            acc += i & 7
        loop_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        h = hashlib.sha256()
        for _ in range(mib):
            h.update(block)
        h.digest()
        hash_s.append(time.perf_counter() - t0)
    return {
        "python_loop_ns_per_iter": round(min(loop_s) / n * 1e9, 1),
        "sha256_mib_per_s": round(mib / min(hash_s), 1),
    }
