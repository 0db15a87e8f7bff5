"""Prefect flows: ``ingest``, ``refine``, ``publish``, ``pipeline`` (the three for one day) and ``backfill``.

They are thin: :mod:`flows.orchestration` sequences the plain layer functions, and this module only makes each coarse
unit a Prefect task (one per source for ingest, one per silver table for refine, one per day for publish), retries
units on I/O errors only, tags run rows with the flow run id, and posts artifacts (a markdown summary and a table of
counts per layer, a link to the rebuilt data docs). Parameters are dates and table names.

``<flow>.fn(...)`` (or ``python -m flows.prefect_flows pipeline day=2026-01-03``) runs the same code with no Prefect
server: units are then called directly and no artifacts are posted.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from flows import orchestration as orch
from lakehouse.errors import EngineUnreachable, LakehouseError
from lakehouse.runs import TableRun, flow_run_scope
from lakehouse.settings import Settings, load_settings

LOCK_WAIT_S = 600.0  # a flow waits this long for another run of the same day before failing
_log = logging.getLogger("lakehouse.flows")


# -- retries: I/O only ---------------------------------------------------------------------------------------------
def _io_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError, EngineUnreachable]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        types += [BotoCoreError, ClientError]
    except ModuleNotFoundError:  # pragma: no cover - boto3 is a dependency
        pass
    return tuple(types)


def is_io_error(exc: BaseException | None) -> bool:
    """True for transient I/O failures (OSError, S3/botocore errors, an unreachable engine), also when wrapped."""
    io_types = _io_error_types()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, io_types):
            return True
        if isinstance(exc, LakehouseError):  # a sentence about bad input or bad data: retrying cannot help
            return False
        exc = exc.__cause__ or exc.__context__
    return False


def retry_on_io_error(task_, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed unit only when it failed on I/O."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as raised:  # noqa: BLE001 - some states raise instead of returning the exception
        exc = raised
    return isinstance(exc, BaseException) and is_io_error(exc)


@task(
    name="layer-unit",
    task_run_name="{layer}-{unit}-{day}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_unit(layer: str, unit: str, day: dt.date, call) -> list[TableRun]:
    """One coarse unit of a layer-day (e.g. ingest of one source); the layer function records its run rows."""
    return call()


def _in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def prefect_runner(layer: str, unit: str, day: dt.date, call) -> list[TableRun]:
    """Run a unit as a Prefect task inside a flow run, directly otherwise."""
    if not _in_flow_run():
        return call()
    return run_unit(layer, unit, day, call)


def current_flow_run_id() -> str | None:
    """The id of the flow run this code runs in (None outside Prefect)."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None


def _logger():
    if _in_flow_run():
        from prefect import get_run_logger

        return get_run_logger()
    return _log


# -- artifacts -------------------------------------------------------------------------------------------------------
def data_docs_uri(settings: Settings, index: str | None = None) -> str:
    """The data docs' index page (built by the gate engineer's ``expectations.docs``) as a link."""
    location = index
    if location is None:
        try:
            location = f"{importlib.import_module('expectations.docs').site_dir(settings)}/index.html"
        except (ModuleNotFoundError, AttributeError):
            location = f"{str(settings.warehouse_root).rstrip('/')}/_data_docs/site/index.html"
    if location.startswith(("s3://", "http://", "https://", "file://")):
        return location
    return Path(location).resolve().as_uri()


@task(name="data-docs", cache_policy=NO_CACHE, persist_result=False)
def build_docs_task(settings: Settings) -> str | None:
    """Rebuild the Great Expectations data docs from the stored gate results; returns the index page."""
    return build_docs(settings)


def build_docs(settings: Settings) -> str | None:
    """Rebuild the data docs; None (with a warning) when the gate module is missing or the build fails."""
    try:
        docs = importlib.import_module("expectations.docs")
    except ModuleNotFoundError:
        return None
    try:
        return str(docs.build_data_docs(settings))
    except Exception as exc:  # noqa: BLE001 - docs are a report: never fail the pipeline over them
        _logger().warning("data docs not rebuilt: %s: %s", type(exc).__name__, exc)
        return None


def publish_docs_link(settings: Settings, layers: tuple[str, ...] | list[str]) -> str | None:
    """After gated layers ran in a flow: rebuild the data docs and post a link artifact to them."""
    if not any(layer in ("refine", "publish") for layer in layers):
        return None
    index = build_docs_task(settings) if _in_flow_run() else build_docs(settings)
    link = data_docs_uri(settings, index)
    if _in_flow_run():
        from prefect.artifacts import create_link_artifact

        create_link_artifact(link, link_text="Great Expectations data docs", key="data-docs",
                             description="quality results of the gates (rebuilt after this run)")
    return link


def counts_table(runs: list[TableRun]) -> list[dict]:
    """The counts of each table run, one dict per row (the table artifact)."""
    return [
        {
            "table": r.table_name, "date": r.run_date.isoformat(), "status": r.status,
            "rows_in": r.rows_in, "rows_out": r.rows_out, "quarantined": r.rows_quarantined,
            "deduplicated": r.rows_deduplicated, "rejected": r.rows_rejected, "files_loaded": r.files_loaded,
            "balanced": r.balanced, "duration_s": round(float(r.duration_s), 2), "run_id": r.run_id,
        }
        for r in runs
    ]


def summary_markdown(layer: str, day: dt.date, runs: list[TableRun], docs: str, manifest_version: int | None = None) -> str:
    """The markdown artifact of one layer-day."""
    tot = {k: sum(getattr(r, k) for r in runs) for k in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated", "rows_rejected")}
    gates = [g for r in runs for g in (r.gate_results or [])]
    failed_rules = [g for g in gates if isinstance(g, dict) and g.get("success") is False]
    unbalanced = [r.table_name for r in runs if not r.balanced]
    lines = [
        f"# {layer} {day.isoformat()}",
        "",
        f"- tables: **{len(runs)}**, rows in **{tot['rows_in']:,}**, out **{tot['rows_out']:,}**, "
        f"quarantined **{tot['rows_quarantined']:,}**, deduplicated **{tot['rows_deduplicated']:,}**, "
        f"rejected **{tot['rows_rejected']:,}**",
        f"- quality rules checked: {len(gates)}, failed: {len(failed_rules)}",
        f"- accounting: {'every table balances' if not unbalanced else 'NOT balanced: ' + ', '.join(unbalanced)}",
    ]
    if manifest_version is not None:
        lines.append(f"- publication manifest in force: **v{manifest_version}**")
    lines += ["", f"[Data docs]({docs})", "", "| table | status | in | out | quarantined | dedup | rejected | s |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(
            f"| {r.table_name} | {r.status} | {r.rows_in:,} | {r.rows_out:,} | {r.rows_quarantined:,} | "
            f"{r.rows_deduplicated:,} | {r.rows_rejected:,} | {float(r.duration_s):.1f} |"
        )
    for g in failed_rules[:20]:
        lines.append(f"\n- rule `{g.get('name')}` ({g.get('severity')}): {g.get('unexpected_count')} unexpected")
    return "\n".join(lines)


def post_layer_artifacts(settings: Settings, layer: str, day: dt.date, runs: list[TableRun]) -> None:
    """Post the markdown summary, the counts table and the data-docs link of a layer-day (inside a flow run only)."""
    if not _in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    docs = data_docs_uri(settings)
    manifest_version = orch.latest_manifest_version(settings) if layer == "publish" else None
    create_markdown_artifact(
        summary_markdown(layer, day, runs, docs, manifest_version), key=f"{layer}-summary",
        description=f"{layer} {day.isoformat()}: what happened",
    )
    create_table_artifact(counts_table(runs), key=f"{layer}-counts", description=f"{layer} {day.isoformat()}: rows per table")


def post_failure_artifact(layer: str, day: dt.date, exc: BaseException) -> None:
    """A markdown artifact saying which layer-day failed and why (gate rules included when the error carries them)."""
    if not _in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# {layer} {day.isoformat()} FAILED", "", f"**{type(exc).__name__}**: {exc}"]
    for rule in getattr(exc, "rules", None) or []:
        if isinstance(rule, dict) and rule.get("success") is False:
            lines.append(f"- rule `{rule.get('name')}` ({rule.get('severity')}): {rule.get('unexpected_count')} unexpected")
    lines += ["", "The previous publication manifest stays in force; rerun the day once the cause is fixed."]
    create_markdown_artifact("\n".join(lines), key=f"{layer}-summary", description=f"{layer} {day.isoformat()}: failed")


def _on_layer(settings: Settings):
    def hook(layer: str, day: dt.date, runs: list[TableRun]) -> None:
        post_layer_artifacts(settings, layer, day, runs)
        _logger().info("%s %s: %d table(s), %d rows in, %d out", layer, day, len(runs),
                       sum(r.rows_in for r in runs), sum(r.rows_out for r in runs))
    return hook


# -- parameters ------------------------------------------------------------------------------------------------------
def resolve_day(day: dt.date | str | None, timezone: str | None, settings: Settings) -> dt.date:
    """The day to process: the given one, or yesterday (in ``timezone``) relative to the run's scheduled time."""
    if day not in (None, ""):
        from lakehouse.storage import parse_date

        return parse_date(day)
    ctx = FlowRunContext.get()
    now = None
    if ctx is not None and ctx.flow_run is not None and ctx.flow_run.expected_start_time is not None:
        now = ctx.flow_run.expected_start_time
    return orch.yesterday(timezone or settings.timezone, now)


def _summary(result: orch.DayResult) -> dict:
    return {
        "day": result.day.isoformat(),
        "duration_s": round(result.duration_s, 2),
        "manifest_version": result.manifest_version,
        "tables": {layer: len(runs) for layer, runs in result.runs.items()},
        "rows_out": {layer: sum(r.rows_out for r in runs) for layer, runs in result.runs.items()},
    }


def _day_flow(layers: tuple[str, ...], day, timezone, **kwargs) -> dict:
    settings = load_settings()
    the_day = resolve_day(day, timezone, settings)
    flow_run_id = current_flow_run_id()
    with flow_run_scope(flow_run_id):
        result = orch.run_day(
            settings, the_day, layers=layers, runner=prefect_runner, lock_wait_s=LOCK_WAIT_S if flow_run_id else 0.0,
            flow_run_id=flow_run_id, on_layer=_on_layer(settings), on_failure=post_failure_artifact, **kwargs,
        )
    summary = _summary(result)
    summary["data_docs"] = publish_docs_link(settings, layers)
    return summary


def _run_name(prefix: str):
    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters or {}
        if params.get("start") and params.get("end"):
            return f"{prefix}-{params['start']}-to-{params['end']}"
        day = params.get("day")
        if not day:
            try:
                day = orch.yesterday(params.get("timezone") or load_settings().timezone, flow_run.scheduled_start_time)
            except LakehouseError:
                return f"{prefix}-yesterday"
        return f"{prefix}-{day}"
    return name


# -- flows -----------------------------------------------------------------------------------------------------------
@flow(name="ingest", flow_run_name=_run_name("ingest"))
def ingest(day: dt.date | None = None, sources: list[str] | None = None, entities: list[str] | None = None,
           timezone: str | None = None) -> dict:
    """Landing -> bronze for one day (default: yesterday), optionally only some sources or entities."""
    return _day_flow(("ingest",), day, timezone, sources=sources, entities=entities)


@flow(name="refine", flow_run_name=_run_name("refine"))
def refine(day: dt.date | None = None, tables: list[str] | None = None, timezone: str | None = None) -> dict:
    """Bronze -> silver for one day (default: yesterday), optionally only some silver tables."""
    return _day_flow(("refine",), day, timezone, tables=tables)


@flow(name="publish", flow_run_name=_run_name("publish"))
def publish(day: dt.date | None = None, tables: list[str] | None = None, timezone: str | None = None) -> dict:
    """Silver -> gold for one day (default: yesterday) and a new publication manifest when every gate passes."""
    return _day_flow(("publish",), day, timezone, tables=tables)


@flow(name="pipeline", flow_run_name=_run_name("pipeline"))
def pipeline(day: dt.date | None = None, timezone: str | None = None) -> dict:
    """Ingest, refine and publish one day (default: yesterday in the time zone), under the day lock."""
    return _day_flow(orch.LAYERS, day, timezone)


@flow(name="backfill", flow_run_name=_run_name("backfill"))
def backfill(start: dt.date, end: dt.date, backfill_id: str | None = None, resume: bool = True) -> dict:
    """The pipeline for every day from start to end (inclusive) in order; a rerun continues where it stopped."""
    settings = load_settings()
    flow_run_id = current_flow_run_id()
    log = _logger()
    progress_id = None
    if _in_flow_run():
        from prefect.artifacts import create_progress_artifact

        progress_id = create_progress_artifact(0.0, key="backfill-progress", description=f"backfill {start} .. {end}")

    def on_day(result: orch.DayResult, i: int, n: int) -> None:
        log.info("backfill day %d/%d %s done in %.1fs", i, n, result.day, result.duration_s)
        if progress_id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(progress_id, 100.0 * i / n)

    with flow_run_scope(flow_run_id):
        out = orch.run_backfill(
            settings, start, end, backfill_id=backfill_id, resume=resume, runner=prefect_runner,
            lock_wait_s=LOCK_WAIT_S if flow_run_id else 0.0, flow_run_id=flow_run_id,
            on_layer=_on_layer(settings), on_failure=post_failure_artifact, on_day=on_day,
        )
    docs = publish_docs_link(settings, orch.LAYERS) if out.results else None
    if progress_id is not None:
        from prefect.artifacts import create_markdown_artifact, update_progress_artifact

        update_progress_artifact(progress_id, 100.0)
        create_markdown_artifact(
            f"# backfill {start} .. {end}\n\n- id: `{out.backfill_id}`\n- days run now: {len(out.results)}\n"
            f"- days already done (skipped): {len(out.skipped)}\n",
            key="backfill-summary", description=out.backfill_id,
        )
    return {
        "backfill_id": out.backfill_id,
        "days": len(out.days),
        "ran": [r.day.isoformat() for r in out.results],
        "skipped": [d.isoformat() for d in out.skipped],
        "data_docs": docs,
    }


FLOWS = {"ingest": ingest, "refine": refine, "publish": publish, "pipeline": pipeline, "backfill": backfill}


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.prefect_flows <flow> key=value ...``: run a flow's code in-process, with no Prefect server."""
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in FLOWS:
        print(f"usage: python -m flows.prefect_flows {{{','.join(FLOWS)}}} [key=value ...]", file=sys.stderr)
        return 2
    params = {}
    for item in args[1:]:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    try:
        print(json.dumps(FLOWS[args[0]].fn(**params), default=str, indent=2))
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # python -m flows.prefect_flows pipeline day=2026-01-03
    raise SystemExit(main())
