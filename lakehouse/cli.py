"""The ``lakehouse`` command line. Errors meant for people are printed as one sentence, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from lakehouse.errors import LakehouseError
from lakehouse.settings import load_settings
from lakehouse.storage import parse_date


def _date_range(args: argparse.Namespace) -> list[dt.date]:
    """Days from --date, or --start/--end (inclusive)."""
    if getattr(args, "date", None):
        return [parse_date(args.date)]
    if getattr(args, "start", None):
        start = parse_date(args.start)
        end = parse_date(args.end) if getattr(args, "end", None) else start
        if end < start:
            raise LakehouseError(f"--end {end} is before --start {start}")
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    raise LakehouseError("give --date YYYY-MM-DD, or --start YYYY-MM-DD [--end YYYY-MM-DD]")


def _add_dates(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", help="one day, YYYY-MM-DD")
    p.add_argument("--start", help="first day of a range, YYYY-MM-DD")
    p.add_argument("--end", help="last day of a range (inclusive), YYYY-MM-DD")


def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def cmd_generate(args: argparse.Namespace) -> int:
    from generator import generate

    settings = load_settings()
    summary = generate(
        settings,
        start=parse_date(args.start),
        days=args.days,
        customers=args.customers,
        orders_per_day=args.orders_per_day,
        seed=args.seed,
        bad_share=args.bad_share,
        formats=dict(kv.split("=", 1) for kv in (_csv_list(args.format) or [])),
        progress=not args.quiet,
    )
    print(summary.describe())
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import ingest_days

    settings = load_settings()
    runs = ingest_days(settings, _date_range(args), sources=_csv_list(args.source), entities=_csv_list(args.entity))
    _print_runs(runs)
    return 0


def cmd_land(args: argparse.Namespace) -> int:
    from lakehouse.mappings import land_export, load_mappings, resolve_mapping

    settings = load_settings()
    mapping = resolve_mapping(settings, args.mapping)
    result = land_export(settings, mapping, args.input, parse_date(args.date))
    for entity, src, dest in result.copied:
        print(f"  landed    {entity:<14} {src} -> {dest}")
    for entity, src, dest in result.unchanged:
        print(f"  unchanged {entity:<14} {dest} (already landed)")
    for src in result.unmatched:
        print(f"  not mapped {src}")
    if load_mappings(settings).get(mapping.name) is None:
        print(f"note: {mapping.path} is not in mappings/ or LAKEHOUSE_MAPPINGS_DIR: `lakehouse ingest` will skip "
              f"source {mapping.name!r} until it is", file=sys.stderr)
    print(f"{len(result.copied)} file(s) landed for source {mapping.name} on {args.date}; "
          f"next: lakehouse ingest --date {args.date} --source {mapping.name}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from lakehouse.catalog import all_tables
    from lakehouse.sources import all_sources

    settings = load_settings()
    print(f"mode:       {settings.mode}")
    print(f"landing:    {settings.landing_root}")
    print(f"warehouse:  {settings.warehouse_root}")
    print(f"engine:     {settings.spark_remote or 'embedded Sail (127.0.0.1, free port)'}")
    for spec in all_tables(all_sources(settings)):
        keys = ",".join(spec.keys)
        parts = ",".join(spec.partition_by) or "-"
        print(f"  {spec.qualified:<42} keys={keys:<40} partitions={parts}")
    return 0


def _print_runs(runs) -> None:
    for r in runs:
        flag = "ok " if r.balanced and r.status == "ok" else r.status
        print(
            f"  [{flag}] {r.layer:<7} {r.table_name:<34} {r.run_date}  in={r.rows_in:>9} out={r.rows_out:>9} "
            f"quarantined={r.rows_quarantined:>6} dedup={r.rows_deduplicated:>6} rejected={r.rows_rejected:>5} "
            f"{r.duration_s:6.2f}s {r.message}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description="Retail lakehouse: medallion pipeline on Spark Connect.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write synthetic landing files for every source (seeded, reproducible)")
    p.add_argument("--start", default="2026-01-01", help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--customers", type=int, default=2000, help="real people behind the online and POS records")
    p.add_argument("--orders-per-day", type=int, default=500, help="online + POS orders per day (before seasonality)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bad-share", type=float, default=0.01, help="share of injected bad records")
    p.add_argument("--format", help="per-source file format, e.g. online=csv,pos=json,clickstream=parquet")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ingest", help="landing -> bronze for a day or a date range")
    _add_dates(p)
    p.add_argument("--source", help="only these sources (comma-separated)")
    p.add_argument("--entity", help="only these entities (comma-separated)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("land", help="copy a system's export files, unchanged, into landing through a source mapping")
    p.add_argument("--mapping", required=True, help="mapping name (mappings/*.yaml) or a mapping .yaml file")
    p.add_argument("--input", required=True, help="folder holding the export files")
    p.add_argument("--date", required=True, help="ingest date to land them under, YYYY-MM-DD")
    p.set_defaults(func=cmd_land)

    p = sub.add_parser("info", help="show settings and the table catalogue")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lakehouse`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        code = args.func(args)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        from lakehouse.spark import stop_spark

        stop_spark()
    if args.command not in ("info",):
        print(f"done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
