"""Benchmark: land (generate) and ingest about 1 million order lines plus the other entities at matching scale.

    .venv/bin/python bench/ingest.py                      # ~1M order lines (online + POS), results/ingest.json
    .venv/bin/python bench/ingest.py --order-lines 50000  # a quick run

Steps: a small calibration generate measures order lines per order; the real generate runs as a subprocess
(``lakehouse generate``), so its time and peak memory are its own; then ``flows.ingest.ingest_days`` runs in this
process (with the embedded Sail engine, whose memory counts here), then a rerun of the same days checks that nothing is
loaded twice. Prints the figures and writes them as JSON.
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

ORDER_LINE_TABLES = ("bronze.online_order_lines", "bronze.pos_transaction_lines")


def _generate(data_root: Path, start: str, days: int, orders_per_day: int, customers: int, seed: int) -> float:
    """Run ``lakehouse generate`` in a subprocess; return its wall time."""
    run = generate_landing(data_root, start=start, days=days, orders_per_day=orders_per_day, customers=customers,
                           seed=seed)
    summary = [line for line in run.stdout.splitlines() if line.startswith(("order lines", "took"))]
    print(f"generate {days} day(s) x {orders_per_day} orders: " + "; ".join(summary), flush=True)
    return run.seconds


def _landed_order_lines(data_root: Path) -> int:
    """Order-line records in a landing tree, counted with the bronze readers (no engine needed)."""
    from transforms.bronze.readers import read_landing_file
    from transforms.bronze.schemas import file_format

    total = 0
    for sub in ("online/order_lines", "pos/transaction_lines"):
        for path in sorted((data_root / "landing" / sub).rglob("*")):
            if path.is_file() and not path.name.startswith((".", "_")):
                fmt = file_format(path.name, "csv")
                total += read_landing_file(path.read_bytes(), file_format=fmt).records
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order-lines", type=int, default=1_000_000, help="target order lines (online + POS)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", help="where to put landing and warehouse (default: a temp folder, removed)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ingest.json"))
    args = parser.parse_args()

    load_start = round(os.getloadavg()[0], 2)  # other processes on a shared machine skew the figures
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        # 1. calibration: order lines per order at this seed.
        calib_root = work / "calibration"
        calib_orders = 2000
        _generate(calib_root, args.start, 1, calib_orders, min(args.customers, 2000), args.seed)
        lines_per_order = max(_landed_order_lines(calib_root) / calib_orders, 0.1)
        shutil.rmtree(calib_root, ignore_errors=True)
        orders_per_day = max(1, round(args.order_lines / lines_per_order / args.days))
        print(f"calibration: {lines_per_order:.2f} order lines per order -> {orders_per_day} orders/day x {args.days} days",
              flush=True)

        # 2. land: generate the landing files (subprocess: its own time and peak memory).
        data_root = work / "lh"
        land_s = _generate(data_root, args.start, args.days, orders_per_day, args.customers, args.seed)
        land_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        landing_bytes = sum(p.stat().st_size for p in (data_root / "landing").rglob("*") if p.is_file())

        # 3. ingest in this process (embedded Sail included in this process's memory).
        os.environ["LAKEHOUSE_DATA_ROOT"] = str(data_root)
        from flows.ingest import ingest_days
        from lakehouse.settings import load_settings
        from lakehouse.spark import get_spark, stop_spark

        settings = load_settings()
        start = dt.date.fromisoformat(args.start)
        days = [start + dt.timedelta(days=i) for i in range(args.days)]
        t0 = time.perf_counter()
        get_spark(settings)
        engine_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runs = ingest_days(settings, days)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerun = ingest_days(settings, days)
        rerun_s = time.perf_counter() - t0
        ingest_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stop_spark()

        rows = sum(r.rows_out for r in runs)
        rows_in = sum(r.rows_in for r in runs)
        order_lines = sum(r.rows_out for r in runs if r.table_name in ORDER_LINE_TABLES)
        per_table: dict[str, int] = {}
        for r in runs:
            per_table[r.table_name] = per_table.get(r.table_name, 0) + r.rows_out
        malformed = sum(int(r.message.split("malformed=")[1].split()[0]) for r in runs if "malformed=" in r.message)
        result = {
            "benchmark": "land + ingest (landing -> bronze)",
            "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_avg_1m_at_start": load_start, "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
            "days": args.days,
            "orders_per_day": orders_per_day,
            "order_lines": order_lines,
            "rows_landed": rows_in,
            "rows_ingested": rows,
            "rows_malformed_kept": malformed,
            "files_loaded": sum(r.files_loaded for r in runs),
            "files_rejected": sum(r.files_rejected for r in runs),
            "landing_mb": round(landing_bytes / 1e6, 1),
            "land_s": round(land_s, 2),
            "land_rows_per_s": round(rows_in / land_s) if land_s else None,
            "land_order_lines_per_s": round(order_lines / land_s) if land_s else None,
            "land_peak_rss_mb": round(land_peak_mb),
            "engine_start_s": round(engine_s, 2),
            "ingest_s": round(ingest_s, 2),
            "ingest_rows_per_s": round(rows / ingest_s) if ingest_s else None,
            "ingest_order_lines_per_s": round(order_lines / ingest_s) if ingest_s else None,
            "ingest_peak_rss_mb": round(ingest_peak_mb),
            "rerun_s": round(rerun_s, 2),
            "rerun_rows_loaded": sum(r.rows_out for r in rerun),
            "rows_per_table": dict(sorted(per_table.items())),
        }
        print(json.dumps(result, indent=2))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {out}")
        if result["rerun_rows_loaded"]:
            print("error: the rerun loaded rows again", file=sys.stderr)
            return 1
        return 0
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
