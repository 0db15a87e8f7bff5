"""Benchmark: silver -> gold (publish) rows/s at about 1 million silver order lines.

    .venv/bin/python bench/publish.py                         # ~1M order lines: generate, ingest, refine, then publish
    .venv/bin/python bench/publish.py --order-lines 50000     # a quick run
    .venv/bin/python bench/publish.py --work-dir W --reuse    # publish again over the silver already in W

Steps: generate landing files (``lakehouse generate`` in a subprocess), ingest and refine them (not timed here: those
layers have their own benchmarks), then time ``flows.publish.publish_day`` for the last day, which rebuilds every gold
table from all silver up to that day (identity first), gates them and writes the manifest. rows/s = silver order lines
/ publish seconds. The per-table build times, the gate's share and the identity step are reported separately.
Prints the figures and writes ``bench/results/publish.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
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


def _generate(data_root: Path, start: str, days: int, orders_per_day: int, customers: int, seed: int) -> dict:
    """Run ``lakehouse generate`` in a subprocess; return its summary (generation.json)."""
    return generate_landing(data_root, start=start, days=days, orders_per_day=orders_per_day, customers=customers,
                            seed=seed).summary


def _count(spark, settings, qualified: str) -> int:
    from pyspark.sql import functions as F

    from lakehouse import delta
    from lakehouse.catalog import table

    spec = table(qualified)
    if not delta.table_exists(spec, settings):
        return 0
    # a scan, not count() on the bare table (which Delta may answer from its log)
    return int(delta.read_table(spark, spec, settings).select(F.sum(F.lit(1))).collect()[0][0] or 0)


def main() -> int:
    """Prepare silver (unless --reuse), time one publish, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order-lines", type=int, default=1_000_000, help="target order lines (online + POS)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", help="data root (default: a temp folder, removed at the end)")
    parser.add_argument("--reuse", action="store_true", help="skip generate/ingest/refine: silver is in --work-dir")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "publish.json"))
    args = parser.parse_args()

    os.environ.setdefault("RUST_LOG", "error")
    load_start = round(os.getloadavg()[0], 2)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-publish-"))
    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    from lakehouse.settings import load_settings
    from lakehouse.spark import get_spark, stop_spark

    settings = load_settings(data_root=str(work), spark_remote=os.environ.get("SPARK_REMOTE") or None)
    result: dict = {"benchmark": "publish (silver -> gold, write-audit-publish)",
                    "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        prep = {}
        if args.reuse and Path(args.out).exists():  # keep the preparation figures of the run that made this silver
            previous = json.loads(Path(args.out).read_text())
            prep = {k: previous[k] for k in ("generate_s", "orders_per_day", "landed_order_lines", "ingest_s", "refine_s")
                    if k in previous}
            if prep:
                prep["prep_from_previous_run"] = previous.get("when")
        if not args.reuse:
            if work.exists() and args.work_dir:
                shutil.rmtree(work)
            # calibration: order lines per order at this seed
            calib = work.parent / f"{work.name}-calibration"
            g = _generate(calib, args.start, 1, 2000, 2000, args.seed)
            per_order = g["order_lines"] / 2000
            shutil.rmtree(calib, ignore_errors=True)
            orders_per_day = max(1, round(args.order_lines / per_order / args.days))
            t0 = time.perf_counter()
            g = _generate(work, args.start, args.days, orders_per_day, args.customers, args.seed)
            prep["generate_s"] = round(time.perf_counter() - t0, 1)
            prep["orders_per_day"] = orders_per_day
            prep["landed_order_lines"] = g["order_lines"]
            print(f"generated {g['order_lines']:,} order lines in {prep['generate_s']}s", flush=True)
            from flows.ingest import ingest_days
            from flows.refine import refine_days

            t0 = time.perf_counter()
            ingest_days(settings, days)
            prep["ingest_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            refine_days(settings, days)
            prep["refine_s"] = round(time.perf_counter() - t0, 1)
            print(f"ingested in {prep['ingest_s']}s, refined in {prep['refine_s']}s", flush=True)
        spark = get_spark(settings)
        silver_lines = _count(spark, settings, "silver.order_lines")
        silver_events = _count(spark, settings, "silver.events")
        silver_customers = _count(spark, settings, "silver.customers")
        print(f"silver: {silver_lines:,} order lines, {silver_events:,} events, {silver_customers:,} customer records", flush=True)

        provisional = importlib.util.find_spec("flows.identity") is None
        if provisional:  # until the identity step exists: one golden customer per source record
            from flows.publish import _identity_tables
            from lakehouse import delta
            from lakehouse.catalog import TableSpec

            for name, df in _identity_tables(spark, settings).items():
                delta.overwrite(df, TableSpec("gold", name), settings)

        from flows.publish import publish_day
        from lakehouse.manifest import latest_manifest

        t0 = time.perf_counter()
        runs = publish_day(settings, days[-1])
        publish_s = time.perf_counter() - t0
        manifest = latest_manifest(settings)
        is_identity = lambda r: r.layer != "publish" or r.message.startswith(("identity", "not published"))  # noqa: E731
        gold_runs = [r for r in runs if not is_identity(r)]
        other_runs = [r for r in runs if is_identity(r)]
        gate_s = float(manifest.gates.get("seconds") or 0.0)
        build_s = sum(r.duration_s for r in gold_runs)
        result.update({
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_avg_1m_at_start": load_start},
            "days": args.days,
            **prep,
            "silver_order_lines": silver_lines,
            "silver_events": silver_events,
            "silver_customer_records": silver_customers,
            "identity": "provisional (flows.identity not installed)" if provisional else "flows.identity.resolve_customers",
            "identity_runs": [{"table": r.table_name, "seconds": r.duration_s, "message": r.message[:300]} for r in other_runs],
            "publish_s": round(publish_s, 1),
            "publish_order_lines_per_s": round(silver_lines / publish_s) if publish_s else None,
            "build_and_write_s": round(build_s, 1),
            "gate_s": round(gate_s, 1),
            "gate_share": round(gate_s / publish_s, 3) if publish_s else None,
            "manifest_version": manifest.version,
            "tables": {r.table_name: {"rows": r.rows_out, "seconds": r.duration_s} for r in gold_runs},
            "gate_seconds_per_table": {t: g.get("seconds") for t, g in manifest.gates.get("tables", {}).items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        })
    finally:
        stop_spark()
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"publish: {result['silver_order_lines']:,} silver order lines -> gold in {result['publish_s']}s "
          f"= {result['publish_order_lines_per_s']:,} order lines/s (build+write {result['build_and_write_s']}s, "
          f"gate {result['gate_s']}s = {100 * (result['gate_share'] or 0):.0f}%)")
    for name, t in sorted(result["tables"].items(), key=lambda kv: -kv[1]["seconds"])[:8]:
        print(f"  {name:<36} {t['rows']:>10,} rows {t['seconds']:>7.1f}s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
