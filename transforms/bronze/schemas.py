"""Bronze schemas: the explicit column contract of every bronze table, as Arrow schemas, and its checks.

A bronze table holds every canonical column of its entity as a string (null when a file lacks it), then any extra
columns a file carried (schema drift, or unmapped export columns of a mapped source), then the audit columns
(:data:`lakehouse.catalog.BRONZE_AUDIT_COLUMNS`).
"""

from __future__ import annotations

import re

import pyarrow as pa

from lakehouse.entities import EntitySchema

#: Columns every decoded landing file carries next to its data columns (filled by the readers).
DECODE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_line_number", pa.int64(), nullable=False),  # record number in the file (header excluded)
    pa.field("_raw_line", pa.string()),  # the raw text, only for records that could not be parsed
    pa.field("_parse_error", pa.string()),  # why the record could not be parsed (null for good records)
)

#: Columns added per batch (see :func:`transforms.bronze.conform.add_audit_columns`).
BATCH_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("_source_file", pa.string(), nullable=False),
    pa.field("_run_id", pa.string(), nullable=False),
    pa.field("ingest_date", pa.date32(), nullable=False),
)

#: Column names a landing file may not use itself: they are the bronze audit columns.
RESERVED_COLUMNS: frozenset[str] = frozenset(f.name for f in (*DECODE_FIELDS, *BATCH_FIELDS))

#: File formats bronze reads, by file-name extension.
FORMAT_BY_EXTENSION: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Delta (without column mapping) refuses these characters in column names.
_BAD_NAME_CHARS = re.compile(r"[ ,;{}()\n\t=]")


def landing_schema(entity: EntitySchema) -> pa.Schema:
    """The canonical data columns of an entity, all strings, in contract order."""
    return pa.schema([pa.field(c, pa.string()) for c in entity.columns])


def bronze_schema(entity: EntitySchema, extra_columns: tuple[str, ...] = ()) -> pa.Schema:
    """The full bronze schema of an entity: canonical columns, extra columns, then the audit columns."""
    data = [pa.field(c, pa.string()) for c in (*entity.columns, *extra_columns)]
    return pa.schema([*data, *DECODE_FIELDS, *BATCH_FIELDS])


def file_format(file_name: str, default: str | None = None) -> str | None:
    """The format (csv | jsonl | parquet) of a landing file from its extension, else ``default``."""
    name = file_name.lower()
    for ext, fmt in FORMAT_BY_EXTENSION.items():
        if name.endswith(ext):
            return fmt
    return default


def clean_column_name(name: str, position: int) -> str:
    """A Delta-safe column name for a header cell: trimmed, forbidden characters as ``_``, empty -> ``column_N``."""
    name = (name or "").strip()
    if not name:
        return f"column_{position + 1}"
    return _BAD_NAME_CHARS.sub("_", name)


def header_problems(columns: list[str]) -> list[str]:
    """Reasons a file's column names cannot be loaded (duplicates ignoring case, reserved audit names)."""
    problems = []
    seen: dict[str, str] = {}
    for c in columns:
        if c in RESERVED_COLUMNS:
            problems.append(f"column `{c}` is reserved for bronze audit columns")
        key = c.lower()
        if key in seen:
            problems.append(f"duplicate column `{c}` (also `{seen[key]}`)")
        seen.setdefault(key, c)
    return problems


def missing_required(columns: list[str] | tuple[str, ...], entity: EntitySchema) -> list[str]:
    """Required canonical columns of ``entity`` that are absent from ``columns``."""
    present = set(columns)
    return [c for c in entity.required if c not in present]


def too_many_extra_columns(path: str, extra: list[str] | tuple[str, ...], *, limit: int) -> str:
    """The reason to reject a file carrying more than ``limit`` unexpected columns ("" when within the cap).

    Every extra column a loaded file carries is added to its bronze table for good (``mergeSchema``), so a file with
    thousands of them (a broken export, a pivoted sheet) would widen every later version of the table. Such a file is
    rejected as a whole: nothing of it is written, it stays in landing, and the next run tries it again.
    """
    if len(extra) <= limit:
        return ""
    shown = ", ".join(f"`{c}`" for c in extra[:5]) + (", ..." if len(extra) > 5 else "")
    return (
        f"landing file {path}: {len(extra):,} unexpected columns ({shown}), more than the {limit:,} extra columns "
        "a file may add to its bronze table; not loaded (the file stays in landing). Fix the export, or raise "
        "LAKEHOUSE_MAX_EXTRA_COLUMNS and ingest the day again"
    )
