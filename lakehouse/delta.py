"""Delta table I/O over Spark Connect (DataFrame writer and SQL only), plus delta-rs for metadata.

Writes never use ``partitionOverwriteMode=dynamic`` (Sail ignores it and overwrites the whole table): replacing a
slice is ``replaceWhere`` or ``DELETE`` + append. Row counts for accounting come from scanning data, not from
``count()`` on a bare Delta scan, which may be answered from log statistics.

With ``LAKEHOUSE_TABLE_FORMAT=parquet`` (engines without Delta Lake) every function here keeps its meaning, but the
engine only reads and writes Parquet and the Delta log is committed by delta-rs: see :mod:`lakehouse.parquet_tables`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Iterable

from lakehouse.catalog import TableSpec, sql_ref
from lakehouse.faults import crash_point
from lakehouse.settings import Settings

_view_ids = itertools.count()


def _parquet(settings: Settings):
    """The parquet table-format module when the settings ask for it, else None."""
    if getattr(settings, "table_format", "delta") != "parquet":
        return None
    from lakehouse import parquet_tables

    return parquet_tables


def table_exists(spec: TableSpec, settings: Settings) -> bool:
    """True when the table's Delta log exists."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(spec.location(settings), storage_options=settings.delta_storage_options() or None)


def has_partition(spec: TableSpec, settings: Settings, values: dict[str, str]) -> bool:
    """True when the table holds at least one data file in the partition ``values`` (partition column -> value as
    written in the Delta log, e.g. ``{"ingest_date": "2026-01-03"}``); read from the log by delta-rs, without the
    engine. False when the table does not exist. A table not partitioned by exactly these columns counts as having
    the partition: the answer must never be a wrong "no"."""
    from deltalake import DeltaTable

    if not table_exists(spec, settings):
        return False
    table = DeltaTable(spec.location(settings), storage_options=settings.delta_storage_options() or None)
    if set(table.metadata().partition_columns) != set(values):
        return True
    wanted = {k: str(v) for k, v in values.items()}
    return any(p == wanted for p in table.partitions())


def table_version(spec: TableSpec, settings: Settings) -> int | None:
    """Current Delta version, or None if the table does not exist."""
    from deltalake import DeltaTable

    if not table_exists(spec, settings):
        return None
    return DeltaTable(spec.location(settings), storage_options=settings.delta_storage_options() or None).version()


def read_table(spark, spec: TableSpec, settings: Settings, version: int | None = None):
    """The table as a DataFrame (optionally at a version)."""
    if (pt := _parquet(settings)) is not None:
        return pt.read(spark, spec.location(settings), version)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(spec.location(settings))


def read_or_empty(spark, spec: TableSpec, settings: Settings, schema: str):
    """The table, or an empty frame of ``schema`` (DDL string) if it does not exist yet."""
    if table_exists(spec, settings):
        return read_table(spark, spec, settings)
    return spark.createDataFrame([], schema)


#: Besides a table's keys, the columns whose per-file statistics are kept (see :func:`stats_columns`): the ones the
#: pipeline filters tables on (a day's rows, a run's rows).
STATS_FILTER_COLUMNS: tuple[str, ...] = ("ingest_date", "_run_id", "run_id")
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"


def stats_columns(spec: TableSpec, columns: Iterable[str]) -> list[str]:
    """The columns a new table collects per-file statistics (min, max, null count) on: its keys and the columns of
    ``STATS_FILTER_COLUMNS`` it has, minus partition columns (their values are in the log already). Empty when it
    has none of them; the writer then keeps Delta's default (the first 32 columns).

    Delta collects statistics on the first 32 columns by default, and computing them is a real part of a write: on
    Sail, 1.8M silver events (28 columns) took 4.3-5.4 s of engine CPU to write with them, 3.7-4.1 s with three. The
    pipeline reads whole tables or filters them on these columns; the API loads gold tables whole. The row count per
    file (``numRecords``) is always written. The choice is stored in the table (``delta.dataSkippingStatsColumns``),
    so later appends, merges and overwrites keep it."""
    present = set(columns)
    wanted = dict.fromkeys([*spec.keys, *STATS_FILTER_COLUMNS])
    return [c for c in wanted if c in present and c not in spec.partition_by]


def _with_stats_columns(writer, spec: TableSpec, columns: Iterable[str]):
    chosen = stats_columns(spec, columns)
    return writer.option(STATS_COLUMNS_PROPERTY, ",".join(chosen)) if chosen else writer


def append(df, spec: TableSpec, settings: Settings, *, merge_schema: bool = True) -> None:
    """Append rows (new columns are added to the table schema when ``merge_schema``); a new table is created with
    its partitioning and :func:`stats_columns`."""
    if (pt := _parquet(settings)) is not None:
        pt.write(df, spec.location(settings), mode="append", merge_schema=merge_schema)
        crash_point("delta.committed")
        return
    writer = df.write.format("delta").mode("append")
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if not table_exists(spec, settings):
        writer = _with_stats_columns(writer, spec, df.columns)
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
    writer.save(spec.location(settings))
    crash_point("delta.committed")


def overwrite(df, spec: TableSpec, settings: Settings, *, replace_where: str | None = None) -> None:
    """Overwrite the table (with :func:`stats_columns`), or only the rows matching ``replace_where`` when given."""
    if (pt := _parquet(settings)) is not None:
        pt.write(df, spec.location(settings), mode="overwrite", replace_where=replace_where,
                 overwrite_schema=replace_where is None)
        crash_point("delta.committed")
        return
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true" if replace_where is None else "false")
    if replace_where is not None:
        writer = writer.option("replaceWhere", replace_where)
    else:
        writer = _with_stats_columns(writer, spec, df.columns)
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    writer.save(spec.location(settings))
    crash_point("delta.committed")


def temp_view(df, prefix: str = "v") -> str:
    """Register ``df`` under a fresh temporary view name and return the name."""
    name = f"_{prefix}_{next(_view_ids)}"
    df.createOrReplaceTempView(name)
    return name


def sql_in_list(values: Iterable[str]) -> str:
    """A SQL ``IN (...)`` list of string literals, quotes escaped."""
    quoted = ["'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values]
    return "(" + ", ".join(quoted) + ")" if quoted else "(NULL)"


def sql_date_list(days: Iterable[dt.date]) -> str:
    """DATE literals for a SQL ``IN (...)``, sorted and without repeats: ``DATE'2026-01-01', DATE'2026-01-02'``
    (empty for no days)."""
    return ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(set(days)))


def merge_upsert(
    spark,
    source_df,
    spec: TableSpec,
    settings: Settings,
    *,
    keys: tuple[str, ...] | None = None,
    update_condition: str | None = None,
) -> None:
    """MERGE ``source_df`` into the table on its keys: update matched rows (when ``update_condition``), insert new.

    Creates the table from ``source_df`` when it does not exist yet.
    """
    keys = keys or spec.keys
    if not table_exists(spec, settings):
        overwrite(source_df, spec, settings)
        return
    view = temp_view(source_df, "merge_src")
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    when_matched = f"WHEN MATCHED AND ({update_condition}) THEN UPDATE SET *" if update_condition else "WHEN MATCHED THEN UPDATE SET *"
    statement = f"MERGE INTO {sql_ref(spec, settings)} t USING {view} s ON {on} {when_matched} WHEN NOT MATCHED THEN INSERT *"
    if (pt := _parquet(settings)) is not None:
        pt.merge(spark, statement)
    else:
        spark.sql(statement)
    spark.catalog.dropTempView(view)
    crash_point("delta.committed")


def delete_where(spark, spec: TableSpec, settings: Settings, predicate: str) -> None:
    """DELETE rows matching a SQL predicate (no-op when the table does not exist)."""
    if (pt := _parquet(settings)) is not None:
        if table_exists(spec, settings) and pt.delete(spark, spec.location(settings), predicate):
            crash_point("delta.committed")
        return
    if table_exists(spec, settings):
        spark.sql(f"DELETE FROM {sql_ref(spec, settings)} WHERE {predicate}")
        crash_point("delta.committed")
