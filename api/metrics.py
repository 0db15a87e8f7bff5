"""Prometheus text exposition (format 0.0.4), written by hand: request counts and latency by route template, and the
state of the gold index. Updated from the event loop only, so no locks are needed on the hot path."""

from __future__ import annotations

import bisect
import resource
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.repository import GoldRepository

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and latency histograms keyed by (method, route template, status)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests[(method, route, status)] += 1
        key = (method, route)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] += seconds

    def render(self, repository: "GoldRepository | None" = None) -> str:
        """The exposition text."""
        out = [
            "# HELP lakehouse_api_requests_total HTTP requests by method, route template and status.",
            "# TYPE lakehouse_api_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(f'lakehouse_api_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
        out += [
            "# HELP lakehouse_api_request_duration_seconds Time to answer, by method and route template.",
            "# TYPE lakehouse_api_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.buckets.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            running = 0
            for bound, n in zip(BUCKETS, counts):
                running += n
                out.append(f'lakehouse_api_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
            running += counts[-1]
            out.append(f'lakehouse_api_request_duration_seconds_bucket{{{labels},le="+Inf"}} {running}')
            out.append(f"lakehouse_api_request_duration_seconds_sum{{{labels}}} {self.sums[(method, route)]:.6f}")
            out.append(f"lakehouse_api_request_duration_seconds_count{{{labels}}} {running}")
        out += _gauges(repository)
        return "\n".join(out) + "\n"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def _gauges(repository: "GoldRepository | None") -> list[str]:
    snap = repository.snapshot if repository is not None else None
    lines = [
        "# HELP lakehouse_api_gold_loaded 1 when a gold publication is loaded and served.",
        "# TYPE lakehouse_api_gold_loaded gauge",
        f"lakehouse_api_gold_loaded {0 if snap is None else 1}",
        "# HELP lakehouse_api_manifest_version Version of the publication manifest being served (0: none).",
        "# TYPE lakehouse_api_manifest_version gauge",
        f"lakehouse_api_manifest_version {0 if snap is None else snap.version}",
        "# HELP lakehouse_api_gold_customers Golden customers in the served index.",
        "# TYPE lakehouse_api_gold_customers gauge",
        f"lakehouse_api_gold_customers {0 if snap is None else snap.n}",
        "# HELP lakehouse_api_index_bytes Bytes held by the served index's arrays.",
        "# TYPE lakehouse_api_index_bytes gauge",
        f"lakehouse_api_index_bytes {0 if snap is None else snap.memory_bytes()}",
        "# HELP lakehouse_api_index_load_seconds Time the served index took to read and build.",
        "# TYPE lakehouse_api_index_load_seconds gauge",
        f"lakehouse_api_index_load_seconds {0 if snap is None else snap.load_seconds}",
        "# HELP lakehouse_api_process_resident_bytes Resident memory of the API process.",
        "# TYPE lakehouse_api_process_resident_bytes gauge",
        f"lakehouse_api_process_resident_bytes {_rss_bytes()}",
    ]
    if repository is not None:
        lines += [
            "# HELP lakehouse_api_reloads_total Publication reloads by outcome.",
            "# TYPE lakehouse_api_reloads_total counter",
            f'lakehouse_api_reloads_total{{outcome="ok"}} {repository.reloads_ok}',
            f'lakehouse_api_reloads_total{{outcome="failed"}} {repository.reloads_failed}',
        ]
    return lines
