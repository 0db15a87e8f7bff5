"""``lakehouse demo``: generate a few small days of retail data and run the whole pipeline for each, then summarize."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from flows.orchestration import DayResult, run_day
from lakehouse.runs import TableRun
from lakehouse.settings import Settings
from lakehouse.storage import parse_date

_LAYER_OF_TABLE = {"bronze": "ingest", "silver": "refine", "gold": "publish"}


def _totals(runs: list[TableRun]) -> tuple[int, int, int, int]:
    return (
        sum(r.rows_in for r in runs), sum(r.rows_out for r in runs), sum(r.rows_quarantined for r in runs),
        sum(r.rows_deduplicated for r in runs),
    )


def _published_rows(settings: Settings, ref) -> int | None:
    """Rows of a published table at its manifest version (from the Parquet footers of that version's files)."""
    from deltalake import DeltaTable

    try:
        table = DeltaTable(ref.location, version=ref.delta_version, storage_options=settings.delta_storage_options() or None)
        return int(table.to_pyarrow_dataset().count_rows())
    except Exception:  # noqa: BLE001 - a summary line is not worth failing the demo
        return None


def summary_lines(results: list[DayResult], settings: Settings) -> list[str]:
    """The demo's closing summary: per day and layer, then the publication in force."""
    lines = ["", "day         layer    tables      rows in     rows out  quarantined  deduplicated   seconds"]
    for res in results:
        for layer, runs in res.runs.items():
            rin, rout, quar, dedup = _totals(runs)
            secs = res.layer_seconds.get(layer, sum(float(r.duration_s) for r in runs))
            lines.append(f"{res.day}  {layer:<7} {len(runs):>7} {rin:>12,} {rout:>12,} {quar:>12,} {dedup:>13,} {secs:>9.1f}")
    try:
        from lakehouse.manifest import latest_manifest

        manifest = latest_manifest(settings)
    except ModuleNotFoundError:
        manifest = None
    if manifest is None:
        lines.append("\nno publication manifest yet (the gold layer did not publish)")
        return lines
    lines.append(f"\npublished gold: manifest v{manifest.version} for {manifest.run_date} "
                 f"({len(manifest.tables)} tables, run {manifest.run_id})")
    for name in sorted(manifest.tables):
        ref = manifest.table(name)
        rows = ref.rows if ref.rows is not None else _published_rows(settings, ref)
        shown = f"{rows:>10,}" if rows is not None else f"{'?':>10}"
        lines.append(f"  {name:<36} {shown} rows  (Delta version {ref.delta_version})")
    return lines


def run_demo(settings: Settings, gen: argparse.Namespace) -> int:
    """Generate ``gen.days`` days with the generate command's defaults, run the pipeline for each, print a summary."""
    from generator import check_parameters, generate

    t0 = time.perf_counter()
    start = parse_date(gen.start)
    check_parameters(days=gen.days, customers=gen.customers, orders_per_day=gen.orders_per_day, bad_share=gen.bad_share)
    print(f"generating {gen.days} day(s) from {start} into {settings.landing_root} ...", flush=True)
    summary = generate(
        settings, start=start, days=gen.days, customers=gen.customers, orders_per_day=gen.orders_per_day,
        seed=gen.seed, bad_share=gen.bad_share, formats={}, progress=False,
    )
    print(summary.describe(), flush=True)
    results = []
    for i in range(gen.days):
        day = start + dt.timedelta(days=i)
        print(f"\n== pipeline {day} ==", flush=True)
        results.append(run_day(settings, day))
    for line in summary_lines(results, settings):
        print(line)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; data under {settings.warehouse_root}")
    print("next: `lakehouse server` (Prefect UI on http://127.0.0.1:4200) and `lakehouse worker --deploy`")
    return 0
