"""Landing -> bronze: every new landing file of a day, decoded in Python, appended to its bronze Delta table.

One generic mechanism for every (source, entity): built-in sources (online, pos, clickstream, inventory) and sources
added by mapping files (``mappings/*.yaml``). For each bronze table and day:

1. list the day's landing folder; skip files the ledger records as loaded with the same fingerprint;
2. decode each new file with pyarrow (:mod:`transforms.bronze.readers`): malformed records are kept with their raw
   text and reason; apply the source mapping; reject the whole file (ledger row with the reason) when a required
   column is missing or when it carries more unexpected columns than ``LAKEHOUSE_MAX_EXTRA_COLUMNS`` (each one would
   widen the bronze table for good); add the audit columns; write a staging Parquet file;
3. DELETE from the bronze table any rows of these files (leftovers of a run that crashed after its bronze append but
   before its ledger append), then append the staging files in one Delta append (``mergeSchema``: a new column is
   added, never lost), then remove the staging folder. The ledger rows of all the day's tables are appended in one
   commit after its last table (one ledger commit a day, not one per table; a crash before it only means the
   rerun replaces those rows instead of skipping the files).

Steps 1-2 of a day's tables run in a worker thread, one table after another, while the calling thread does step 3
of the tables already staged (decoding is Python and Arrow work, step 3 is the engine's; only the calling thread
talks to the engine, in plan order).

Rerunning a day therefore never duplicates a row, and a file that arrives late in an old day's folder is loaded when
that day is ingested again. Plain Python: the Prefect flows wrap :func:`ingest_days` / :func:`ingest_day`.

Run accounting (one :class:`lakehouse.runs.TableRun` per bronze table and day): ``rows_in`` = records in the new
files; ``rows_out`` = rows written to bronze, malformed records included (bronze keeps them, with ``_parse_error``);
``rows_rejected`` = records of rejected files (nothing of them is written). So rows_in = rows_out + rows_rejected.
The malformed count is in the message and the ledger.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse import delta
from lakehouse.catalog import TableSpec, bronze_table
from lakehouse.entities import ENTITIES, KINDS, EntitySchema
from lakehouse.errors import LakehouseError, LandingNotFound, SchemaError
from lakehouse.faults import crash_point
from lakehouse.ledger import LOADED, REJECTED, LedgerEntry, loaded_fingerprints, record_files
from lakehouse.mappings import EntityMapping, SourceMapping, load_mappings
from lakehouse.runs import TableRun, new_run_id, record_runs
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.storage import FileInfo, Storage, parse_date
from transforms.bronze.conform import (
    add_audit_columns, apply_mapping, canonicalize_names, conform_to_entity, extra_columns,
)
from transforms.bronze.readers import read_landing_file
from transforms.bronze.schemas import (
    BATCH_FIELDS, DECODE_FIELDS, file_format, missing_required, too_many_extra_columns,
)

#: Format of a landing file whose extension says nothing, per source kind.
DEFAULT_FORMATS: dict[str, str] = {"online": "csv", "pos": "csv", "clickstream": "jsonl", "inventory": "parquet"}

_SPARK_TYPES = {pa.string(): "string", pa.int64(): "bigint", pa.date32(): "date"}


@dataclass(frozen=True)
class Target:
    """One bronze table's landing folder for one day."""

    source: str
    kind: str
    entity: EntitySchema
    mapping: EntityMapping | None
    mapping_path: str
    folder: str

    @property
    def table(self) -> TableSpec:
        return bronze_table(self.source, self.entity)


@dataclass
class DayPlan:
    """What exists in landing for one day: folders to ingest and what was skipped."""

    day: dt.date
    targets: list[Target] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # source/entity with no folder that day
    unknown: list[str] = field(default_factory=list)  # landing folders that are no known source or entity


def _say(message: str) -> None:
    print(message, flush=True)


def _split_filters(
    sources: Iterable[str] | None, entities: Iterable[str] | None, known: dict[str, str],
    mappings: dict[str, SourceMapping],
) -> tuple[set[str] | None, set[str] | None]:
    """Validate --source / --entity filters; entities are ``name`` or ``source.name``."""
    src = set(sources) if sources else None
    if src:
        unknown = sorted(src - set(known))
        if unknown:
            raise LakehouseError(
                f"unknown source {', '.join(unknown)} (known: {', '.join(sorted(known))}); a new source needs a "
                "mapping file in mappings/ or LAKEHOUSE_MAPPINGS_DIR"
            )
    ent = set(entities) if entities else None
    if ent:
        names = {e.entity for e in ENTITIES}
        for m in mappings.values():
            names.update(m.entity_names)
        for e in ent:
            base = e.split(".", 1)[-1]
            if base not in names or ("." in e and e.split(".", 1)[0] not in known):
                raise LakehouseError(f"unknown entity {e!r} (known: {', '.join(sorted(names))}; or source.entity)")
    return src, ent


def plan_day(
    settings: Settings, day: dt.date, *, sources: Iterable[str] | None = None, entities: Iterable[str] | None = None,
    storage: Storage | None = None,
) -> DayPlan:
    """The landing folders of one day for the known sources (filtered by ``sources`` / ``entities``)."""
    storage = storage or Storage(settings)
    mappings = load_mappings(settings)
    known: dict[str, str] = {kind: kind for kind in KINDS}
    known.update({name: m.kind for name, m in mappings.items()})
    src_filter, ent_filter = _split_filters(sources, entities, known, mappings)
    plan = DayPlan(day)
    root = str(settings.landing_root).rstrip("/")
    for source in storage.list_dirs(root):
        if source not in known:
            plan.unknown.append(f"{root}/{source}")
            continue
        if src_filter is not None and source not in src_filter:
            continue
        kind = known[source]
        mapping = mappings.get(source)
        if mapping is not None:
            specs = [(next(e for e in ENTITIES if e.kind == kind and e.entity == em.entity), em) for em in mapping.entities]
        else:
            specs = [(e, None) for e in ENTITIES if e.kind == kind]
        names = {spec.entity for spec, _ in specs}
        for folder in storage.list_dirs(f"{root}/{source}"):
            if folder not in names:
                plan.unknown.append(f"{root}/{source}/{folder}")
        for spec, em in specs:
            if ent_filter is not None and spec.entity not in ent_filter and f"{source}.{spec.entity}" not in ent_filter:
                continue
            folder = storage.landing_dir(source, spec.entity, day)
            if storage.is_dir(folder):
                plan.targets.append(Target(source, kind, spec, em, mapping.path if mapping else "", folder))
            else:
                plan.absent.append(f"{source}/{spec.entity}")
    return plan


def _landing_not_found(settings: Settings, days: list[dt.date], storage: Storage) -> LandingNotFound:
    root = str(settings.landing_root).rstrip("/")
    listed = ", ".join(d.isoformat() for d in days)
    if not storage.is_dir(root):
        return LandingNotFound(
            f"landing folder {root} does not exist, so there is nothing to ingest for {listed}. Land files first "
            "(lakehouse generate, or lakehouse land --mapping NAME --input DIR --date D), or set LAKEHOUSE_LANDING_ROOT."
        )
    example = storage.landing_dir("<source>", "<entity>", days[0])
    return LandingNotFound(
        f"no landing folder for {listed}: nothing matches {example} under {root}. Check the date, or land the "
        "files for that day first."
    )


def _spark_ddl(schema: pa.Schema) -> str:
    """A Spark DDL schema string for an all-string bronze Arrow schema with audit columns."""
    parts = []
    for f in schema:
        if pa.types.is_timestamp(f.type):
            sql_type = "timestamp"
        else:
            sql_type = _SPARK_TYPES[f.type]
        name = f.name.replace("`", "``")
        parts.append(f"`{name}` {sql_type}")
    return ", ".join(parts)


def _batch_schema(entity: EntitySchema, extras: list[str]) -> pa.Schema:
    """Canonical columns, then every extra column seen in the batch, then the audit columns."""
    data = [pa.field(c, pa.string()) for c in (*entity.columns, *extras)]
    return pa.schema([*data, *DECODE_FIELDS, *BATCH_FIELDS])


def _rejection(target: Target, file: FileInfo, missing: list[str], columns: list[str]) -> str:
    """The reason a file is rejected for missing required columns, naming the file and the columns."""
    if target.mapping is not None:
        detail = ", ".join(
            f"`{c}` (mapped from export column `{target.mapping.columns[c]}`)" if c in target.mapping.columns
            else f"`{c}` (not mapped by {target.mapping_path})"
            for c in missing
        )
    else:
        detail = ", ".join(f"`{c}`" for c in missing)
    plural = "s" if len(missing) > 1 else ""
    return (
        f"landing file {file.uri}: required column{plural} {detail} missing "
        f"(expected: {', '.join(target.entity.columns)}; found: {', '.join(columns) or 'no columns'})"
    )


@dataclass
class _Staged:
    """One bronze table's new landing files of a day, decoded and written as staging Parquet (no engine work yet)."""

    run: TableRun
    staging: str
    ingested_at: dt.datetime
    entries: list[LedgerEntry] = field(default_factory=list)
    parts: list[tuple[str, pa.Schema]] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    new_files: int = 0
    malformed: int = 0
    rejected_notes: list[str] = field(default_factory=list)


def _stage_table(
    settings: Settings, target: Target, day: dt.date, *, run_id: str, loaded: set[tuple[str, str]], storage: Storage,
) -> _Staged:
    """Steps 1 and 2 of the module docstring for one table: list, decode, check and stage the new files. Python and
    Arrow only (no engine call), so it may run in a worker thread while the engine writes another table."""
    t0 = time.perf_counter()
    spec = target.table
    run = TableRun(run_id=run_id, layer="bronze", table_name=spec.qualified, run_date=day)
    files = storage.list_files(target.folder)
    new = [f for f in files if (f.uri, f.fingerprint) not in loaded]
    run.files_skipped = len(files) - len(new)
    out = _Staged(run, storage.staging_dir(run_id, spec.name), dt.datetime.now(dt.timezone.utc), new_files=len(new))

    def entry(f: FileInfo, fmt: str, encoding: str | None, rows: int, bad: int, extra: tuple[str, ...], status: str,
              reason: str) -> LedgerEntry:
        return LedgerEntry(
            f.uri, f.fingerprint, target.source, target.entity.entity, spec.qualified, day, fmt, encoding, f.size,
            rows, bad, ",".join(extra), status, reason, run_id, out.ingested_at,
        )

    try:
        for i, f in enumerate(new):
            fmt = file_format(f.name, DEFAULT_FORMATS.get(target.kind, "csv"))
            options = target.mapping.csv if target.mapping is not None else None
            decoded, table, reason = None, None, ""
            try:
                decoded = read_landing_file(storage.read_bytes(f.uri), file_format=fmt, path=f.uri, options=options,
                                            string_columns=target.entity.columns)
            except SchemaError as exc:
                reason = f"landing file {exc}"
            except OSError as exc:  # unreadable bytes, e.g. a truncated .gz (Storage decompresses by extension)
                reason = f"landing file {f.uri}: cannot be read ({exc})"
            if decoded is not None:
                table = decoded.table
                if target.mapping is not None:
                    table = apply_mapping(table, columns=target.mapping.columns, constants=target.mapping.constants)
                table = canonicalize_names(table, entity=target.entity)
                # A file that declares no columns at all (empty, or JSON lines that are all malformed) is loaded as
                # is: there is nothing to check, and its malformed records must reach bronze.
                missing = missing_required(table.column_names, target.entity) if decoded.columns else []
                if missing:
                    reason = _rejection(target, f, missing, list(decoded.columns))
                else:
                    reason = too_many_extra_columns(f.uri, extra_columns(table, entity=target.entity),
                                                    limit=settings.max_extra_columns)
            if reason:
                records = decoded.records if decoded is not None else 0
                out.entries.append(entry(f, fmt, decoded.encoding if decoded else None, records,
                                         decoded.malformed if decoded else 0, (), REJECTED, reason))
                run.files_rejected += 1
                run.rows_in += records
                run.rows_rejected += records
                out.rejected_notes.append(reason)
                continue
            table = conform_to_entity(table, entity=target.entity)
            extra = extra_columns(table, entity=target.entity)
            out.extras.extend(c for c in extra if c not in out.extras)
            notes = [decoded.note] if decoded.note else []
            if decoded.encoding not in ("utf-8", "utf-8-sig", "binary"):
                notes.append(f"not UTF-8: decoded as {decoded.encoding}")
            if table.num_rows:
                table = add_audit_columns(table, source_file=f.uri, run_id=run_id, ingested_at=out.ingested_at,
                                          ingest_date=day)
                part = f"{out.staging}/part-{i:05d}.parquet"
                with storage.open_output(part) as stream:
                    # No min/max statistics: the engine reads a staging file whole, once (a day's events: 0.21 s
                    # of CPU to write with them, 0.14 s without).
                    pq.write_table(table, stream, write_statistics=False)
                out.parts.append((part, table.schema))
            out.entries.append(entry(f, fmt, decoded.encoding, decoded.records, decoded.malformed, extra, LOADED,
                                     "; ".join(notes)))
            run.files_loaded += 1
            run.rows_in += decoded.records
            run.rows_out += decoded.records
            out.malformed += decoded.malformed
    except BaseException:
        storage.delete_dir(out.staging)
        raise
    run.duration_s = time.perf_counter() - t0
    return out


def _load_table(spark, settings: Settings, target: Target, day: dt.date, staged: _Staged, *,
                storage: Storage, ledger: list[LedgerEntry]) -> TableRun:
    """Step 3 of the module docstring for one staged table: replace leftovers, append to bronze, and add its ledger
    rows to ``ledger`` (the caller writes them after the day's last table). The run's duration is the table's own
    work (staging plus loading), whichever thread staged it."""
    t0 = time.perf_counter()
    spec, run = target.table, staged.run
    try:
        crash_point("ingest.staged")
        loaded_uris = [e.file_path for e in staged.entries if e.status == LOADED]
        if loaded_uris and delta.has_partition(spec, settings, {"ingest_date": day.isoformat()}):
            # Rows of these files already in bronze come from a run that crashed before writing the ledger (or from
            # an earlier version of a file rewritten in place): replace them, never duplicate them. A day with no
            # bronze file yet (every first load of a day) has none of them, so the DELETE, a query of its own per
            # table and day, is skipped.
            delta.delete_where(
                spark, spec, settings,
                f"ingest_date = DATE'{day.isoformat()}' AND _source_file IN {delta.sql_in_list(loaded_uris)}",
            )
        if staged.parts:
            schema = _batch_schema(target.entity, staged.extras)
            df = spark.read.schema(_spark_ddl(schema)).parquet(staged.staging)
            delta.append(df, spec, settings, merge_schema=True)
            crash_point("ingest.bronze_appended")
        ledger.extend(staged.entries)
    finally:
        storage.delete_dir(staged.staging)

    run.duration_s += time.perf_counter() - t0
    drift = f" extra columns: {', '.join(staged.extras)}" if staged.extras else ""
    run.message = (
        f"files new={staged.new_files} skipped={run.files_skipped} rejected={run.files_rejected} "
        f"malformed={staged.malformed}{drift}"
    )
    if run.files_rejected or staged.malformed:
        run.status = "warn"
    _say(
        f"  {spec.qualified:<36} {day}  files: {run.files_loaded} loaded, {run.files_skipped} skipped, "
        f"{run.files_rejected} rejected  rows: {run.rows_out:,} ({staged.malformed:,} malformed){drift}  "
        f"{run.duration_s:.2f}s"
    )
    for note in staged.rejected_notes:
        _say(f"    rejected: {note}")
    return run


def _remove_empty_run_folder(path: str) -> None:
    """Remove a run's local staging folder if it is empty (each table removes its own staging folder; other units
    of the same run may still be writing theirs, so never delete recursively here). Object stores have no folders."""
    if "://" in path:
        return
    try:
        os.rmdir(path)
    except OSError:
        pass


#: How many tables the staging workers may have staged ahead of the loads (bounds the staging disk in use).
STAGE_AHEAD = 16
#: Staging worker threads. Two, although a table's staging is mostly Arrow work: the loads leave the engine idle
#: between tables, and one worker was the bottleneck at 1M order lines (bronze 15.2-17.3 s with one, 14.0-14.6 s with
#: two, three runs each, interleaved).
STAGE_WORKERS = 2


def _run_plans(spark, settings: Settings, plans: list[tuple[DayPlan, str]], storage: Storage) -> list[TableRun]:
    """Ingest each (day plan, run id) in order: every table of a day, then the day's run records.

    Decoding landing files is Python and Arrow work, writing bronze is the engine's: ``STAGE_WORKERS`` threads stage
    the tables (started in plan order, across days, at most ``STAGE_AHEAD`` ahead) while this thread loads each one,
    in plan order, as soon as it is staged. Only this thread calls the engine, in the same order as a sequential run.
    Which files are new is read from the ledger for every day before any is loaded (a day's load writes ledger rows
    of that day only).
    """
    loaded = {plan.day: loaded_fingerprints(spark, settings, ingest_date=plan.day) for plan, _ in plans}
    work = [(plan, run_id, target) for plan, run_id in plans for target in plan.targets]
    pool = ThreadPoolExecutor(max_workers=STAGE_WORKERS, thread_name_prefix="ingest-stage")
    futures: list[Future] = []

    def submit_upto(n: int) -> None:
        while len(futures) < min(n, len(work)):
            plan, run_id, target = work[len(futures)]
            futures.append(pool.submit(_stage_table, settings, target, plan.day, run_id=run_id,
                                       loaded=loaded[plan.day], storage=storage))

    done = 0
    runs: list[TableRun] = []
    try:
        for plan, run_id in plans:
            _say(f"ingest {plan.day} ({len(plan.targets)} tables)")
            day_runs = []
            ledger: list[LedgerEntry] = []
            for target in plan.targets:
                submit_upto(done + 1 + STAGE_AHEAD)
                staged = futures[done].result()
                done += 1
                day_runs.append(_load_table(spark, settings, target, plan.day, staged, storage=storage, ledger=ledger))
            record_files(spark, settings, ledger)
            crash_point("ingest.ledger_written")
            _remove_empty_run_folder(storage.staging_dir(run_id, "").rstrip("/"))
            if plan.absent:
                _say(f"  {plan.day}: no landing folder for {', '.join(plan.absent)} (skipped)")
            crash_point("ingest.tables_done")
            record_runs(spark, settings, day_runs)
            runs.extend(day_runs)
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        for future in futures[done:]:  # staged but never loaded: a failure stopped the run
            if future.done() and not future.cancelled() and future.exception() is None:
                storage.delete_dir(future.result().staging)
        for _, run_id in plans:
            _remove_empty_run_folder(storage.staging_dir(run_id, "").rstrip("/"))
    return runs


def ingest_day(
    settings: Settings, day: dt.date | str, *, sources: Iterable[str] | None = None,
    entities: Iterable[str] | None = None, run_id: str | None = None, spark=None, storage: Storage | None = None,
) -> list[TableRun]:
    """Ingest one day's landing folders into bronze; one TableRun per bronze table (also written to pipeline_runs).

    ``storage`` overrides how landing is listed and read (e.g. through a prefect-aws S3 block); default: Storage.
    """
    spark = spark or get_spark(settings)
    day = parse_date(day)
    storage = storage or Storage(settings)
    plan = plan_day(settings, day, sources=sources, entities=entities, storage=storage)
    if not plan.targets:
        raise _landing_not_found(settings, [day], storage)
    for path in plan.unknown:
        _say(f"  skipped {path}: not a known source or entity (add a mapping file to ingest it)")
    return _run_plans(spark, settings, [(plan, run_id or new_run_id("ingest"))], storage)


def ingest_days(
    settings: Settings, days: Iterable[dt.date | str], *, sources: Iterable[str] | None = None,
    entities: Iterable[str] | None = None,
) -> list[TableRun]:
    """Ingest a list of days (each with its own run id); every day must have landing data, checked before any work."""
    spark = get_spark(settings)  # first, so an unreachable engine is reported before anything else
    storage = Storage(settings)
    days = sorted({parse_date(d) for d in days})
    if not days:
        raise LakehouseError("no day given to ingest")
    plans = [plan_day(settings, d, sources=sources, entities=entities, storage=storage) for d in days]
    empty = [p.day for p in plans if not p.targets]
    if empty:
        raise _landing_not_found(settings, empty, storage)
    for path in sorted({u for p in plans for u in p.unknown}):
        _say(f"  skipped {path}: not a known source or entity (add a mapping file to ingest it)")
    return _run_plans(spark, settings, [(plan, new_run_id("ingest")) for plan in plans], storage)


if __name__ == "__main__":  # python -m flows.ingest 2026-01-01 [2026-01-02 ...]
    from lakehouse.settings import load_settings

    try:
        for r in ingest_days(load_settings(), sys.argv[1:]):
            print(f"{r.table_name} {r.run_date} in={r.rows_in} out={r.rows_out} rejected={r.rows_rejected} {r.message}")
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
