"""Benchmark: generate about 1 million order lines (online + store) plus every other entity at matching scale.

Prints the figures and writes them to ``bench/results/generate.json``. The landing output goes to a temporary
folder that is deleted afterwards (``--keep`` keeps it). Wall time depends on how busy the machine is; CPU time
(user + system) is reported too.

    .venv/bin/python bench/generate.py                       # ~1M order lines: 50k customers, 4 days
    .venv/bin/python bench/generate.py --orders-per-day 2000 --days 2 --customers 5000   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    """Run one generation at the given scale and report its speed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", default="2026-01-01")
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--orders-per-day", type=int, default=115_000, help="before seasonality (January is 0.7x)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "generate.json"))
    p.add_argument("--keep", action="store_true", help="keep the generated data (printed path)")
    args = p.parse_args(argv)

    from generator import generate
    from lakehouse.settings import load_settings

    root = Path(tempfile.mkdtemp(prefix="lakehouse-bench-generate-"))
    try:
        settings = load_settings(data_root=str(root), landing_root=str(root / "landing"),
                                 warehouse_root=str(root / "warehouse"), truth_root=str(root / "truth"))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = generate(settings, start=dt.date.fromisoformat(args.start), days=args.days, customers=args.customers,
                           orders_per_day=args.orders_per_day, seed=args.seed, bad_share=0.01, formats={},
                           progress=sys.stderr.isatty())
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size = sum(f.stat().st_size for f in (root / "landing").rglob("*") if f.is_file())
        result = {
            "benchmark": "generate",
            "params": vars(args) | {"out": None, "keep": None},
            "order_lines": summary.order_lines,
            "rows_total": summary.total_rows,
            "rows": {f"{s}.{e}": n for (s, e), n in sorted(summary.rows.items())},
            "bad_records": summary.bad_record_count,
            "files": len(summary.files),
            "landing_bytes": size,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "order_lines_per_s_wall": round(summary.order_lines / wall),
            "rows_per_s_wall": round(summary.total_rows / wall),
            "order_lines_per_s_cpu": round(summary.order_lines / cpu),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "measured_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(summary.describe())
    print(f"\n{result['order_lines']:,} order lines ({result['rows_total']:,} rows, {size / 1e6:,.0f} MB) in "
          f"{result['wall_s']}s wall / {result['cpu_s']}s CPU: {result['order_lines_per_s_wall']:,} order lines/s "
          f"(wall), peak RSS {result['peak_rss_mb']} MB, load average {result['load_average_1m']}")
    if args.keep:
        print(f"kept: {root}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
