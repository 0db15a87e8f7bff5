"""Benchmark: refine (bronze -> silver, including the quality gate) about 1 million order lines plus every other entity
at matching scale, and the gate's share of that time.

    .venv/bin/python bench/refine.py                                   # ~1M order lines, results/refine.json
    .venv/bin/python bench/refine.py --orders-per-day 2000 --days 2 --customers 5000   # a quick look
    .venv/bin/python bench/refine.py --data-root /tmp/x --keep         # keep the data; a rerun with the same
                                                                       # --data-root skips generate + ingest

Steps: ``lakehouse generate`` (a subprocess) and ``flows.ingest.ingest_days`` build the bronze tables (not timed as
refine); then ``flows.refine.refine_days`` runs every silver table for every day in this process, with the time spent
inside ``run_gate`` (GX checkpoint, staging, the split's failing-row lookup) measured separately; then a rerun of the
same days checks that nothing changes. The gate's split (anti/inner joins) is lazy and runs inside the later writes,
so the "gate share" is a lower bound. Prints the figures and writes them as JSON.
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

from bench.common import generate_landing  # noqa: E402


def _generate(root: Path, args) -> float:
    """Run ``lakehouse generate`` in a subprocess; return its wall time."""
    return generate_landing(root, start=args.start, days=args.days, orders_per_day=args.orders_per_day,
                            customers=args.customers, seed=args.seed, extra=("--bad-share", str(args.bad_share))).seconds


def main(argv: list[str] | None = None) -> int:
    """Build bronze at the given scale, refine every day, report rows/s and the gate's share."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", default="2026-01-01")
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--orders-per-day", type=int, default=115_000, help="before seasonality (January is 0.7x)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bad-share", type=float, default=0.01)
    p.add_argument("--data-root", help="where to build the data (default: a temporary folder, deleted afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the data folder")
    p.add_argument("--no-rerun", action="store_true", help="skip the idempotent rerun")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "refine.json"))
    args = p.parse_args(argv)

    from flows import refine as R
    from lakehouse.settings import load_settings
    from lakehouse.spark import get_spark, stop_spark

    root = Path(args.data_root) if args.data_root else Path(tempfile.mkdtemp(prefix="lakehouse-bench-refine-"))
    keep = args.keep or bool(args.data_root)
    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    result: dict = {}
    try:
        settings = load_settings(data_root=str(root), landing_root=str(root / "landing"),
                                 warehouse_root=str(root / "warehouse"), truth_root=str(root / "truth"))
        bronze_ready = (root / "warehouse" / "bronze").exists()
        gen_s = ingest_s = None
        if not bronze_ready:
            gen_s = _generate(root, args)
            print(f"generated {args.days} day(s) in {gen_s:.1f}s", flush=True)
        t0 = time.perf_counter()
        spark = get_spark(settings)
        engine_s = time.perf_counter() - t0
        if not bronze_ready:
            from flows.ingest import ingest_days

            t0 = time.perf_counter()
            ingest_days(settings, days)
            ingest_s = time.perf_counter() - t0
            print(f"ingested in {ingest_s:.1f}s", flush=True)

        # Great Expectations' first import costs seconds to tens of seconds: pay it before timing (reported apart).
        from expectations.rules import load_suite
        from lakehouse.catalog import SILVER_TABLES

        t0 = time.perf_counter()
        for spec in SILVER_TABLES:
            load_suite(spec.qualified)
        gx_import_s = time.perf_counter() - t0

        # Time spent inside the gate, per table.
        gate_s: dict[str, float] = {}
        real_gate = R._gate

        def timed_gate(spark_, df, *, table, run_id, settings, scope):
            t = time.perf_counter()
            try:
                return real_gate(spark_, df, table=table, run_id=run_id, settings=settings, scope=scope)
            finally:
                gate_s[table] = gate_s.get(table, 0.0) + time.perf_counter() - t

        R._gate = timed_gate
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runs = R.refine_days(settings, days)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        R._gate = real_gate
        per_table: dict[str, dict] = {}
        for r in runs:
            t = per_table.setdefault(r.table_name, {"rows_in": 0, "rows_out": 0, "rows_quarantined": 0,
                                                    "rows_deduplicated": 0, "seconds": 0.0})
            for k in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"):
                t[k] += getattr(r, k)
            t["seconds"] = round(t["seconds"] + r.duration_s, 2)
        for name, t in per_table.items():
            t["gate_seconds"] = round(gate_s.get(name, 0.0), 2)
            t["rows_per_s"] = round(t["rows_in"] / t["seconds"]) if t["seconds"] else None
        rows_in = sum(r.rows_in for r in runs)
        lines_in = per_table.get("silver.order_lines", {}).get("rows_in", 0)
        total_gate = sum(gate_s.values())
        rerun = None
        if not args.no_rerun:
            t0 = time.perf_counter()
            again = R.refine_days(settings, days)
            rerun = {"seconds": round(time.perf_counter() - t0, 2), "rows_out": sum(r.rows_out for r in again),
                     "balanced": all(r.balanced for r in again)}
        result = {
            "benchmark": "refine (bronze -> silver, including the quality gate)",
            "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
            "params": {k: v for k, v in vars(args).items() if k not in ("out", "keep", "data_root")},
            "days": len(days),
            "order_lines_in": lines_in,
            "rows_in": rows_in,
            "rows_out": sum(r.rows_out for r in runs),
            "rows_quarantined": sum(r.rows_quarantined for r in runs),
            "rows_deduplicated": sum(r.rows_deduplicated for r in runs),
            "all_balanced": all(r.balanced for r in runs),
            "generate_s": round(gen_s, 2) if gen_s is not None else None,
            "ingest_s": round(ingest_s, 2) if ingest_s is not None else None,
            "engine_start_s": round(engine_s, 2),
            "gx_import_s": round(gx_import_s, 2),
            "refine_s": round(wall, 2),
            "refine_client_cpu_s": round(cpu, 2),
            "rows_per_s": round(rows_in / wall) if wall else None,
            "order_lines_per_s": round(lines_in / per_table["silver.order_lines"]["seconds"]) if lines_in else None,
            "gate_s": round(total_gate, 2),
            "gate_share": round(total_gate / wall, 3) if wall else None,
            "tables": per_table,
            "rerun": rerun,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        stop_spark()
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif args.keep and not args.data_root:
            print(f"data kept in {root}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'table':<30}{'rows in':>10}{'out':>10}{'quar.':>8}{'dedup':>9}{'s':>8}{'gate s':>8}{'rows/s':>9}")
    for name, t in result["tables"].items():
        print(f"{name:<30}{t['rows_in']:>10,}{t['rows_out']:>10,}{t['rows_quarantined']:>8,}{t['rows_deduplicated']:>9,}"
              f"{t['seconds']:>8.1f}{t['gate_seconds']:>8.1f}{(t['rows_per_s'] or 0):>9,}")
    print(f"\nrefined {result['rows_in']:,} bronze rows ({result['order_lines_in']:,} order lines) over {result['days']} "
          f"day(s) in {result['refine_s']}s: {result['rows_per_s']:,} rows/s overall, "
          f"{result['order_lines_per_s']:,} order lines/s; gate {result['gate_s']}s = {result['gate_share']:.0%} of the "
          f"time; accounting balanced: {result['all_balanced']}; rerun: {result['rerun']}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
