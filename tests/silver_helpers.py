"""Helpers for the silver tests: tiny bronze-shaped tables written straight to Delta (no generator, no ingestion)."""

from __future__ import annotations

import datetime as dt

from lakehouse import delta
from lakehouse.catalog import bronze_table
from lakehouse.entities import entity as lookup_entity

INGESTED = dt.datetime(2026, 1, 3, 6, 0, 0)


def bronze_rows(kind: str, entity: str, rows: list[dict], *, day: dt.date, file: str = "f-0001.csv",
                source: str | None = None, ingested_at: dt.datetime = INGESTED, start_line: int = 1,
                extra: tuple[str, ...] = ()) -> list[tuple]:
    """Bronze tuples: canonical columns (strings) + extras + audit columns, one per row dict."""
    spec = lookup_entity(kind, entity)
    source = source or kind
    out = []
    for i, r in enumerate(rows):
        unknown = set(r) - set(spec.columns) - set(extra) - {"_parse_error", "_raw_line", "_line_number"}
        assert not unknown, f"not columns of {kind}.{entity}: {unknown}"
        values = [r.get(c) for c in (*spec.columns, *extra)]
        line = r.get("_line_number", start_line + i)
        uri = f"/landing/{source}/{entity}/ingest_date={day.isoformat()}/{file}"
        out.append((*values, ingested_at, uri, line, r.get("_raw_line"), r.get("_parse_error"), "ingest-test", day))
    return out


def bronze_ddl(kind: str, entity: str, extra: tuple[str, ...] = ()) -> str:
    spec = lookup_entity(kind, entity)
    cols = [f"`{c}` string" for c in (*spec.columns, *extra)]
    cols += ["_ingested_at timestamp", "_source_file string", "_line_number bigint", "_raw_line string",
             "_parse_error string", "_run_id string", "ingest_date date"]
    return ", ".join(cols)


def write_bronze(spark, settings, kind: str, entity: str, rows: list[dict], *, day: dt.date, source: str | None = None,
                 file: str = "f-0001.csv", ingested_at: dt.datetime = INGESTED, start_line: int = 1,
                 extra: tuple[str, ...] = ()) -> None:
    """Append tiny bronze rows of one file to ``bronze.<source>_<entity>``."""
    source = source or kind
    data = bronze_rows(kind, entity, rows, day=day, file=file, source=source, ingested_at=ingested_at,
                       start_line=start_line, extra=extra)
    df = spark.createDataFrame(data, bronze_ddl(kind, entity, extra))
    delta.append(df, bronze_table(source, entity), settings)


def rows_of(spark, spec, settings, columns=None, where=None) -> list[dict]:
    """A Delta table's rows as dicts (selected columns), sorted for comparison."""
    df = delta.read_table(spark, spec, settings)
    if where:
        df = df.where(where)
    if columns:
        df = df.select(*columns)
    return sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda d: repr(sorted(d.items(), key=lambda kv: kv[0])))
