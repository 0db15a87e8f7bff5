"""Shape a decoded landing file into its bronze table: source mapping, canonical columns, audit columns.

Pure functions on Arrow tables (bronze decodes files in Python; see :mod:`transforms.bronze.readers`).
"""

from __future__ import annotations

import datetime as dt
import string

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.entities import EntitySchema
from transforms.bronze.schemas import BATCH_FIELDS, DECODE_FIELDS

_DECODE_NAMES = tuple(f.name for f in DECODE_FIELDS)
_FORMATTER = string.Formatter()


def template_fields(spec: str) -> list[str]:
    """Export columns a mapping value refers to: ``"col"`` -> [col]; ``"{a}-{b}"`` -> [a, b]."""
    if "{" not in spec:
        return [spec]
    return [name for _, name, _, _ in _FORMATTER.parse(spec) if name]


def _template(table: pa.Table, spec: str) -> pa.ChunkedArray | pa.Array:
    """A template such as ``{order_id}-{payment_sequential}`` evaluated per row (null if any part is null)."""
    parts: list = []
    n = table.num_rows
    for literal, name, _, _ in _FORMATTER.parse(spec):
        if literal:
            parts.append(pa.scalar(literal, pa.string()))
        if name:
            col = table[name]
            parts.append(col if col.type == pa.string() else col.cast(pa.string()))
    if not parts:
        return pa.nulls(n, pa.string())
    if len(parts) == 1:
        only = parts[0]
        return pa.repeat(only, n) if isinstance(only, pa.Scalar) else only
    return pc.binary_join_element_wise(*parts, pa.scalar("", pa.string()))


def apply_mapping(table: pa.Table, *, columns: dict[str, str], constants: dict[str, str]) -> pa.Table:
    """Rename export columns to canonical ones, evaluate templates, add constants; keep unmapped export columns.

    ``columns`` maps canonical column -> export column, or a template like ``{a}-{b}`` over export columns (and
    ``_line_number``). A canonical column whose export columns are absent from the file is left out (the entity
    check then reports it when required). An export column used by a plain rename is consumed (it appears under its
    canonical name only); one used only by a template is also kept. An unmapped export column whose name collides
    with a mapped canonical column is kept as ``src_<name>``. Constants fill good records only.
    """
    present = set(table.column_names)
    produced: dict[str, pa.Array | pa.ChunkedArray] = {}
    consumed: set[str] = set()
    for canonical, spec in columns.items():
        refs = template_fields(spec)
        if not all(r in present for r in refs):
            continue
        if "{" in spec:
            produced[canonical] = _template(table, spec)
        else:
            produced[canonical] = table[spec]
            consumed.add(spec)
    good = pc.is_null(table["_parse_error"]) if "_parse_error" in present else None
    for canonical, value in constants.items():
        const = pa.repeat(pa.scalar(value, pa.string()), table.num_rows)
        produced[canonical] = pc.if_else(good, const, pa.scalar(None, pa.string())) if good is not None else const
    names: list[str] = []
    arrays: list = []
    for canonical, arr in produced.items():
        names.append(canonical)
        arrays.append(arr)
    for name in table.column_names:
        if name in consumed or name in _DECODE_NAMES:
            continue
        out = name
        while out in produced or out in names:
            out = f"src_{out}"
        names.append(out)
        arrays.append(table[name])
    for name in _DECODE_NAMES:
        if name in present:
            names.append(name)
            arrays.append(table[name])
    return pa.Table.from_arrays(arrays, names=names)


def canonicalize_names(table: pa.Table, *, entity: EntitySchema) -> pa.Table:
    """Match canonical columns case-insensitively (``Order_ID`` -> ``order_id``); a column whose name would still
    clash with another ignoring case (Spark and Delta resolve names case-insensitively) is renamed ``src_<name>``."""
    canonical = {c.lower(): c for c in entity.columns}
    present = set(table.column_names)
    names: list[str] = []
    taken: set[str] = set()
    for name in table.column_names:
        target = name
        if name not in canonical.values() and name.lower() in canonical and canonical[name.lower()] not in present:
            target = canonical[name.lower()]
        while target.lower() in taken:
            target = f"src_{target}"
        taken.add(target.lower())
        names.append(target)
    return table if names == table.column_names else table.rename_columns(names)


def extra_columns(table: pa.Table, *, entity: EntitySchema) -> tuple[str, ...]:
    """Data columns of ``table`` that are not canonical columns of ``entity`` (schema drift / unmapped)."""
    canonical = set(entity.columns)
    return tuple(c for c in table.column_names if c not in canonical and c not in _DECODE_NAMES
                 and c not in {f.name for f in BATCH_FIELDS})


def conform_to_entity(table: pa.Table, *, entity: EntitySchema) -> pa.Table:
    """Canonical columns in contract order (null strings where absent), then extra columns, then decode columns."""
    n = table.num_rows
    present = set(table.column_names)
    arrays, names = [], []
    for c in entity.columns:
        names.append(c)
        arrays.append(table[c] if c in present else pa.nulls(n, pa.string()))
    for c in extra_columns(table, entity=entity):
        names.append(c)
        arrays.append(table[c])
    for f in DECODE_FIELDS:
        names.append(f.name)
        arrays.append(table[f.name])
    return pa.Table.from_arrays(arrays, names=names)


def add_audit_columns(
    table: pa.Table, *, source_file: str, run_id: str, ingested_at: dt.datetime, ingest_date: dt.date
) -> pa.Table:
    """Append the batch audit columns: ``_ingested_at``, ``_source_file``, ``_run_id``, ``ingest_date``."""
    n = table.num_rows
    values = {
        "_ingested_at": pa.repeat(pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")), n),
        "_source_file": pa.repeat(pa.scalar(source_file, pa.string()), n),
        "_run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "ingest_date": pa.repeat(pa.scalar(ingest_date, pa.date32()), n),
    }
    out = table
    for f in BATCH_FIELDS:
        out = out.append_column(f, values[f.name])
    return out
