"""Quality rules as data: the schema of an ``expectations/<layer>.<table>.yaml`` rule file and its loader.

A rule file declares one table's suite::

    table: silver.order_lines
    description: Unified sale and return lines from every system.
    rules:
      - name: quantity_not_zero                        # snake_case, unique in the file
        expectation: expect_column_values_to_not_be_in_set   # a GX 1.x expectation, snake_case
        kwargs: {column: quantity, value_set: [0]}
        severity: quarantine                           # warn | quarantine | fail
        scope: row                                     # row (the incoming batch) | table (the whole table)
        description: A line must move at least one unit.

Loading a file checks every key (unknown keys are errors), builds every rule's Great Expectations expectation (so a
misspelt expectation or kwarg fails at load, not at run time), and checks that ``quarantine`` rules can say WHICH rows
failed: column, column-pair and multicolumn map expectations, and ``unexpected_rows_expectation`` (SQL over
``{batch}``). In SQL, ``{table:<layer>.<name>}`` names another lakehouse table (for referential-integrity and
reconciliation rules); the gate resolves it to that table's Delta location.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakehouse.errors import LakehouseError

RULES_DIR = Path(__file__).resolve().parent

Severity = Literal["warn", "quarantine", "fail"]
Scope = Literal["row", "table"]

# How a rule's failing rows are found: GX's unexpected_index_list (map expectations), our own Spark SQL run of the
# rule's query (unexpected_rows_expectation: GX returns at most 200 of its rows), or not at all (aggregate rules).
ROW_SOURCE_GX = "gx_index"
ROW_SOURCE_SQL = "sql"
ROW_SOURCE_NONE = "none"

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_TABLE = re.compile(r"^(bronze|silver|gold|system)\.[a-z][a-z0-9_]*$")
TABLE_REF = re.compile(r"\{table:((?:bronze|silver|gold|system)\.[a-z][a-z0-9_]*)\}")
# GX's own severity vocabulary, shown in the data docs.
GX_SEVERITY = {"warn": "info", "quarantine": "warning", "fail": "critical"}


class RuleFileError(LakehouseError):
    """A rule file under ``expectations/`` is missing or invalid."""


def _decimal_to_float(d) -> float:
    return float(d)


def _import_gx() -> None:
    """Import Great Expectations with its analytics off (the gate never phones home) and its Decimal fix applied.

    GX 1.24's ``util.convert_decimal_to_float`` calls ``inspect.stack()`` for every Decimal it serializes (only to
    decide whether to log a precision warning): about 0.1 s per value, so a result holding a few hundred DECIMAL
    values (money columns in unexpected rows) took a minute to store. The replacement returns the same float.
    """
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations.util as gx_util

    if gx_util.convert_decimal_to_float is not _decimal_to_float:
        gx_util.convert_decimal_to_float = _decimal_to_float


_warm_up: list = []

#: What a run's own threads import while GX loads beside them, and GX imports too: the data libraries and the Spark
#: Connect client (GX's ``compatibility.pyspark`` imports these ``pyspark`` modules). :func:`warm_up_gx` imports them
#: in the caller's thread before it starts the GX thread. Two threads importing one package graph for the first time
#: at once can leave one of them holding the other's half-initialised module (Python breaks the module-lock deadlock
#: that way): ``pyspark.errors.utils`` imports ``pyspark`` itself, and a ``lakehouse pipeline`` in CI failed with
#: "cannot import name 'is_remote_only' from partially initialized module 'pyspark.util'" when ``get_spark`` and the
#: GX thread imported pyspark together. ``tests/test_gx_warm_up.py`` checks that this list covers every module a run
#: imports before its first gate (ingest, then refine typing a batch) that GX imports too.
SHARED_IMPORTS = (
    "numpy", "pandas", "pyarrow",
    "pyspark", "pyspark.errors", "pyspark.sql", "pyspark.sql.functions", "pyspark.sql.types", "pyspark.sql.window",
    "pyspark.sql.readwriter", "pyspark.sql.connect.session", "pyspark.sql.connect.dataframe",
)


def import_shared() -> None:
    """Import :data:`SHARED_IMPORTS` in this thread (one missing here is missing for GX too: the gate reports it)."""
    import importlib

    for name in SHARED_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def warm_up_gx() -> None:
    """Start importing Great Expectations in a background thread and return at once.

    The import is about 3 s of pure Python. A run that will reach a gate calls this while the engine is busy with
    other work (bronze before refine, a batch being typed), so the first gate does not wait for it. The import lock
    makes a gate that needs GX sooner wait for the import in progress. A failed import here is ignored: the gate
    imports again and reports the error. Calling it again does nothing.
    """
    import sys
    import threading

    if _warm_up or "great_expectations.expectations" in sys.modules:
        return
    import_shared()  # first, in this thread: see SHARED_IMPORTS

    def run() -> None:
        try:
            _import_gx()  # great_expectations.util: the whole package (its __init__ loads every part)
        except Exception:  # noqa: BLE001 - the gate imports again and reports it
            pass

    thread = threading.Thread(target=run, name="gx-import")  # not a daemon: an exit waits for the import
    _warm_up.append(thread)
    thread.start()


@lru_cache(maxsize=None)
def expectation_class(name: str) -> type:
    """The Great Expectations class registered under a snake_case expectation name."""
    _import_gx()
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        return get_expectation_impl(name)
    except ExpectationNotFoundError:
        raise ValueError(
            f"unknown Great Expectations expectation {name!r} (use the snake_case name of a GX 1.x expectation, "
            "e.g. expect_column_values_to_not_be_null or unexpected_rows_expectation)"
        ) from None


def row_source(name: str) -> str:
    """How the gate identifies the failing rows of an expectation (see ``ROW_SOURCE_*``)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation

    cls = expectation_class(name)
    if issubclass(cls, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)):
        return ROW_SOURCE_GX
    if issubclass(cls, UnexpectedRowsExpectation):
        return ROW_SOURCE_SQL
    return ROW_SOURCE_NONE


class Rule(BaseModel):
    """One named check of a table: a GX expectation with its kwargs, a severity, a scope and a description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="snake_case, unique within the file; quarantine rows list it in failed_rules")
    expectation: str = Field(description="a GX 1.x expectation name in snake_case")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="the expectation's arguments")
    severity: Severity
    scope: Scope = "row"
    description: str = Field(min_length=1, description="why the rule exists; shown in reasons and the data docs")

    @field_validator("name")
    @classmethod
    def _snake_name(cls, value: str) -> str:
        if not _SNAKE.match(value):
            raise ValueError(f"rule name {value!r} must be snake_case (a-z, 0-9, _; starting with a letter)")
        return value

    @field_validator("expectation")
    @classmethod
    def _known_expectation(cls, value: str) -> str:
        if not _SNAKE.match(value):
            raise ValueError(f"expectation {value!r} must be a snake_case GX expectation name")
        expectation_class(value)
        return value

    @model_validator(mode="after")
    def _buildable(self) -> "Rule":
        source = row_source(self.expectation)
        if source == ROW_SOURCE_SQL and "{batch}" not in str(self.kwargs.get("unexpected_rows_query", "")):
            raise ValueError("unexpected_rows_query must select from {batch} (the rows being checked)")
        # Build the GX expectation once: GX's own pydantic model rejects unknown or missing kwargs.
        try:
            self.to_gx()
        except Exception as exc:  # noqa: BLE001 - GX raises pydantic v1 ValidationError, ValueError, ...
            detail = " ".join(str(exc).split())
            raise ValueError(f"kwargs do not fit {self.expectation}: {detail}") from None
        if self.severity == "quarantine":
            if self.scope != "row":
                raise ValueError(
                    "severity quarantine needs scope row (a table-scope rule checks the whole table and cannot "
                    "take rows out of an incoming batch); use warn or fail"
                )
            if source == ROW_SOURCE_NONE:
                raise ValueError(
                    f"{self.expectation} checks an aggregate and cannot say which rows failed, so it cannot "
                    "quarantine; use severity warn or fail, or a column/multicolumn map expectation or "
                    "unexpected_rows_expectation"
                )
        return self

    @property
    def row_source(self) -> str:
        """How the gate finds this rule's failing rows (``gx_index``, ``sql`` or ``none``)."""
        return row_source(self.expectation)

    @property
    def table_refs(self) -> list[str]:
        """Other tables named in the rule's SQL as ``{table:layer.name}``."""
        return TABLE_REF.findall(str(self.kwargs.get("unexpected_rows_query", "")))

    def to_gx(self, *, resolve_table=None):
        """The GX expectation object (``resolve_table(qualified) -> SQL reference`` fills ``{table:...}``)."""
        kwargs = dict(self.kwargs)
        query = kwargs.get("unexpected_rows_query")
        if isinstance(query, str):
            resolve = resolve_table or (lambda qualified: f"`{qualified}`")
            kwargs["unexpected_rows_query"] = TABLE_REF.sub(lambda m: resolve(m.group(1)), query)
        cls = expectation_class(self.expectation)
        return cls(
            **kwargs,
            meta={"rule": self.name, "severity": self.severity, "scope": self.scope, "description": self.description},
            notes=f"**{self.name}** — severity `{self.severity}`, scope `{self.scope}`: {self.description}",
            severity=GX_SEVERITY[self.severity],
        )


class Suite(BaseModel):
    """One table's rule file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(description="layer.name, e.g. silver.order_lines; the file is named <table>.yaml")
    description: str = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    @field_validator("table")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError(f"table {value!r} must be <layer>.<name> with layer bronze|silver|gold|system")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> "Suite":
        seen: set[str] = set()
        dupes = sorted({r.name for r in self.rules if r.name in seen or seen.add(r.name)})
        if dupes:
            raise ValueError(f"rule names must be unique in a file; repeated: {', '.join(dupes)}")
        return self

    def for_scope(self, scope: Scope) -> list[Rule]:
        """The rules checked at ``scope`` (row: each incoming batch; table: the whole table)."""
        return [r for r in self.rules if r.scope == scope]

    def rule(self, name: str) -> Rule:
        """One rule by name."""
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"{self.table} has no rule {name!r}")


def rule_file(table: str, directory: Path | str | None = None) -> Path:
    """Where a table's rule file lives: ``expectations/<layer>.<table>.yaml``."""
    return Path(directory or RULES_DIR) / f"{table}.yaml"


def all_rule_files(directory: Path | str | None = None) -> list[Path]:
    """Every rule file (``*.yaml`` / ``*.yml``) in ``expectations/`` (or ``directory``), sorted."""
    base = Path(directory or RULES_DIR)
    return sorted(p for p in base.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = err.get("loc", ())
        where = ".".join(str(p) for p in loc) or "file"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def load_rule_file(path: Path | str) -> Suite:
    """Parse and validate one rule file, naming the file and the offending key on any error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleFileError(f"{path}: rule file not found") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise RuleFileError(f"{path}: expected a mapping with keys table, description, rules")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise RuleFileError(f"{path}: {_describe(exc)}") from None
    stem = path.name.rsplit(".", 1)[0]
    if stem != suite.table:
        raise RuleFileError(f"{path}: file declares table {suite.table!r}; name the file {suite.table}.yaml")
    return suite


def load_suite(table: str, directory: Path | str | None = None) -> Suite:
    """The suite of ``table`` (e.g. ``silver.order_lines``) from ``expectations/<table>.yaml``."""
    path = rule_file(table, directory)
    if not path.exists():
        raise RuleFileError(f"{path}: no rule file for {table}; add one (see 'Quality rules' in README.md)")
    return load_rule_file(path)
