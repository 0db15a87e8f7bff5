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


def _checked(convert, noun: str, within, rule: str):
    """An argparse type: ``convert`` the text (else "expected <noun>"), then refuse a value outside ``within`` with
    ``rule`` and the text as given."""

    def parse(value: str):
        try:
            x = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {value!r}") from None
        if not within(x):  # a comparison with NaN is false, so NaN is refused too
            raise argparse.ArgumentTypeError(f"{rule}, got {value.strip()}")
        return x

    return parse


_positive_int = _checked(int, "a whole number", lambda n: n >= 1, "must be at least 1")
# Uvicorn would take port 99999 and listen on 99999 - 65536 while printing 99999.
_port = _checked(int, "a port number", lambda n: 1 <= n <= 65535, "must be a port number from 1 to 65535")
# ``inf`` waits as long as it takes; NaN would never time out.
_seconds = _checked(float, "a number of seconds", lambda x: x >= 0, "must be 0 or more seconds")


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


def cmd_refine(args: argparse.Namespace) -> int:
    from flows.refine import refine_days

    settings = load_settings()
    runs = refine_days(settings, _date_range(args), tables=_csv_list(args.table), batch_days=args.batch_days)
    _print_runs(runs)
    return 0


def cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from flows.refine import replay_quarantine

    settings = load_settings()
    days = _date_range(args) if (args.date or args.start) else None
    runs = replay_quarantine(settings, tables=_csv_list(args.table), days=days)
    _print_runs(runs)
    if not runs:
        print("  nothing held in quarantine for that selection")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from flows.publish import PublishBlocked, publish_day
    from lakehouse.manifest import latest_manifest

    settings = load_settings()
    for day in _date_range(args):
        try:
            runs = publish_day(settings, day, tables=_csv_list(args.table))
        except PublishBlocked as exc:
            _print_runs(getattr(exc, "runs", []))
            raise
        _print_runs(runs)
    manifest = latest_manifest(settings)
    if manifest is not None:
        print(f"  publication v{manifest.version} in force ({len(manifest.tables)} tables, run {manifest.run_id})")
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


def _print_layer(layer: str, day, runs) -> None:
    _print_runs(runs)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from flows.orchestration import run_day, yesterday

    settings = load_settings()
    days = _date_range(args) if (args.date or args.start) else [yesterday(settings.timezone)]
    for day in days:
        result = run_day(settings, day, lock_wait_s=args.wait_lock, on_layer=_print_layer)
        manifest = f", manifest v{result.manifest_version}" if result.manifest_version is not None else ""
        print(f"pipeline {day}: {len(result.all_runs())} table runs in {result.duration_s:.1f}s{manifest}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from flows.orchestration import run_backfill

    settings = load_settings()

    def on_day(result, i: int, n: int) -> None:
        print(f"backfill day {i}/{n} {result.day} done in {result.duration_s:.1f}s", flush=True)

    out = run_backfill(
        settings, parse_date(args.start), parse_date(args.end), backfill_id=args.id, resume=not args.restart,
        lock_wait_s=args.wait_lock, on_layer=_print_layer, on_day=on_day,
    )
    skipped = f"; {len(out.skipped)} day(s) already done by an earlier attempt were skipped" if out.skipped else ""
    print(f"backfill {out.backfill_id}: {len(out.results)} day(s) run{skipped}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    gen = build_parser().parse_args(["generate"])
    for name in ("days", "customers", "orders_per_day"):
        if getattr(args, name) is not None:
            setattr(gen, name, getattr(args, name))
    return run_demo(load_settings(), gen)


def cmd_server(args: argparse.Namespace) -> int:
    from flows.prefect_local import run_server

    return run_server(load_settings(), args.host, args.port)


def cmd_worker(args: argparse.Namespace) -> int:
    from flows.prefect_local import run_worker

    return run_worker(load_settings(), args.pool, url=args.api_url, deploy=args.deploy, limit=args.limit)


def cmd_serve(args: argparse.Namespace) -> int:
    from api.app import run

    run(load_settings(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from flows.prefect_local import run_deploy

    return run_deploy(load_settings(), url=args.api_url, pool=args.pool)


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

    p = sub.add_parser("refine", help="bronze -> silver for a day or a date range (typing, gate, quarantine, MERGE)")
    _add_dates(p)
    p.add_argument("--table", help="only these silver tables (comma-separated, e.g. customers,order_lines)")
    p.add_argument("--batch-days", type=_positive_int, default=1, metavar="N",
                   help="catch-up: refine N consecutive days of the range as one batch (one engine job per table "
                        "instead of N; silver ends the same; one run record per table and batch). Default 1")
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("quarantine", help="work with quarantined rows (system.quarantine)")
    qsub = p.add_subparsers(dest="quarantine_command", required=True)
    q = qsub.add_parser("replay", help="re-run unreleased quarantined rows through the gate; rows that pass go to silver")
    _add_dates(q)
    q.add_argument("--table", help="only these silver tables (comma-separated)")
    q.set_defaults(func=cmd_quarantine_replay)

    p = sub.add_parser("publish", help="silver -> gold for a day or a date range (write, gate, publish a manifest)")
    _add_dates(p)
    p.add_argument("--table", help="only rebuild these gold tables (comma-separated); the rest stay as published")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("land", help="copy a system's export files, unchanged, into landing through a source mapping")
    p.add_argument("--mapping", required=True, help="mapping name (mappings/*.yaml) or a mapping .yaml file")
    p.add_argument("--input", required=True, help="folder holding the export files")
    p.add_argument("--date", required=True, help="ingest date to land them under, YYYY-MM-DD")
    p.set_defaults(func=cmd_land)

    p = sub.add_parser("pipeline", help="ingest, refine and publish a day or each day of a range (default: yesterday)")
    _add_dates(p)
    p.add_argument("--wait-lock", type=_seconds, default=0.0, metavar="SECONDS",
                   help="wait this long when another run holds the day (default: fail at once)")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("backfill", help="the pipeline for every day of a range, in order; a rerun resumes where it stopped")
    p.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", required=True, help="last day (inclusive), YYYY-MM-DD")
    p.add_argument("--id", help="backfill id to resume under (default: backfill-START-END)")
    p.add_argument("--restart", action="store_true", help="run every day again instead of resuming")
    p.add_argument("--wait-lock", type=_seconds, default=0.0, metavar="SECONDS", help="wait this long for a busy day")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("demo", help="generate three small days and run the pipeline for each (the main job)")
    p.add_argument("--days", type=int, help="days to generate and run (default: generate's default)")
    p.add_argument("--customers", type=int, help="people behind the records (default: generate's default)")
    p.add_argument("--orders-per-day", type=int, help="orders per day (default: generate's default)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("server", help="start the local Prefect server and UI (telemetry off)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=4200)
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("worker", help="create the process work pool if missing and start a Prefect worker")
    p.add_argument("--pool", default="lakehouse")
    p.add_argument("--api-url", help="Prefect API (default: $PREFECT_API_URL or http://127.0.0.1:4200/api)")
    p.add_argument("--deploy", action="store_true", help="deploy prefect.yaml first")
    p.add_argument("--limit", type=_positive_int, help="maximum concurrent flow runs")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("deploy", help="create or update the deployments of prefect.yaml")
    p.add_argument("--pool", default="lakehouse")
    p.add_argument("--api-url", help="Prefect API (default: $PREFECT_API_URL or http://127.0.0.1:4200/api)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("serve", help="start the customer-insights API (uvicorn, one worker) over the published gold")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("info", help="show settings and the table catalogue")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lakehouse`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    from lakehouse import spark as engine

    engine_was_running = engine.engine_info()["engine"] is not None
    try:
        code = args.func(args)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        # Stop the engine this command started (client first, then the embedded server); an engine that was
        # already running belongs to the caller (an embedding program or the test session) and stays up.
        if not engine_was_running:
            engine.stop_spark()
    if args.command not in ("info",):
        print(f"done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
