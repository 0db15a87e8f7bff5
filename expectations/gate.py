"""The quality gate: run a table's rule file as a Great Expectations checkpoint and split passed from quarantined rows.

How a batch goes through the gate (``run_gate``):

1. The batch is staged once (Parquet under ``_staging/<run_id>/gate/``) with a gate row id
   (``monotonically_increasing_id``) so that GX's many metric queries, the split and the caller's writes all read the
   same materialized rows instead of recomputing the upstream transform, and so that every row - including rows
   whose index columns are null or repeated - has its own identity.
2. The table's rules of the asked scope run as a GX Checkpoint (ephemeral context, Spark datasource, whole-dataframe
   batch) in two passes: a ``BOOLEAN_ONLY`` screen of every rule (counts only, no row lists), then only the rules
   that found failing rows (or have ``mostly``, or check an aggregate) again with ``result_format`` COMPLETE and
   ``unexpected_index_column_names = [gate row id, *index_columns]``. A clean rule needs no row lists. The screen
   checks uniqueness rules by grouping the keys (``_screen_form``); one that finds repeats runs as written.
3. Failing rows of ``quarantine`` rules are taken from GX's ``unexpected_index_list`` (map expectations), or, for
   ``unexpected_rows_expectation`` (whose GX result holds at most 200 rows), by running the same SQL in Spark over
   the staged batch and collecting the gate row ids. They are grouped per row (every failed rule, sorted, with a
   reason each), staged as a small Parquet table, and joined back on the gate row id: a left-anti join gives
   ``passed``, an inner join gives ``quarantined``. Every input row lands in exactly one of the two.
4. ``warn`` rules are recorded; a failing ``fail`` rule raises ``QualityGateFailed`` naming the rule, the table, the
   failing count and up to five example keys. The trimmed validation result is stored for the data docs.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from expectations.rules import (
    ROW_SOURCE_GX,
    ROW_SOURCE_SQL,
    Rule,
    RuleFileError,
    Suite,
    _import_gx,
    load_suite,
)
from lakehouse.errors import LakehouseError, QualityGateFailed
from lakehouse.quarantine import QUARANTINE_COLUMNS, empty_quarantine
from lakehouse.settings import Settings

GATE_ROW_ID = "_gate_row_id"
EXAMPLE_KEYS = 5
# GX is not thread-safe and its SQL metrics share one temp view name ("tmp_view") per Spark session.
_GX_LOCK = threading.Lock()


@dataclass
class GateResult:
    """What the gate did to one batch."""

    table: str
    scope: str
    run_id: str
    passed: Any  # DataFrame: the input rows that failed no quarantine rule, same columns as the input
    quarantined: Any  # DataFrame in lakehouse.quarantine.QUARANTINE_SCHEMA, one row per quarantined input row
    rules: list[dict] = field(default_factory=list)  # name, severity, success, unexpected_count, examples, ...
    validation: Any = None  # the GX ExpectationSuiteValidationResult
    staged_uri: str | None = None
    duration_s: float = 0.0

    @property
    def success(self) -> bool:
        """True when no ``fail`` rule failed (warn and quarantine rules never stop a run)."""
        return all(r["success"] for r in self.rules if r["severity"] == "fail")

    def failures(self, severity: str | None = None) -> list[dict]:
        """The rules that failed (optionally of one severity)."""
        return [r for r in self.rules if not r["success"] and severity in (None, r["severity"])]

    def summary(self) -> list[dict]:
        """JSON-ready rule results for run records (``TableRun.gate_results``)."""
        return [{k: v for k, v in r.items()} for r in self.rules]

    def cleanup(self, settings: Settings) -> None:
        """Delete the staged batch (call after ``passed`` and ``quarantined`` have been written)."""
        if self.staged_uri:
            from lakehouse.storage import Storage

            storage = Storage(settings)
            storage.delete_dir(self.staged_uri)
            storage.delete_dir(self.staged_uri + "_failed")


# ---------------------------------------------------------------------------------------------------------------
# GX plumbing
# ---------------------------------------------------------------------------------------------------------------
def _gx_context():
    """A fresh ephemeral GX context: in-memory stores, no analytics, no progress bars."""
    _import_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _skip_result_store(ctx) -> None:
    """Do not keep the full (COMPLETE) result in the in-memory results store: GX serializes it value by value to
    JSON, about 4 min for 300k failing keys. The gate stores a trimmed copy for the data docs itself."""
    store = ctx.validation_results_store
    store.store_validation_results = lambda *args, **kwargs: None


def suite_name(table: str, scope: str) -> str:
    """The GX suite name of a table's rules of one scope, e.g. ``silver.order_lines.row``."""
    return f"{table}.{scope}"


def _run_checkpoint(batch, suite: Suite, rules: list[Rule], *, scope: str, run_id: str, index_names: list[str],
                    complete: bool, resolve_table):
    """Run ``rules`` on ``batch`` as GX Checkpoints; returns the suite validation result.

    Two passes over the same batch: every rule first runs with ``BOOLEAN_ONLY`` (GX computes only each rule's
    unexpected count, no row lists), then only the rules whose details matter run again with
    the full result format (COMPLETE with the failing rows' index keys when ``complete``, else SUMMARY): the ones that
    failed or raised, the ones with ``mostly`` (they may pass with failing rows) and the aggregate ones (their
    observed value is the result). A clean map or SQL rule needs no second query: it found no failing row. Its result
    is filled in as GX would report a clean rule.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    name = suite_name(suite.table, scope)
    ctx = _gx_context()
    _skip_result_store(ctx)
    asset = ctx.data_sources.add_spark(name="lakehouse").add_dataframe_asset(name=name)
    batch_definition = asset.add_batch_definition_whole_dataframe("batch")
    detail_format: dict[str, Any] = {
        "result_format": "COMPLETE" if complete else "SUMMARY",
        "partial_unexpected_count": 20,
        "return_unexpected_index_query": False,  # a pandas/spark snippet string; it does not run over Spark Connect
    }
    if index_names:
        detail_format["unexpected_index_column_names"] = index_names

    def run(part: list[Rule], pass_name: str, result_format: dict):
        gx_suite = ctx.suites.add(
            gx.ExpectationSuite(
                name=f"{name}{pass_name}",
                expectations=[r.to_gx(resolve_table=resolve_table) for r in part],
                meta={"table": suite.table, "scope": scope, "description": suite.description},
            )
        )
        validation = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}{pass_name}", data=batch_definition, suite=gx_suite))
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(
            name=f"gate {name}{pass_name}", validation_definitions=[validation], actions=[], result_format=result_format))
        result = checkpoint.run(batch_parameters={"dataframe": batch}, run_id=RunIdentifier(run_name=run_id))
        return next(iter(result.run_results.values()))

    forms = [_screen_form(r) for r in rules]
    counted = _count_sql_rules(batch, [(r, f) for r, f in zip(rules, forms) if f.row_source == ROW_SOURCE_SQL],
                               resolve_table=resolve_table)
    screen = run([f for r, f in zip(rules, forms) if r.name not in counted], "", {"result_format": "BOOLEAN_ONLY"})
    screened = {_rule_of(res): res for res in screen.results}
    for rule, form in zip(rules, forms):  # a result is reported under the rule's own expectation
        if rule.name in counted:
            screened[rule.name] = _counted_result(rule, counted[rule.name], resolve_table=resolve_table)
        elif form is not rule:
            screened[rule.name].expectation_config = rule.to_gx(resolve_table=resolve_table).configuration
    detailed = [r for r in rules if _needs_detail(r, screened[r.name])]
    if len(detailed) == len(rules):
        validation = run(rules, " details", detail_format)
    else:
        validation = screen
        details = {_rule_of(res): res for res in run(detailed, " details", detail_format).results} if detailed else {}
        clean = _clean_result(batch, complete=complete, index_names=index_names)
        for rule in rules:
            if rule.name not in details:
                screened[rule.name].result = clean(rule)
        validation.results = [details.get(rule.name) or screened[rule.name] for rule in rules]
        _restate(validation)
    validation.suite_name = name
    return validation


def _count_sql_rules(batch, pairs: list[tuple[Rule, Rule]], *, resolve_table) -> dict[str, int]:
    """The screen of the SQL rules: how many rows each one's query returns, all in one Spark query.

    GX runs an ``unexpected_rows_expectation`` as two queries (its rows and their count), each with its own temporary
    view: four to five Spark Connect round trips per rule, and the rule's query executed twice. Here every SQL rule
    of the pass (``pairs``: rule, screen form) is one branch of a ``UNION ALL`` over one temporary view of the batch.
    Only rules that return rows go on to GX (the detail pass runs them as written); a rule that returns none is
    reported as GX reports a clean one. If the combined query does not run (a rule's SQL is broken), nothing is
    counted and GX screens the SQL rules one by one as before, so the broken rule gets GX's own error.
    """
    if not pairs:
        return {}
    from lakehouse.delta import temp_view

    spark = batch.sparkSession
    view = temp_view(batch, "gate_screen")
    branches = []
    for i, (_, form) in enumerate(pairs):
        query = _rule_query(form, view, resolve_table=resolve_table).strip().rstrip(";")
        branches.append(f"SELECT {i} AS rule_index, count(*) AS unexpected FROM ({query}) AS rule_{i}")
    try:
        rows = spark.sql(" UNION ALL ".join(branches)).collect()
    except Exception:  # noqa: BLE001 - GX screens them one by one and reports the failing rule's error
        return {}
    finally:
        spark.catalog.dropTempView(view)
    counts = {int(r["rule_index"]): int(r["unexpected"]) for r in rows}
    if set(counts) != set(range(len(pairs))):
        return {}
    return {rule.name: counts[i] for i, (rule, _) in enumerate(pairs)}


def _rule_query(rule: Rule, view: str, *, resolve_table) -> str:
    """A SQL rule's ``unexpected_rows_query`` over the batch registered as ``view``, ``{table:...}`` resolved."""
    return rule.to_gx(resolve_table=resolve_table).unexpected_rows_query.replace("{batch}", view)


def _counted_result(rule: Rule, unexpected: int, *, resolve_table):
    """A SQL rule's screen result from its row count, in GX's form (a BOOLEAN_ONLY ``unexpected_rows_expectation``)."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    return ExpectationValidationResult(
        success=unexpected == 0,
        expectation_config=rule.to_gx(resolve_table=resolve_table).configuration,
        result={"observed_value": unexpected},
        exception_info={"raised_exception": False, "exception_traceback": None, "exception_message": None},
    )


def _restate(validation) -> None:
    """Success and statistics of a suite result from its results (some of them were not GX's screen's own)."""
    results = validation.results
    good = sum(1 for r in results if r.success)
    validation.success = good == len(results)
    validation.statistics = {
        "evaluated_expectations": len(results),
        "successful_expectations": good,
        "unsuccessful_expectations": len(results) - good,
        "success_percent": 100.0 * good / len(results) if results else None,
    }


def _screen_form(rule: Rule) -> Rule:
    """The rule as the BOOLEAN_ONLY screen checks it: a uniqueness rule as the equivalent grouping query.

    GX checks ``expect_column_values_to_be_unique`` and ``expect_compound_columns_to_be_unique`` on Spark with a
    window count over the key, which sorts every row: on Sail about five times the engine CPU of grouping the keys
    (1.8M silver events: 1.5 s against 0.3 s). The screen only has to say whether some key repeats, so it runs an
    ``unexpected_rows_expectation`` returning the repeated keys, with the expectation's own null rules (a column's
    nulls are not values; ``ignore_row_if`` for a column list). A rule that finds repeats, or that has other
    arguments (``mostly``, a row condition), runs as written in the detail pass, so its reported result is GX's own.
    """
    kwargs = rule.kwargs
    if rule.expectation == "expect_column_values_to_be_unique" and set(kwargs) == {"column"}:
        columns = [kwargs["column"]]
        ignore = "any_value_is_missing"
    elif rule.expectation == "expect_compound_columns_to_be_unique" and set(kwargs) <= {"column_list", "ignore_row_if"}:
        columns = list(kwargs["column_list"])
        ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
    else:
        return rule
    quoted = [f"`{c}`" for c in columns]
    missing = [f"{c} IS NULL" for c in quoted]
    where = {"all_values_are_missing": f"WHERE NOT ({' AND '.join(missing)})",
             "any_value_is_missing": f"WHERE NOT ({' OR '.join(missing)})", "never": ""}[ignore]
    keys = ", ".join(quoted)
    query = f"SELECT {keys}, count(*) AS copies FROM {{batch}} {where} GROUP BY {keys} HAVING count(*) > 1"
    return rule.model_copy(update={"expectation": "unexpected_rows_expectation", "kwargs": {"unexpected_rows_query": query}})


def _rule_of(res) -> str:
    return (res.expectation_config.meta or {}).get("rule")


def _needs_detail(rule: Rule, screened) -> bool:
    """Whether a rule must run again with the full result format after the BOOLEAN_ONLY screen."""
    if not screened.success or _exception_message(screened) is not None:
        return True
    if rule.row_source not in (ROW_SOURCE_GX, ROW_SOURCE_SQL):
        return True  # an aggregate: its observed value is the result, and computing it is one query anyway
    mostly = rule.kwargs.get("mostly")
    return mostly is not None and float(mostly) < 1.0


def _clean_result(batch, *, complete: bool, index_names: list[str]):
    """The result GX reports for a map or SQL rule that found no failing row, for one rule at a time."""
    count: list[int] = []

    def result(rule: Rule) -> dict:
        if rule.row_source == ROW_SOURCE_SQL:
            return {"observed_value": 0, "details": {"unexpected_rows": []}}
        if not count:
            count.append(int(batch.count()))
        out: dict[str, Any] = {
            "element_count": count[0], "unexpected_count": 0, "unexpected_percent": 0.0,
            "partial_unexpected_list": [], "partial_unexpected_counts": [],
        }
        if index_names:
            out["partial_unexpected_index_list"] = []
            out["unexpected_index_column_names"] = list(index_names)
        if complete:
            out["unexpected_list"] = []
            if index_names:
                out["unexpected_index_list"] = []
        return out

    return result


def _exception_message(result) -> str | None:
    """The exception a GX expectation raised while computing, if any."""
    info = result.exception_info or {}
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for item in candidates:
        if item.get("raised_exception"):
            return " ".join(str(item.get("exception_message") or "error").split())[:500]
    return None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _examples(rule: Rule, result: dict, index_columns: Sequence[str]) -> list:
    """Up to ``EXAMPLE_KEYS`` failing index keys (or values, or the observed value) from a GX result."""
    entries = result.get("unexpected_index_list") or result.get("partial_unexpected_index_list")
    if entries and index_columns:
        return [{c: _json_value(e.get(c)) for c in index_columns} for e in entries[:EXAMPLE_KEYS]]
    rows = (result.get("details") or {}).get("unexpected_rows")
    if rows:
        cols = [c for c in index_columns if c in rows[0]] if index_columns else []
        if cols:
            return [{c: _json_value(r.get(c)) for c in cols} for r in rows[:EXAMPLE_KEYS]]
        return [{k: _json_value(v) for k, v in list(r.items())[:6] if k != GATE_ROW_ID} for r in rows[:EXAMPLE_KEYS]]
    values = result.get("unexpected_list") or result.get("partial_unexpected_list")
    if values:
        return [_json_value(v) for v in values[:EXAMPLE_KEYS]]
    return []


def _rule_result(rule: Rule, gx_result, index_columns: Sequence[str]) -> dict:
    """One rule's outcome as plain data."""
    result = dict(gx_result.result or {})
    error = _exception_message(gx_result)
    count = result.get("unexpected_count")
    if count is None and rule.row_source == ROW_SOURCE_SQL:
        count = result.get("observed_value")
    out = {
        "name": rule.name,
        "expectation": rule.expectation,
        "severity": rule.severity,
        "scope": rule.scope,
        "success": bool(gx_result.success) and error is None,
        "unexpected_count": int(count) if isinstance(count, (int, float)) else None,
        "examples": [] if error else _examples(rule, result, index_columns),
        "description": rule.description,
    }
    if rule.row_source not in (ROW_SOURCE_GX, ROW_SOURCE_SQL) and "observed_value" in result:
        out["observed_value"] = _json_value(result.get("observed_value"))
    if error:
        out["error"] = error
    return out


def _sql_examples(spark, batch, rules: list[Rule], rule_results: list[dict], *, index_columns, resolve_table) -> None:
    """Fill example keys of failing SQL rules (GX keeps their rows only in COMPLETE results) with a LIMIT query."""
    from lakehouse.delta import temp_view

    wanted = [(rule, res) for rule, res in zip(rules, rule_results)
              if rule.row_source == ROW_SOURCE_SQL and not res["success"] and not res["examples"] and not res.get("error")]
    if not wanted or not index_columns:
        return
    view = temp_view(batch, "gate_examples")
    try:
        for rule, res in wanted:
            query = _rule_query(rule, view, resolve_table=resolve_table)
            try:
                rows = spark.sql(query)
                cols = [c for c in index_columns if c in rows.columns]
                if cols:
                    res["examples"] = [{c: _json_value(r[c]) for c in cols} for r in rows.select(*cols).limit(EXAMPLE_KEYS).collect()]
            except Exception:  # noqa: BLE001 - examples are a courtesy; GX already recorded the failure
                pass
    finally:
        spark.catalog.dropTempView(view)


def _fail_message(table: str, failed: list[dict], rules_path: str) -> str:
    parts = []
    for r in failed:
        if r.get("error"):
            parts.append(f"rule `{r['name']}` ({r['expectation']}, severity {r['severity']}) could not run: {r['error']}")
            continue
        if r.get("unexpected_count") is not None:
            what = f"failed on {r['unexpected_count']} row{'s' if r['unexpected_count'] != 1 else ''}"
        else:
            what = f"failed (observed {json.dumps(r.get('observed_value'), default=str)})"
        examples = ", ".join(json.dumps(e, default=str) for e in r["examples"][:EXAMPLE_KEYS])
        parts.append(
            f"rule `{r['name']}` ({r['expectation']}, severity {r['severity']}) {what}"
            + (f"; example keys: {examples}" if examples else "")
        )
    return (
        f"quality gate failed for {table}: " + " | ".join(parts)
        + f". Fix the data upstream, or the rule in {rules_path}, and rerun."
    )


# ---------------------------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------------------------
def _string_map_json(columns: Sequence[str]):
    """A JSON object of ``columns`` with string values and explicit nulls (Sail's to_json drops null struct fields)."""
    from pyspark.sql import functions as F

    if not columns:
        return F.lit("{}")
    parts = []
    for c in columns:
        parts += [F.lit(c), F.col(f"`{c}`").cast("string")]
    return F.to_json(F.create_map(*parts))


def _row_json_column(schema, columns: Sequence[str]):
    """The quarantine ``row_json``: the batch's ``_row_json`` (a JSON string, or a struct turned into JSON only for
    quarantined rows), else every column of the row as a JSON object."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    if "_row_json" in columns:
        field = schema["_row_json"]
        if isinstance(field.dataType, StructType):
            names = [f.name for f in field.dataType.fields]
            parts = []
            for n in names:
                parts += [F.lit(n), F.col("_row_json").getField(n).cast("string")]
            return F.to_json(F.create_map(*parts)) if parts else F.lit("{}")
        return F.col("_row_json").cast("string")
    return _string_map_json(columns)


def _reason(rule: Rule, entry: dict | None, index_names: Sequence[str]) -> str:
    """``rule_name: description (column=value)`` for one failing row."""
    text = f"{rule.name}: {rule.description}"
    if entry:
        shown = {k: v for k, v in entry.items() if k not in index_names}
        if shown:
            detail = ", ".join(f"{k}={json.dumps(_json_value(v))}" for k, v in shown.items())
            text += f" ({detail})"
    return text


def _failing_rows(spark, batch, rules_by_name: dict[str, Rule], gx_results: dict[str, Any], *, index_names,
                  id_type: str, resolve_table, table: str):
    """An Arrow table (gate row id, failed_rules, reasons): one row per input row failing any quarantine rule.

    Aggregated in Python: the failing keys are already here (GX's index lists; SQL rules' ids are collected), and
    Sail's sorted collect_set/collect_list aggregation is ~50x slower than plain Python for this.
    """
    import pyarrow as pa

    from lakehouse.delta import temp_view

    failures: dict[Any, list[tuple[str, str]]] = {}
    for name, rule in rules_by_name.items():
        if rule.severity != "quarantine":
            continue
        res = gx_results[name]
        if rule.row_source == ROW_SOURCE_GX:
            result = dict(res.result or {})
            entries = result.get("unexpected_index_list") or []
            expected = int(result.get("unexpected_count") or 0)
            if len(entries) != expected:
                raise LakehouseError(
                    f"quality gate for {table}: rule `{name}` reported {expected} failing rows but listed "
                    f"{len(entries)} keys; refusing to split (no row may pass unchecked)"
                )
            # Reasons name the failing value; most failing rows repeat a few values, so cache the text per value.
            shown_cols = [k for k in (entries[0] if entries else {}) if k not in index_names]
            cache: dict = {}
            setdefault = failures.setdefault
            for entry in entries:
                key = tuple([entry.get(c) for c in shown_cols])
                try:
                    reason = cache[key]
                except KeyError:
                    reason = cache[key] = _reason(rule, entry, index_names)
                except TypeError:  # an unhashable value (e.g. a list): no caching
                    reason = _reason(rule, entry, index_names)
                setdefault(entry[GATE_ROW_ID], []).append((name, reason))
        elif rule.row_source == ROW_SOURCE_SQL:
            view = temp_view(batch, "gate_batch")
            query = _rule_query(rule, view, resolve_table=resolve_table)
            try:
                rows = spark.sql(query)
                if GATE_ROW_ID not in rows.columns:
                    raise RuleFileError(
                        f"rule `{name}` of {table} quarantines rows, so its unexpected_rows_query must return the "
                        f"checked rows' columns: write SELECT * FROM {{batch}} WHERE ... (or SELECT {{batch}}.*)"
                    )
                ids = rows.select(GATE_ROW_ID).distinct().toArrow().column(0).to_pylist()
            except RuleFileError:
                raise
            except Exception as exc:  # noqa: BLE001 - a SQL error becomes a sentence
                raise RuleFileError(f"rule `{name}` of {table}: its SQL does not run: {' '.join(str(exc).split())[:400]}") from None
            finally:
                spark.catalog.dropTempView(view)
            reason = _reason(rule, None, index_names)
            for row_id in ids:
                failures.setdefault(row_id, []).append((name, reason))
    if not failures:
        return None
    row_ids, failed_rules, reasons = [], [], []
    for row_id, items in failures.items():
        if len(items) > 1:
            items = sorted(set(items))
        row_ids.append(row_id)
        failed_rules.append(sorted({n for n, _ in items}))
        reasons.append("; ".join(r for _, r in items))
    return pa.table({
        GATE_ROW_ID: pa.array(row_ids, pa.int64() if id_type == "long" else pa.string()),
        "failed_rules": pa.array(failed_rules, pa.list_(pa.string())),
        "reasons": pa.array(reasons, pa.string()),
    })


def _arrow_frame(spark, table, settings: Settings, uri: str | None):
    """A DataFrame of an Arrow table: written as Parquet to ``uri`` (staging, local or S3) when given, else inline."""
    if uri is None:
        return spark.createDataFrame(table)
    import pyarrow.parquet as pq

    from lakehouse.storage import Storage

    storage = Storage(settings)
    storage.delete_dir(uri)
    fs, path = storage.fs(uri)
    fs.create_dir(path, recursive=True)
    pq.write_table(table, f"{path}/part-00000.parquet", filesystem=fs)
    return spark.read.parquet(uri)


def _key_columns(table: str, columns: Sequence[str], index_columns: Sequence[str]) -> tuple[str, ...]:
    """The business key of ``table`` from the catalogue when its columns are present, else the index columns."""
    from lakehouse import catalog

    try:
        keys = catalog.table(table).keys
    except KeyError:
        keys = ()
    if keys and all(k in columns for k in keys):
        return tuple(keys)
    return tuple(index_columns)


# ---------------------------------------------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------------------------------------------
def run_gate(
    spark,
    df,
    *,
    table: str,
    run_id: str,
    settings: Settings,
    scope: str = "row",
    index_columns: Sequence[str] = ("_source_file", "_line_number"),
    key_columns: Sequence[str] | None = None,
    ingest_date=None,
    suite: Suite | None = None,
    stage: bool | None = None,
    store_results: bool = True,
) -> GateResult:
    """Run ``table``'s rules of ``scope`` on ``df`` as a GX checkpoint; split passed/quarantined; raise on ``fail``."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    if scope not in ("row", "table"):
        raise LakehouseError(f"gate scope must be 'row' or 'table', got {scope!r}")
    suite = suite or load_suite(table)
    if suite.table != table:
        raise RuleFileError(f"the suite given for {table} declares table {suite.table}")
    rules = suite.for_scope(scope)
    columns = list(df.columns)
    index_columns = tuple(index_columns or ())
    missing = [c for c in index_columns if c not in columns]
    if missing:
        raise LakehouseError(
            f"quality gate for {table}: index column(s) {', '.join(missing)} not in the batch (columns: {', '.join(columns)})"
        )
    if GATE_ROW_ID in columns:
        raise LakehouseError(f"quality gate for {table}: the batch already has a column {GATE_ROW_ID}; drop it first")
    if not rules:
        return GateResult(table, scope, run_id, df, empty_quarantine(spark), [], None, None, time.perf_counter() - started)

    split = any(r.severity == "quarantine" for r in rules)
    stage = (scope == "row") if stage is None else stage
    staged_uri = None
    id_type = "long"
    if stage:
        from lakehouse.storage import Storage

        storage = Storage(settings)
        staged_uri = storage.staging_dir(run_id, f"gate/{suite_name(table, scope)}")
        batch = storage.stage_frame(spark, df.withColumn(GATE_ROW_ID, F.monotonically_increasing_id()), staged_uri)
    elif split:
        # Not staged: the row id is a hash of the whole row, so identical rows share it (and always share a verdict).
        # The input must be deterministic (no rand(), current_timestamp(), ...) because it is evaluated many times.
        batch = df.withColumn(GATE_ROW_ID, F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])), 256))
        id_type = "string"
    else:
        batch = df

    from lakehouse.catalog import TableSpec, sql_ref

    def resolve_table(qualified: str) -> str:
        layer, name = qualified.split(".", 1)
        return sql_ref(TableSpec(layer, name), settings)

    index_names = ([GATE_ROW_ID] if split else []) + list(index_columns)
    with _GX_LOCK:
        validation = _run_checkpoint(
            batch, suite, rules, scope=scope, run_id=run_id, index_names=index_names, complete=split,
            resolve_table=resolve_table,
        )
    by_rule: dict[str, Any] = {}
    for res in validation.results:
        by_rule[(res.expectation_config.meta or {}).get("rule")] = res
    rule_results = [_rule_result(r, by_rule[r.name], index_columns) for r in rules]
    _sql_examples(spark, batch, rules, rule_results, index_columns=index_columns, resolve_table=resolve_table)

    if store_results:
        from expectations.docs import store_validation

        store_validation(settings, validation, table=table, scope=scope, run_id=run_id)

    from expectations.rules import rule_file

    stopping = [r for r in rule_results if not r["success"] and (r["severity"] == "fail" or (r.get("error") and r["severity"] == "quarantine"))]
    if stopping:
        exc = QualityGateFailed(_fail_message(table, stopping, str(rule_file(table).relative_to(rule_file(table).parents[1]))))
        exc.table = table  # type: ignore[attr-defined]
        exc.rules = rule_results  # type: ignore[attr-defined]
        raise exc

    failing = None
    if split:
        failing = _failing_rows(
            spark, batch, {r.name: r for r in rules}, by_rule, index_names=index_names, id_type=id_type,
            resolve_table=resolve_table, table=table,
        )
    if failing is None:
        passed = batch.drop(GATE_ROW_ID) if GATE_ROW_ID in batch.columns else batch
        return GateResult(table, scope, run_id, passed, empty_quarantine(spark), rule_results, validation, staged_uri,
                          time.perf_counter() - started)

    per_row = _arrow_frame(spark, failing, settings, staged_uri + "_failed" if staged_uri else None)

    passed = batch.join(per_row.select(GATE_ROW_ID), on=GATE_ROW_ID, how="left_anti").select(*[F.col(f"`{c}`") for c in columns])
    keys = tuple(key_columns) if key_columns else _key_columns(table, columns, index_columns)
    row_json = _row_json_column(df.schema, columns)
    if "ingest_date" in columns:
        day = F.col("ingest_date").cast("date")
    else:
        day = F.lit(ingest_date.isoformat() if hasattr(ingest_date, "isoformat") else ingest_date).cast("date")
    quarantined = batch.join(per_row, on=GATE_ROW_ID, how="inner").select(
        F.lit(table).alias("source_table"),
        _string_map_json(keys).alias("business_key"),
        _string_map_json(index_columns).alias("index_key"),
        row_json.alias("row_json"),
        F.col("failed_rules"),
        F.col("reasons"),
        F.lit(run_id).alias("run_id"),
        day.alias("ingest_date"),
        F.current_timestamp().alias("quarantined_at"),
        F.lit(None).cast("string").alias("released_run_id"),
    )
    assert tuple(quarantined.columns) == QUARANTINE_COLUMNS
    return GateResult(table, scope, run_id, passed, quarantined, rule_results, validation, staged_uri,
                      time.perf_counter() - started)
