"""Plain-Python orchestration: the pipeline of one day and resumable backfills, with no Prefect server needed.

The layer functions (``flows.ingest``, ``flows.refine``, ``flows.publish``) do the work and record their run rows.
This module only sequences them: it splits a layer into coarse *units* (one per source for ingest, one per silver
table for refine, one per day for publish), runs each unit through a ``runner`` (a direct call here; a Prefect task in :mod:`flows.prefect_flows`),
holds the day lock of :mod:`flows.locks` while a day runs, and keeps backfill progress in the Delta table
``system.backfill_progress`` so that an interrupted backfill continues from the first day it did not finish.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from flows.locks import DEFAULT_TTL_S, DayLock, lock_storage_options
from lakehouse.catalog import TableSpec
from lakehouse.errors import LakehouseError
from lakehouse.runs import TableRun
from lakehouse.settings import Settings

LAYERS: tuple[str, ...] = ("ingest", "refine", "publish")
_LAYER_MODULES = {"ingest": "flows.ingest", "refine": "flows.refine", "publish": "flows.publish"}
FAILED_STATUSES = frozenset({"failed", "error"})

BACKFILL_PROGRESS = TableSpec(
    "system", "backfill_progress", keys=("backfill_id", "run_date"),
    description="One row per day a backfill finished (or failed): resume starts at the first day not done.",
)
PROGRESS_SCHEMA = pa.schema(
    [
        ("backfill_id", pa.string()),
        ("run_date", pa.date32()),
        ("status", pa.string()),
        ("flow_run_id", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("message", pa.string()),
    ]
)

Call = Callable[[], list[TableRun]]
Runner = Callable[[str, str, dt.date, Call], list[TableRun]]


class LayerNotAvailable(LakehouseError):
    """A layer's module is not installed yet."""


class LayerFailed(LakehouseError):
    """A layer finished but reported failed tables."""


def direct_runner(layer: str, unit: str, day: dt.date, call: Call) -> list[TableRun]:
    """Run a unit in-process (the no-Prefect runner)."""
    return call()


def yesterday(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The calendar day before ``now`` (default: the current time) in ``timezone``."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise LakehouseError(f"unknown time zone {timezone!r}: use an IANA name such as UTC or Europe/London") from None
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return now.astimezone(tz).date() - dt.timedelta(days=1)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from ``start`` to ``end`` inclusive, in order."""
    if end < start:
        raise LakehouseError(f"the end date {end} is before the start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def layer_module(layer: str):
    """The module of a layer's plain functions, imported on first use."""
    if layer not in _LAYER_MODULES:
        raise LakehouseError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
    try:
        return importlib.import_module(_LAYER_MODULES[layer])
    except ModuleNotFoundError as exc:
        if exc.name == _LAYER_MODULES[layer]:
            raise LayerNotAvailable(f"the {layer} layer ({_LAYER_MODULES[layer]}) is not available in this checkout") from None
        raise


@dataclass(frozen=True)
class Unit:
    """One coarse piece of a layer-day: a Prefect task at most."""

    layer: str
    name: str
    call: Call


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _ingest_call(mod, settings: Settings, day: dt.date, sources: list[str] | None, entities: list[str] | None,
                 storage, run_id: str) -> Call:
    """Bronze ingest of some sources for a day; on S3 the landing files are listed and fetched through ``storage``."""
    extra = {"run_id": run_id}
    if storage is not None:
        extra["storage"] = storage
    return lambda: list(mod.ingest_day(settings, day, sources=sources, entities=entities, **extra))


def _ingest_units(mod, settings: Settings, day: dt.date, sources: list[str] | None,
                  entities: list[str] | None, split: bool = True) -> list[Unit]:
    """One unit per source that landed files that day (one unit when nothing can be planned, or when not ``split``:
    then the day's files of every source are decoded beside the engine's writes, see :mod:`flows.ingest`)."""
    from flows.s3_landing import landing_storage
    from lakehouse.runs import new_run_id

    run_id = new_run_id("ingest")
    storage = landing_storage(settings) if str(settings.landing_root).startswith("s3://") else None
    plan_day = getattr(mod, "plan_day", None)
    if plan_day is None or not split:
        return [Unit("ingest", "bronze", _ingest_call(mod, settings, day, sources, entities, storage, run_id))]
    kwargs = {"storage": storage} if storage is not None else {}
    plan = plan_day(settings, day, sources=sources, entities=entities, **kwargs)
    found = sorted({t.source for t in plan.targets})
    if not found:  # let ingest_day raise its own sentence about the missing landing folder
        return [Unit("ingest", "bronze", _ingest_call(mod, settings, day, sources, entities, storage, run_id))]
    return [Unit("ingest", src, _ingest_call(mod, settings, day, [src], entities, storage, run_id)) for src in found]


def _refine_units(mod, settings: Settings, day: dt.date, tables: list[str] | None, split: bool = True) -> list[Unit]:
    """One unit per silver table in refine order, sharing one run id (one unit when the layer cannot split, or when
    not ``split``: then independent tables are refined side by side, see :func:`flows.refine.refine_day`)."""
    from lakehouse.catalog import SILVER_TABLES
    from lakehouse.runs import new_run_id

    order = [spec.name for spec in SILVER_TABLES]
    wanted = {str(t).split(".")[-1] for t in tables} if tables else set(order)
    if not order or not wanted <= set(order) or not _accepts(mod.refine_day, "run_id"):
        # unknown names: one call, so that refine reports them in its own words
        return [Unit("refine", "silver", lambda: list(mod.refine_days(settings, [day], tables=tables)))]
    run_id = new_run_id("refine")
    if not split:
        return [Unit("refine", "silver", lambda: list(mod.refine_day(settings, day, tables=tables, run_id=run_id)))]
    return [
        Unit("refine", name, lambda name=name: list(mod.refine_day(settings, day, tables=[name], run_id=run_id)))
        for name in order if name in wanted
    ]


def layer_units(
    settings: Settings,
    layer: str,
    day: dt.date,
    *,
    sources: list[str] | None = None,
    entities: list[str] | None = None,
    tables: list[str] | None = None,
    split: bool = True,
) -> list[Unit]:
    """The units of one layer-day: one per source for ingest, one per silver table for refine (one for the layer
    unless ``split``), one for publish."""
    mod = layer_module(layer)
    if layer == "ingest":
        return _ingest_units(mod, settings, day, sources, entities, split=split)
    if layer == "refine":
        return _refine_units(mod, settings, day, tables, split=split)
    return [Unit(layer, "gold", lambda: list(mod.publish_day(settings, day, tables=tables)))]


def failed_runs(runs: Iterable[TableRun]) -> list[TableRun]:
    """Runs whose status says the table failed."""
    return [r for r in runs if str(r.status).lower() in FAILED_STATUSES]


def run_layer(
    settings: Settings,
    layer: str,
    day: dt.date,
    *,
    runner: Runner = direct_runner,
    sources: list[str] | None = None,
    entities: list[str] | None = None,
    tables: list[str] | None = None,
) -> list[TableRun]:
    """Run one layer for one day, unit by unit; raise :class:`LayerFailed` when a table failed.

    Units exist to be Prefect tasks. Run in-process (``direct_runner``), a day's ingest is one unit, so that the
    files of one source are decoded while the engine writes another's, and so is its refine, so that independent
    silver tables are refined side by side.
    """
    runs: list[TableRun] = []
    split = runner is not direct_runner
    for unit in layer_units(settings, layer, day, sources=sources, entities=entities, tables=tables, split=split):
        runs.extend(runner(layer, unit.name, day, unit.call))
    return raise_if_failed(f"{layer} {day}", runs)


def raise_if_failed(what: str, runs: list[TableRun]) -> list[TableRun]:
    """``runs`` unchanged, or :class:`LayerFailed` naming ``what`` and every failed table with its message."""
    bad = failed_runs(runs)
    if bad:
        names = ", ".join(f"{r.table_name} ({r.message or r.status})" for r in bad)
        raise LayerFailed(f"{what}: {len(bad)} table(s) failed: {names}")
    return runs


@dataclass
class DayResult:
    """What the pipeline did for one day."""

    day: dt.date
    runs: dict[str, list[TableRun]] = field(default_factory=dict)
    layer_seconds: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    manifest_version: int | None = None

    def all_runs(self) -> list[TableRun]:
        return [r for layer in LAYERS for r in self.runs.get(layer, [])]


def latest_manifest_version(settings: Settings) -> int | None:
    """The version of the publication manifest in force (None before the first publish or without the gold layer)."""
    try:
        from lakehouse.manifest import latest_manifest
    except ModuleNotFoundError:
        return None
    manifest = latest_manifest(settings)
    return None if manifest is None else int(manifest.version)


def run_day(
    settings: Settings,
    day: dt.date,
    *,
    layers: Iterable[str] = LAYERS,
    runner: Runner = direct_runner,
    lock_wait_s: float = 0.0,
    lock_ttl_s: float = DEFAULT_TTL_S,
    flow_run_id: str | None = None,
    on_layer: Callable[[str, dt.date, list[TableRun]], None] | None = None,
    on_failure: Callable[[str, dt.date, BaseException], None] | None = None,
    sources: list[str] | None = None,
    entities: list[str] | None = None,
    tables: list[str] | None = None,
) -> DayResult:
    """Run the given layers (default: all three) for one day under the day lock."""
    t0 = time.perf_counter()
    result = DayResult(day)
    layers = tuple(layers)
    if "refine" in layers or "publish" in layers:  # their gates need GX: import it while bronze loads
        from expectations.rules import warm_up_gx

        warm_up_gx()
    with DayLock(settings, day, wait_s=lock_wait_s, ttl_s=lock_ttl_s, flow_run_id=flow_run_id) as lock:
        for i, layer in enumerate(layers):
            if i:
                lock.renew()
            kwargs = {"sources": sources, "entities": entities} if layer == "ingest" else {"tables": tables}
            started = time.perf_counter()
            try:
                runs = run_layer(settings, layer, day, runner=runner, **kwargs)
            except Exception as exc:
                if on_failure is not None:
                    on_failure(layer, day, exc)
                raise
            result.runs[layer] = runs
            result.layer_seconds[layer] = time.perf_counter() - started
            if on_layer is not None:
                on_layer(layer, day, runs)
    result.duration_s = time.perf_counter() - t0
    if "publish" in result.runs:
        result.manifest_version = latest_manifest_version(settings)
    return result


# -- backfill progress ----------------------------------------------------------------------------------------------
def default_backfill_id(start: dt.date, end: dt.date) -> str:
    """The id a backfill of ``start``..``end`` resumes under unless another is given."""
    return f"backfill-{start.isoformat()}-{end.isoformat()}"


def _progress_uri(settings: Settings) -> str:
    return BACKFILL_PROGRESS.location(settings)


def completed_days(settings: Settings, backfill_id: str) -> set[dt.date]:
    """Days a backfill has finished."""
    from deltalake import DeltaTable

    uri = _progress_uri(settings)
    options = lock_storage_options(settings)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return set()
    rows = DeltaTable(uri, storage_options=options).to_pyarrow_table(columns=["backfill_id", "run_date", "status"]).to_pylist()
    return {r["run_date"] for r in rows if r["backfill_id"] == backfill_id and r["status"] == "done"}


def mark_day(
    settings: Settings, backfill_id: str, day: dt.date, status: str, *, duration_s: float = 0.0,
    flow_run_id: str | None = None, message: str = "",
) -> None:
    """Append a progress row for a backfill day (blind append: concurrent writers never conflict)."""
    from deltalake import write_deltalake

    uri = _progress_uri(settings)
    if not uri.startswith("s3://"):
        import os

        os.makedirs(uri, exist_ok=True)
    row = {
        "backfill_id": backfill_id, "run_date": day, "status": status, "flow_run_id": flow_run_id,
        "finished_at": dt.datetime.now(dt.timezone.utc), "duration_s": float(duration_s), "message": message[:2000],
    }
    write_deltalake(uri, pa.Table.from_pylist([row], schema=PROGRESS_SCHEMA), mode="append",
                    storage_options=lock_storage_options(settings))


@dataclass
class BackfillResult:
    """What a backfill did: days run now, days skipped because an earlier attempt finished them."""

    backfill_id: str
    days: list[dt.date]
    skipped: list[dt.date] = field(default_factory=list)
    results: list[DayResult] = field(default_factory=list)


def run_backfill(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    *,
    backfill_id: str | None = None,
    resume: bool = True,
    runner: Runner = direct_runner,
    lock_wait_s: float = 0.0,
    flow_run_id: str | None = None,
    on_layer: Callable[[str, dt.date, list[TableRun]], None] | None = None,
    on_failure: Callable[[str, dt.date, BaseException], None] | None = None,
    on_day: Callable[[DayResult, int, int], None] | None = None,
) -> BackfillResult:
    """Run the pipeline for every day from ``start`` to ``end`` in order, skipping days this backfill finished."""
    days = date_range(start, end)
    backfill_id = backfill_id or default_backfill_id(start, end)
    done = completed_days(settings, backfill_id) if resume else set()
    out = BackfillResult(backfill_id, days)
    for i, day in enumerate(days, start=1):
        if day in done:
            out.skipped.append(day)
            continue
        t0 = time.perf_counter()
        try:
            result = run_day(settings, day, runner=runner, lock_wait_s=lock_wait_s, flow_run_id=flow_run_id,
                             on_layer=on_layer, on_failure=on_failure)
        except Exception as exc:
            mark_day(settings, backfill_id, day, "failed", duration_s=time.perf_counter() - t0,
                     flow_run_id=flow_run_id, message=f"{type(exc).__name__}: {exc}")
            raise
        mark_day(settings, backfill_id, day, "done", duration_s=result.duration_s, flow_run_id=flow_run_id)
        out.results.append(result)
        if on_day is not None:
            on_day(result, i, len(days))
    return out
