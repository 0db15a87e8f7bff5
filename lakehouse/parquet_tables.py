"""The ``parquet`` table format: the engine reads and writes plain Parquet; lakehouse keeps each table's Delta log.

``LAKEHOUSE_TABLE_FORMAT=parquet`` exists for Spark engines without Delta Lake (here: Apache Spark on the JVM, whose
Delta jars cannot be downloaded; it is how the benchmark compares Sail with classic Spark on the same flows). Every
table is still a Delta table on disk, so the manifest, time travel, the API and every delta-rs reader work unchanged:

- **write**: the engine writes the rows as Parquet files into a new folder under the table's location
  (``<location>/part-<id>/``); lakehouse then commits those files to the table's Delta log with delta-rs
  (``append`` adds them; ``overwrite`` replaces every file; new columns of an append are added to the schema first);
- **read**: the current (or an older) snapshot's file list and schema come from the Delta log (delta-rs); the engine
  reads exactly those Parquet files with that schema (a missing column reads as null);
- **replaceWhere, DELETE, UPDATE and MERGE** are emulated copy-on-write: the new content of the whole table is
  computed by one SQL query over the current snapshot (``SELECT ... WHERE NOT pred`` for a delete; a left join of the
  target with the source for a MERGE) and committed as an overwrite. Old files stay (time travel), as in Delta.

Code reaches this module through :mod:`lakehouse.delta` and, for statements and readers that name Delta directly
(``MERGE INTO delta.`<path>` ...``, ``spark.read.format("delta")``, ``df.write.format("delta")``), through
:func:`install`, which :func:`lakehouse.spark.get_spark` calls in parquet mode: it routes those calls of the Spark
Connect client here. Nothing else changes. Differences from Delta, by design:

- local warehouse paths only (the delta-rs commit reads the written files from disk);
- tables are not physically partitioned (partition columns are ordinary columns; the Delta log has no partitions);
- a MERGE whose WHEN MATCHED clauses would see several source rows for one target row is not rejected (Delta raises);
  callers deduplicate their sources on the merge key, as Delta requires anyway;
- concurrent writers to one table are not coordinated beyond delta-rs' optimistic commit (the last overwrite wins).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from lakehouse.errors import ConfigError, LakehouseError

_lock = threading.RLock()
_active = False
_orig: dict[str, object] = {}
_view_ids = itertools.count()
_views: dict[tuple[str, str, int], str] = {}
_DELTA_REF = re.compile(r"delta\.`([^`]+)`", re.IGNORECASE)


class ParquetTableError(LakehouseError):
    """A statement cannot be emulated on the parquet table format."""


# ---------------------------------------------------------------------------------------------------------------
# Snapshots: the Delta log (delta-rs) says which Parquet files and which schema make up a table version
# ---------------------------------------------------------------------------------------------------------------
def _local(location: str) -> str:
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(
            f"LAKEHOUSE_TABLE_FORMAT=parquet supports local warehouse paths only, not {location}: use the delta "
            "format for object stores"
        )
    return location.removeprefix("file://")


def _delta_table(location: str, version: int | None = None):
    from deltalake import DeltaTable

    return DeltaTable(_local(location), version=version)


def exists(location: str) -> bool:
    """True when the table's Delta log exists."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(_local(location))


def _struct(schema_json: str):
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(schema_json))


def _nullable(struct):
    """The same schema with every top-level field nullable (Delta stores what the files can hold)."""
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in struct.fields])


def snapshot(location: str, version: int | None = None):
    """(version, Spark schema, absolute file paths) of the table at ``version`` (default: the latest)."""
    dt = _delta_table(location, version)
    return dt.version(), _struct(dt.schema().to_json()), list(dt.file_uris())


def read(spark, location: str, version: int | None = None):
    """The table (at ``version``) as a DataFrame: its Parquet files read with its Delta schema."""
    _, struct, files = snapshot(location, version)
    if not files:
        return spark.createDataFrame([], struct)
    return spark.read.schema(struct).parquet(*files)


def _view(spark, location: str, version: int | None = None) -> str:
    """A temporary view over the table at ``version`` (one per table version and session, reused)."""
    v, struct, files = snapshot(location, version)
    key = (getattr(spark, "session_id", id(spark)), _local(location), v)
    with _lock:
        name = _views.get(key)
        if name is None:
            name = f"_lh_parquet_{next(_view_ids)}"
            (spark.read.schema(struct).parquet(*files) if files else spark.createDataFrame([], struct)) \
                .createOrReplaceTempView(name)
            _views[key] = name
    return name


# ---------------------------------------------------------------------------------------------------------------
# Writes: the engine writes Parquet, delta-rs commits
# ---------------------------------------------------------------------------------------------------------------
def _write_files(df, location: str) -> list:
    """Write ``df`` as Parquet into a new folder of the table; the delta-rs add actions of the files written."""
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    root = _local(location)
    folder = f"part-{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
    df.write.mode("overwrite").parquet(f"{root}/{folder}")
    adds = []
    for dirpath, _, names in os.walk(f"{root}/{folder}"):
        for name in sorted(names):
            if not name.endswith(".parquet") or name.startswith((".", "_")):
                continue
            path = os.path.join(dirpath, name)
            rows = pq.read_metadata(path).num_rows
            if rows == 0:  # an empty frame's schema-only file: nothing to add
                continue
            st = os.stat(path)
            adds.append(AddAction(os.path.relpath(path, root), st.st_size, {}, int(st.st_mtime * 1000), True,
                                  json.dumps({"numRecords": rows})))
    return adds


def _delta_schema(struct):
    from deltalake import Schema

    return Schema.from_json(_nullable(struct).json())


def _conform(df, struct):
    """``df`` with the table's columns (cast to the table's types) first, then any new columns."""
    from pyspark.sql import functions as F

    have = set(df.columns)
    cols = [F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) if f.name in have else F.lit(None).cast(f.dataType).alias(f.name)
            for f in struct.fields]
    known = {f.name for f in struct.fields}
    cols += [F.col(f"`{c}`") for c in df.columns if c not in known]
    return df.select(*cols)


def write(df, location: str, *, mode: str = "append", replace_where: str | None = None, merge_schema: bool = False,
          overwrite_schema: bool = True) -> None:
    """Write ``df`` to the table: ``append`` or ``overwrite`` (all rows, or only those matching ``replace_where``)."""
    from deltalake import Field
    from deltalake.transaction import create_table_with_add_actions

    mode = {"errorifexists": "error", "default": "error", None: "error"}.get(mode, mode)
    root = _local(location)
    table_exists = exists(root)
    if table_exists and mode == "error":
        raise ParquetTableError(f"table {location} already exists (write mode 'error')")
    if table_exists and mode == "ignore":
        return
    if not table_exists or (mode == "overwrite" and replace_where is None and overwrite_schema):
        create_table_with_add_actions(root, _delta_schema(df.schema), _write_files(df, root),
                                      mode="overwrite" if table_exists else "error")
        return
    _, struct, _ = snapshot(root)
    if mode == "overwrite":
        if replace_where is not None:  # keep the rows outside the predicate, replace the rest with df
            kept = read(df.sparkSession, root).where(f"NOT coalesce(({replace_where}), false)")
            df = kept.unionByName(_conform(df, struct).select(*kept.columns))
        create_table_with_add_actions(root, _delta_schema(struct), _write_files(_conform(df, struct), root),
                                      mode="overwrite")
        return
    # append
    conformed = _conform(df, struct)
    new = [f for f in conformed.schema.fields if f.name not in {g.name for g in struct.fields}]
    if not merge_schema:
        conformed = conformed.select(*[f"`{f.name}`" for f in struct.fields])
    adds = _write_files(conformed, root)
    if not adds:
        return
    dt = _delta_table(root)
    if merge_schema and new:
        dt.alter.add_columns([Field.from_json(json.dumps(f.jsonValue() | {"nullable": True})) for f in new])
        dt = _delta_table(root)
    dt.create_write_transaction(adds, "append", dt.schema())


def _replace(spark, location: str, query: str) -> None:
    """Replace the table's content with the result of ``query`` (keeping its schema)."""
    from deltalake.transaction import create_table_with_add_actions

    _, struct, _ = snapshot(location)
    df = _raw_sql(spark, query)
    create_table_with_add_actions(_local(location), _delta_schema(struct), _write_files(_conform(df, struct), location),
                                  mode="overwrite")


# ---------------------------------------------------------------------------------------------------------------
# SQL: DELETE, UPDATE and MERGE emulated; other statements read the current snapshots
# ---------------------------------------------------------------------------------------------------------------
def _raw_sql(spark, query: str):
    fn = _orig.get("sql")
    return fn(spark, query) if fn is not None else spark.sql(query)


def _scan(text: str):
    """(start, end, WORD) of every word of ``text`` outside quotes, backticks, parentheses and CASE ... END."""
    out = []
    i, n, depth, case = 0, len(text), 0, 0
    while i < n:
        c = text[i]
        if c in "'\"`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" and c != "`" else 1
            i = j + 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j].upper()
            prev = text[i - 1] if i else " "
            if depth == 0 and prev != ".":
                if word == "END" and case:
                    case -= 1
                elif word == "CASE":
                    case += 1
                elif not case:
                    out.append((i, j, word))
            i = j
        else:
            i += 1
    return out


def _split(text: str, sep: str = ",") -> list[str]:
    """Split at top-level ``sep`` (outside quotes, backticks and parentheses)."""
    parts, depth, start, i, n = [], 0, 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" and c != "`" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1].replace("``", "`") if name.startswith("`") and name.endswith("`") else name


def _assignments(text: str, alias: str) -> dict[str, str]:
    """``col = expr, ...`` -> {column: expr} (a ``<alias>.`` prefix on the column is dropped)."""
    out = {}
    for part in _split(text):
        m = re.match(r"\s*((?:`[^`]+`|\w+)(?:\s*\.\s*(?:`[^`]+`|\w+))?)\s*=(?![=>])\s*(.+)$", part, re.S)
        if not m:
            raise ParquetTableError(f"cannot read the assignment {part!r}")
        names = [_unquote(x) for x in re.findall(r"`[^`]+`|\w+", m.group(1))]
        if len(names) == 2 and names[0].lower() != alias.lower():
            raise ParquetTableError(f"assignment to {m.group(1)!r}: only the target ({alias}) can be updated")
        out[names[-1]] = m.group(2).strip()
    return out


@dataclass
class _Clause:
    kind: str  # matched | not_matched | not_matched_by_source
    condition: str | None
    action: str  # update | delete | insert
    values: dict[str, str] | None = None  # column -> expression; None: UPDATE SET * / INSERT *


@dataclass
class _Merge:
    location: str
    target_alias: str
    source: str
    source_alias: str
    on: str
    clauses: list[_Clause] = field(default_factory=list)


def _target(text: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"\s*delta\.`([^`]+)`\s*(?:(?:AS\s+)?(\w+))?\s*", text, re.I | re.S)
    if not m:
        raise ParquetTableError(f"the target {text.strip()!r} is not a path-based delta.`<location>` reference")
    return m.group(1), m.group(2)


def parse_merge(statement: str) -> _Merge:
    """Parse ``MERGE INTO delta.`<path>` t USING <source> s ON <cond> WHEN ...`` (the clauses Delta supports)."""
    words = _scan(statement)
    def first(word, after=0):
        return next((w for w in words if w[2] == word and w[0] >= after), None)

    into, using, on = first("INTO"), first("USING"), None
    if not (into and using):
        raise ParquetTableError("MERGE needs INTO <target> USING <source>")
    on = first("ON", using[1])
    whens = [w for w in words if w[2] == "WHEN" and on and w[0] > on[0]]
    if not (on and whens):
        raise ParquetTableError("MERGE needs ON <condition> and at least one WHEN clause")
    location, talias = _target(statement[into[1]:using[0]])
    src = statement[using[1]:on[0]].strip()
    m = re.fullmatch(r"(.*?)(?:\s+(?:AS\s+)?(\w+))?", src, re.I | re.S)
    source, salias = m.group(1).strip(), m.group(2)
    if not salias or source.upper().endswith(" AS"):
        raise ParquetTableError("MERGE: give the source an alias (USING <source> s)")
    merge = _Merge(location, talias or "__lh_t", source, salias, statement[on[1]:whens[0][0]].strip())
    bounds = [w[0] for w in whens] + [len(statement)]
    for start, end in zip(bounds, bounds[1:]):
        merge.clauses.append(_parse_clause(statement[start:end], merge.target_alias))
    return merge


def _parse_clause(text: str, talias: str) -> _Clause:
    words = _scan(text)
    then = next((w for w in words if w[2] == "THEN"), None)
    if then is None:
        raise ParquetTableError(f"WHEN clause without THEN: {text.strip()!r}")
    head = text[:then[0]]
    m = re.match(r"\s*WHEN\s+(NOT\s+MATCHED(?:\s+BY\s+(?:TARGET|SOURCE))?|MATCHED)\b(.*)$", head, re.I | re.S)
    if not m:
        raise ParquetTableError(f"cannot read the clause {text.strip()!r}")
    which = " ".join(m.group(1).upper().split())
    kind = {"MATCHED": "matched", "NOT MATCHED": "not_matched", "NOT MATCHED BY TARGET": "not_matched",
            "NOT MATCHED BY SOURCE": "not_matched_by_source"}[which]
    rest = m.group(2).strip()
    condition = None
    if rest:
        if not rest.upper().startswith("AND"):
            raise ParquetTableError(f"cannot read the clause condition {rest!r}")
        condition = rest[3:].strip()
    action = text[then[1]:].strip()
    up = action.upper()
    if up == "DELETE":
        return _Clause(kind, condition, "delete")
    if up.startswith("UPDATE"):
        body = re.match(r"UPDATE\s+SET\s+(.*)$", action, re.I | re.S).group(1).strip()
        return _Clause(kind, condition, "update", None if body == "*" else _assignments(body, talias))
    if up.startswith("INSERT"):
        body = action[6:].strip()
        if body == "*":
            return _Clause(kind, condition, "insert", None)
        m = re.match(r"\((.*)\)\s*VALUES\s*\((.*)\)\s*$", body, re.I | re.S)
        if not m:
            raise ParquetTableError(f"cannot read INSERT {body!r}")
        cols, vals = [_unquote(c) for c in _split(m.group(1))], _split(m.group(2))
        if len(cols) != len(vals):
            raise ParquetTableError(f"INSERT lists {len(cols)} columns and {len(vals)} values")
        return _Clause(kind, condition, "insert", dict(zip(cols, vals)))
    raise ParquetTableError(f"unsupported MERGE action {action!r}")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _rewrite_rows(struct, cases, value, target: str, t: str, joined: str) -> str:
    """SELECT every target row once with the first applicable clause applied (deleted rows left out)."""
    cols = []
    for f in struct.fields:
        whens = " ".join(f"WHEN {cond} THEN {value(c, f.name)}" for cond, c in cases)
        cols.append(f"CAST(CASE {whens} ELSE {t}.{_q(f.name)} END AS {f.dataType.simpleString()}) AS {_q(f.name)}")
    where = ""
    if any(c.action == "delete" for _, c in cases):
        deletes = " ".join(f"WHEN {cond} THEN {'true' if c.action == 'delete' else 'false'}" for cond, c in cases)
        where = f"WHERE NOT (CASE {deletes} ELSE false END)"
    return f"SELECT {', '.join(cols)} FROM {target} AS {t} {joined} {where}"


def merge(spark, statement: str) -> int:
    """Run a MERGE statement copy-on-write; returns the new table version."""
    mg = parse_merge(statement)
    loc = _local(mg.location)
    if not exists(loc):
        raise ParquetTableError(f"MERGE target {mg.location} is not a table")
    _, struct, _ = snapshot(loc)
    target = _view(spark, loc)
    t, s = mg.target_alias, mg.source_alias
    src_cols = set(_raw_sql(spark, f"SELECT * FROM {mg.source} AS __lh_probe LIMIT 0").columns)
    matched = [c for c in mg.clauses if c.kind == "matched"]
    by_source = [c for c in mg.clauses if c.kind == "not_matched_by_source"]
    inserts = [c for c in mg.clauses if c.kind == "not_matched"]

    def value(clause: _Clause, col: str) -> str:
        if clause.action == "delete":
            return f"{t}.{_q(col)}"
        if clause.values is None:  # SET * / INSERT *
            if col in src_cols:
                return f"{s}.{_q(col)}"
            return f"{t}.{_q(col)}" if clause.action == "update" else "NULL"
        if col in clause.values:
            return clause.values[col]
        return f"{t}.{_q(col)}" if clause.action == "update" else "NULL"

    def guarded(clauses: list[_Clause], guard: str) -> list[tuple[str, _Clause]]:
        return [(f"{guard} AND ({c.condition})" if c.condition else guard, c) for c in clauses]

    parts = []
    if matched:
        is_m, not_m = f"{s}.__lh_matched IS NOT NULL", f"{s}.__lh_matched IS NULL"
        cases = guarded(matched, is_m) + guarded(by_source, not_m)
        joined = f"LEFT JOIN (SELECT *, true AS __lh_matched FROM {mg.source} AS __lh_src) AS {s} ON {mg.on}"
        parts.append(_rewrite_rows(struct, cases, value, target, t, joined))
    elif by_source:  # matched rows stay as they are (one row each, however many source rows match them)
        parts.append(f"SELECT {t}.* FROM {target} AS {t} LEFT SEMI JOIN {mg.source} AS {s} ON {mg.on}")
        joined = f"LEFT ANTI JOIN {mg.source} AS {s} ON {mg.on}"
        parts.append(_rewrite_rows(struct, guarded(by_source, "true"), value, target, t, joined))
    else:
        parts.append(f"SELECT * FROM {target}")
    if inserts:
        cases = [(f"({c.condition})" if c.condition else "true", c) for c in inserts]
        cols = []
        for f in struct.fields:
            if len(cases) == 1:
                expr = value(cases[0][1], f.name)
            else:
                expr = "CASE " + " ".join(f"WHEN {cond} THEN {value(c, f.name)}" for cond, c in cases) + " END"
            cols.append(f"CAST({expr} AS {f.dataType.simpleString()}) AS {_q(f.name)}")
        any_cond = " OR ".join(cond for cond, _ in cases)
        parts.append(f"SELECT {', '.join(cols)} FROM {mg.source} AS {s} LEFT ANTI JOIN {target} AS {t} ON {mg.on} "
                     f"WHERE {any_cond}")
    _replace(spark, loc, " UNION ALL ".join(f"({p})" for p in parts))
    return _delta_table(loc).version()


def delete(spark, location: str, predicate: str, alias: str | None = None) -> bool:
    """DELETE the rows matching ``predicate``; False (and no commit) when no row matches."""
    loc = _local(location)
    view = _view(spark, loc)
    a = f" AS {alias}" if alias else ""
    if not _raw_sql(spark, f"SELECT 1 FROM {view}{a} WHERE {predicate} LIMIT 1").collect():
        return False
    _replace(spark, loc, f"SELECT * FROM {view}{a} WHERE NOT coalesce(({predicate}), false)")
    return True


def update(spark, location: str, assignments: str, predicate: str | None, alias: str | None = None) -> None:
    """UPDATE the rows matching ``predicate`` (all rows when None)."""
    loc = _local(location)
    _, struct, _ = snapshot(loc)
    view = _view(spark, loc)
    values = _assignments(assignments, alias or "")
    cond = f"coalesce(({predicate}), false)" if predicate else "true"
    cols = [(f"CASE WHEN {cond} THEN {values[f.name]} ELSE {_q(f.name)} END" if f.name in values else _q(f.name))
            + f" AS {_q(f.name)}" for f in struct.fields]
    a = f" AS {alias}" if alias else ""
    _replace(spark, loc, f"SELECT {', '.join(cols)} FROM {view}{a}")


def execute(spark, statement: str):
    """Run a SQL statement that names ``delta.`<path>``` tables: DML is emulated, queries read the snapshots."""
    text = statement.strip()
    head = text[:12].upper()
    if head.startswith("MERGE"):
        version = merge(spark, text)
        return spark.createDataFrame([(version,)], "version long")
    if head.startswith("DELETE"):
        m = re.match(r"DELETE\s+FROM\s+(delta\.`[^`]+`(?:\s+(?:AS\s+)?(?!WHERE\b)\w+)?)\s+WHERE\s+(.*)$", text, re.I | re.S)
        if m is None:
            raise ParquetTableError(f"cannot emulate {text[:80]!r}: DELETE FROM delta.`<path>` WHERE <predicate>")
        loc, alias = _target(m.group(1))
        delete(spark, loc, m.group(2), alias)
        return spark.createDataFrame([], "num_affected_rows long")
    if head.startswith("UPDATE"):
        words = _scan(text)
        set_w = next((w for w in words if w[2] == "SET"), None)
        where_w = next((w for w in words if w[2] == "WHERE" and set_w and w[0] > set_w[0]), None)
        if set_w is None:
            raise ParquetTableError(f"cannot emulate {text[:80]!r}: UPDATE delta.`<path>` SET ...")
        loc, alias = _target(text[6:set_w[0]])
        body = text[set_w[1]:where_w[0] if where_w else len(text)]
        update(spark, loc, body, text[where_w[1]:].strip() if where_w else None, alias)
        return spark.createDataFrame([], "num_affected_rows long")
    if head.startswith(("INSERT", "CREATE", "REPLACE", "OPTIMIZE", "VACUUM", "DESCRIBE", "ALTER")):
        raise ParquetTableError(f"{text.split()[0].upper()} on a delta.`<path>` table is not emulated by the parquet format")
    return _raw_sql(spark, _DELTA_REF.sub(lambda m: _view(spark, m.group(1)), text))


# ---------------------------------------------------------------------------------------------------------------
# Routing the Spark Connect client's Delta calls here
# ---------------------------------------------------------------------------------------------------------------
def install(spark=None, settings=None) -> None:
    """Route ``spark.sql`` statements naming ``delta.`<path>```, ``spark.read.format("delta")`` and
    ``df.write.format("delta")`` of every Spark Connect session in this process to this module (idempotent)."""
    global _active
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.readwriter import DataFrameReader, DataFrameWriter
    from pyspark.sql.connect.session import SparkSession

    with _lock:
        if settings is not None and getattr(settings, "warehouse_root", None):
            _local(str(settings.warehouse_root))  # fail early for an object store
        if spark is not None:
            with contextlib.suppress(Exception):  # JVM Spark writes INT96 timestamps by default; Delta wants micros
                spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        _active = True
        if _orig:
            return
        _orig["sql"] = SparkSession.sql
        _orig["load"] = DataFrameReader.load
        _orig["save"] = DataFrameWriter.save

        def sql(self, sqlQuery, args=None, **kwargs):
            if _active and isinstance(sqlQuery, str) and _DELTA_REF.search(sqlQuery) and not args and not kwargs:
                return execute(self, sqlQuery)
            return _orig["sql"](self, sqlQuery, args, **kwargs)

        def load(self, path=None, format=None, schema=None, **options):
            fmt = (format or self._format or "").lower()
            if _active and fmt == "delta" and isinstance(path, str):
                opts = {**self._options, **{k: str(v) for k, v in options.items()}}
                version = opts.get("versionAsOf")
                return read(self._client, path, int(version) if version is not None else None)
            return _orig["load"](self, path, format, schema, **options)

        def save(self, path=None, format=None, mode=None, partitionBy=None, **options):
            fmt = (format or self._write.source or "").lower()
            if _active and fmt == "delta" and isinstance(path, str):
                self.mode(mode).options(**options)
                opts = {k.lower(): str(v).lower() for k, v in self._write.options.items()}
                raw = {k.lower(): v for k, v in self._write.options.items()}
                write(DataFrame(self._df, self._spark), path, mode=self._write.mode or "error",
                      replace_where=raw.get("replacewhere"), merge_schema=opts.get("mergeschema") == "true",
                      overwrite_schema=opts.get("overwriteschema", "true") == "true")
                return None
            return _orig["save"](self, path, format, mode, partitionBy, **options)

        SparkSession.sql = sql
        DataFrameReader.load = load
        DataFrameWriter.save = save


def uninstall() -> None:
    """Stop routing Delta calls here (tests)."""
    global _active
    with _lock:
        _active = False
        _views.clear()


def is_active() -> bool:
    """True while Delta calls are routed to the parquet format."""
    return _active


@contextlib.contextmanager
def activated(spark=None):
    """Route Delta calls to the parquet format within the block (tests)."""
    install(spark)
    try:
        yield
    finally:
        uninstall()
