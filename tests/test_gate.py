"""The quality gate: GX checkpoint over Sail, the passed/quarantined split, fail rules, quarantine writes, data docs."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import subprocess
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from expectations.gate import GATE_ROW_ID, run_gate
from expectations.rules import RuleFileError, Suite, load_rule_file
from lakehouse.errors import QualityGateFailed
from lakehouse.quarantine import QUARANTINE_COLUMNS, QUARANTINE_SCHEMA, read_quarantine, write_quarantine

EXAMPLE = Path(__file__).parent / "data" / "rules" / "silver.gate_example.yaml"
TABLE = "silver.gate_example"
DAY = dt.date(2026, 1, 3)
SCHEMA = (
    "_source_file string, _line_number long, order_id string, line_number int, sku string, quantity int, "
    "unit_price decimal(12,2), discount_amount decimal(12,2), line_total decimal(12,2), line_type string, "
    "email string, ingest_date date"
)


def line(f, n, order, ln, sku, qty, price, disc, total, kind="sale", email=None):
    return (f, n, order, ln, sku, qty, Decimal(price), Decimal(disc), Decimal(total), kind, email, DAY)


# (file, line) -> what the example suite must say about the row.
ROWS = [
    line("a.csv", 1, "o1", 1, "SKU-0001", 2, "5.00", "0.00", "10.00", email="x@shop"),  # passes (warn on email only)
    line("a.csv", 2, "o1", 2, None, 1, "5.00", "0.00", "5.00", email="y@shop"),  # sku_not_null
    line("a.csv", 3, "o2", 1, "bad", 5000, "1.00", "0.00", "7.00", kind="weird", email="x@shop"),  # five rules
    line("a.csv", 4, "o3", 1, "SKU-0003", -1, "4.00", "0.50", "-4.50", kind="return"),  # passes (return line)
    line("a.csv", 5, "o4", 1, "SKU-0004", 3, "2.00", "1.00", "5.00"),  # passes (total = 3*2-1)
    line("a.csv", 6, "o5", 1, "SKU-0005", 1, "2.00", "0.00", "2.00"),  # line_key_unique (o5/1 twice)
    line("a.csv", 7, "o5", 1, "SKU-0005", 1, "2.00", "0.00", "2.00"),  # line_key_unique
]
EXPECTED_FAILED = {
    ("a.csv", 2): ["sku_not_null"],
    ("a.csv", 3): ["line_total_matches", "line_type_known", "quantity_in_range", "sku_format"],
    ("a.csv", 6): ["line_key_unique"],
    ("a.csv", 7): ["line_key_unique"],
}


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_rule_file(EXAMPLE)


def _keys(df):
    return sorted((r["_source_file"], r["_line_number"]) for r in df.select("_source_file", "_line_number").collect())


@pytest.mark.unit
def test_split_every_rule_kind(spark, settings, suite):
    df = spark.createDataFrame(ROWS, SCHEMA)
    result = run_gate(spark, df, table=TABLE, run_id="refine-t1", settings=settings, suite=suite)

    assert result.passed.columns == df.columns
    assert _keys(result.passed) == [("a.csv", 1), ("a.csv", 4), ("a.csv", 5)]
    assert tuple(result.quarantined.columns) == QUARANTINE_COLUMNS
    rows = {tuple(json.loads(r["index_key"]).values()): r for r in result.quarantined.collect()}
    assert {(f, int(n)) for f, n in rows} == set(EXPECTED_FAILED)
    for (f, n), row in rows.items():
        assert row["failed_rules"] == EXPECTED_FAILED[(f, int(n))]
        assert row["source_table"] == TABLE and row["run_id"] == "refine-t1" and row["ingest_date"] == DAY
        assert row["released_run_id"] is None
        for rule in row["failed_rules"]:  # one human-readable reason per failed rule, with its description
            assert re.search(rf"(^|; ){rule}: ", row["reasons"]), (rule, row["reasons"])
        original = json.loads(row["row_json"])
        assert original["_source_file"] == f and original["_line_number"] == n
    worst = rows[("a.csv", "3")]
    assert "quantity_in_range: Quantity must be a plausible count. (quantity=5000)" in worst["reasons"]
    assert 'sku_format: SKUs look like SKU-0000. (sku="bad")' in worst["reasons"]
    assert "sku_not_null: Every line names the product sold. (sku=null)" in rows[("a.csv", "2")]["reasons"]
    assert json.loads(rows[("a.csv", "2")]["row_json"])["sku"] is None  # nulls kept in the original row

    by_name = {r["name"]: r for r in result.rules}
    assert {n: (r["success"], r["unexpected_count"]) for n, r in by_name.items()} == {
        "sku_not_null": (False, 1),
        "quantity_in_range": (False, 1),
        "line_type_known": (False, 1),
        "sku_format": (False, 1),
        "line_key_unique": (False, 2),
        "line_total_matches": (False, 1),
        "email_unique": (False, 2),  # warn: recorded, quarantines nothing (row 1 passed)
        "batch_not_empty": (True, None),
    }
    assert "total_non_negative_sum" not in by_name  # table scope: not run on a batch
    assert by_name["line_total_matches"]["examples"] == [{"_source_file": "a.csv", "_line_number": 3}]
    assert by_name["email_unique"]["severity"] == "warn" and result.success
    assert result.validation is not None and result.validation.success is False

    # The staged batch is gone after cleanup; the frames were derived from it.
    assert result.staged_uri and Path(result.staged_uri).exists()
    result.cleanup(settings)
    assert not Path(result.staged_uri).exists()


@pytest.mark.unit
def test_rows_with_null_or_repeated_index_keys_land_exactly_once(spark, settings, suite):
    rows = [
        line(None, None, "n1", 1, "SKU-0001", 1, "1.00", "0.00", "1.00"),  # null key, passes
        line(None, None, "n2", 1, None, 1, "1.00", "0.00", "1.00"),  # null key, fails sku_not_null
        line(None, None, "n3", 1, "SKU-0003", 1, "1.00", "0.00", "9.00"),  # null key, fails line_total (SQL rule)
        line("b.csv", None, "n4", 1, "SKU-0004", 1, "1.00", "0.00", "1.00"),  # half-null key, passes
        line("b.csv", 9, "n5", 1, "SKU-0005", 1, "1.00", "0.00", "1.00"),  # same key as the next row, passes
        line("b.csv", 9, "n6", 1, "SKU-9", 1, "1.00", "0.00", "1.00"),  # same key, fails sku_format
    ]
    df = spark.createDataFrame(rows, SCHEMA)
    result = run_gate(spark, df, table=TABLE, run_id="refine-t2", settings=settings, suite=suite)
    passed = sorted(r["order_id"] for r in result.passed.collect())
    quarantined = result.quarantined.collect()
    assert passed == ["n1", "n4", "n5"]
    assert sorted(json.loads(q["row_json"])["order_id"] for q in quarantined) == ["n2", "n3", "n6"]
    assert len(passed) + len(quarantined) == df.count()
    null_key = '{"_source_file":null,"_line_number":null}'
    assert sorted(q["failed_rules"][0] for q in quarantined if q["index_key"] == null_key) == [
        "line_total_matches", "sku_not_null"]
    result.cleanup(settings)


@pytest.mark.unit
def test_fail_rule_stops_with_rule_table_count_and_five_examples(spark, settings):
    suite = Suite.model_validate({
        "table": TABLE, "description": "d", "rules": [
            {"name": "sku_present", "expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"},
             "severity": "fail", "description": "Every line names its product."},
            {"name": "qty_small", "expectation": "expect_column_values_to_be_between",
             "kwargs": {"column": "quantity", "min_value": 0, "max_value": 10}, "severity": "quarantine",
             "description": "d"},
        ]})
    rows = [line("c.csv", i, f"o{i}", 1, None if i <= 7 else "SKU-0001", 1, "1.00", "0.00", "1.00") for i in range(1, 10)]
    with pytest.raises(QualityGateFailed) as err:
        run_gate(spark, spark.createDataFrame(rows, SCHEMA), table=TABLE, run_id="refine-t3", settings=settings, suite=suite)
    message = str(err.value)
    assert "silver.gate_example" in message and "`sku_present`" in message and "failed on 7 rows" in message
    assert message.count('"_source_file": "c.csv"') == 5  # up to five example keys
    assert '{"_source_file": "c.csv", "_line_number": 1}' in message
    assert {r["name"]: r["success"] for r in err.value.rules} == {"sku_present": False, "qty_small": True}


def _gate_one_mostly_rule(spark, settings, severity: str, run_id: str):
    """The gate over 4 rows (file m.csv), the first without a SKU, with one not-null rule of ``mostly`` 0.5."""
    suite = Suite.model_validate({
        "table": TABLE, "description": "d", "rules": [
            {"name": "sku_mostly_present", "expectation": "expect_column_values_to_not_be_null",
             "kwargs": {"column": "sku", "mostly": 0.5}, "severity": severity, "description": "d"}]})
    rows = [line("m.csv", i, f"o{i}", 1, None if i == 1 else "SKU-0001", 1, "1.00", "0.00", "1.00") for i in range(1, 5)]
    return run_gate(spark, spark.createDataFrame(rows, SCHEMA), table=TABLE, run_id=run_id, settings=settings,
                    suite=suite)


@pytest.mark.unit
def test_fail_rule_with_mostly_tolerates_a_share(spark, settings):
    result = _gate_one_mostly_rule(spark, settings, "fail", "refine-t4")
    assert result.rules[0]["success"] is True and result.rules[0]["unexpected_count"] == 1
    assert result.passed.count() == 4 and result.quarantined.count() == 0


@pytest.mark.unit
def test_quarantine_rule_with_mostly_still_takes_its_failing_rows_out(spark, settings):
    # The rule succeeds (1 of 4 rows fails, mostly 0.5), so the screen alone would report it clean: its rows must
    # still be found and quarantined.
    result = _gate_one_mostly_rule(spark, settings, "quarantine", "refine-t4m")
    assert result.rules[0]["success"] is True and result.rules[0]["unexpected_count"] == 1
    assert _keys(result.passed) == [("m.csv", 2), ("m.csv", 3), ("m.csv", 4)]
    assert [r["failed_rules"] for r in result.quarantined.collect()] == [["sku_mostly_present"]]
    result.cleanup(settings)


@pytest.mark.unit
def test_clean_rules_are_screened_and_only_the_others_run_again_with_details(spark, settings, suite, monkeypatch):
    import great_expectations as gx

    import expectations.gate as gate

    checkpoints: list[list[str]] = []
    sql_counts: list[list[str]] = []
    real_run, real_count = gx.Checkpoint.run, gate._count_sql_rules

    def spy(self, *args, **kwargs):
        checkpoints.append(sorted(e.meta["rule"] for v in self.validation_definitions for e in v.suite.expectations))
        return real_run(self, *args, **kwargs)

    def count_spy(batch, pairs, **kwargs):
        sql_counts.append(sorted(rule.name for rule, _ in pairs))
        return real_count(batch, pairs, **kwargs)

    monkeypatch.setattr(gx.Checkpoint, "run", spy)
    monkeypatch.setattr(gate, "_count_sql_rules", count_spy)
    row_rules = sorted(r.name for r in suite.for_scope("row"))
    # SQL rules (and uniqueness rules, screened as SQL) are counted in one Spark query; GX screens the others.
    sql_rules = ["email_unique", "line_key_unique", "line_total_matches"]
    gx_screened = sorted(set(row_rules) - set(sql_rules))

    # Rows that pass every rule: one count of the SQL rules, one BOOLEAN_ONLY screen of the others, then details
    # only for the aggregate rule.
    clean = spark.createDataFrame([ROWS[0], ROWS[3], ROWS[4]], SCHEMA)
    result = run_gate(spark, clean, table=TABLE, run_id="refine-t9", settings=settings, suite=suite)
    assert sql_counts == [sql_rules]
    assert checkpoints == [gx_screened, ["batch_not_empty"]]
    assert all(r["success"] for r in result.rules)
    assert {r["name"]: r["unexpected_count"] for r in result.rules if r["name"] != "batch_not_empty"} == {
        n: 0 for n in row_rules if n != "batch_not_empty"}
    counted = {"gx_index": "element_count", "sql": "observed_value", "none": "observed_value"}
    assert [(res.expectation_config.meta["rule"], res.result[counted[rule.row_source]])
            for res, rule in zip(result.validation.results, suite.for_scope("row"))] == [
        (r.name, 0 if r.row_source == "sql" else 3) for r in suite.for_scope("row")]
    assert result.validation.success is True and result.validation.statistics["evaluated_expectations"] == len(row_rules)
    assert result.passed.count() == 3 and result.quarantined.count() == 0
    result.cleanup(settings)

    # One failing rule: it alone (with the aggregate) runs again, and the split is the one of a full run.
    checkpoints.clear()
    dirty = spark.createDataFrame([ROWS[0], ROWS[1], ROWS[3]], SCHEMA)
    result = run_gate(spark, dirty, table=TABLE, run_id="refine-t10", settings=settings, suite=suite)
    assert checkpoints == [gx_screened, ["batch_not_empty", "sku_not_null"]]
    assert [r["failed_rules"] for r in result.quarantined.collect()] == [["sku_not_null"]]
    assert _keys(result.passed) == [("a.csv", 1), ("a.csv", 4)]
    assert result.validation.success is False
    assert result.validation.statistics["unsuccessful_expectations"] == 1
    result.cleanup(settings)

    # A failing SQL rule is counted, then run by GX as written in the detail pass; the split is GX's and the SQL's.
    checkpoints.clear()
    wrong_total = line("a.csv", 8, "o6", 1, "SKU-0006", 1, "2.00", "0.00", "3.00")
    result = run_gate(spark, spark.createDataFrame([ROWS[0], wrong_total], SCHEMA), table=TABLE, run_id="refine-t11",
                      settings=settings, suite=suite)
    assert checkpoints == [gx_screened, ["batch_not_empty", "line_total_matches"]]
    by_name = {r["name"]: r for r in result.rules}
    assert (by_name["line_total_matches"]["success"], by_name["line_total_matches"]["unexpected_count"]) == (False, 1)
    assert [(json.loads(r["index_key"])["_line_number"], r["failed_rules"]) for r in result.quarantined.collect()] == [
        ("8", ["line_total_matches"])]
    assert _keys(result.passed) == [("a.csv", 1)]
    result.cleanup(settings)


@pytest.mark.unit
def test_a_broken_sql_rule_is_reported_by_gx_with_its_error(spark, settings):
    """When the one query counting the SQL rules does not run, GX screens them one by one: the broken rule fails with
    its own error and the sound one still passes."""
    suite = Suite.model_validate({"table": TABLE, "description": "d", "rules": [
        {"name": "total_sane", "expectation": "unexpected_rows_expectation", "severity": "warn", "description": "d",
         "kwargs": {"unexpected_rows_query": "SELECT * FROM {batch} WHERE line_total > 1000000"}},
        {"name": "ghost_sql", "expectation": "unexpected_rows_expectation", "severity": "warn", "description": "d",
         "kwargs": {"unexpected_rows_query": "SELECT ghost FROM {batch}"}},
    ]})
    df = spark.createDataFrame([ROWS[0]], SCHEMA)
    result = run_gate(spark, df, table=TABLE, run_id="refine-t12", settings=settings, suite=suite)
    by_name = {r["name"]: r for r in result.rules}
    assert by_name["total_sane"]["success"] is True and not by_name["total_sane"].get("error")
    assert by_name["ghost_sql"]["success"] is False and "ghost" in by_name["ghost_sql"]["error"]
    result.cleanup(settings)


@pytest.mark.unit
def test_table_scope_reference_integrity_on_another_table(spark, settings):
    from lakehouse import delta
    from lakehouse.catalog import TableSpec

    customers = TableSpec("silver", "gate_customers")
    delta.overwrite(spark.createDataFrame([("c1",), ("c2",)], "customer_id string"), customers, settings)
    suite = Suite.model_validate({
        "table": "gold.gate_fact", "description": "d", "rules": [
            {"name": "customer_exists", "expectation": "unexpected_rows_expectation", "scope": "table",
             "kwargs": {"unexpected_rows_query": "SELECT b.* FROM {batch} b LEFT ANTI JOIN "
                                                 "{table:silver.gate_customers} c ON b.customer_id = c.customer_id"},
             "severity": "fail", "description": "Every sale has a known customer."},
            {"name": "keys_unique", "expectation": "expect_column_values_to_be_unique", "scope": "table",
             "kwargs": {"column": "sale_id"}, "severity": "fail", "description": "d"},
            {"name": "amount_range", "expectation": "expect_column_values_to_be_between", "scope": "table",
             "kwargs": {"column": "amount", "min_value": 0}, "severity": "warn", "description": "d"},
        ]})
    good = spark.createDataFrame([("s1", "c1", 5.0), ("s2", "c2", -1.0)], "sale_id string, customer_id string, amount double")
    result = run_gate(spark, good, table="gold.gate_fact", run_id="publish-t5", settings=settings, suite=suite,
                      scope="table", index_columns=("sale_id",), stage=False)
    assert result.success and result.passed is good and result.quarantined.count() == 0
    assert {r["name"]: r["success"] for r in result.rules} == {"customer_exists": True, "keys_unique": True,
                                                               "amount_range": False}
    assert result.rules[2]["examples"] == [{"sale_id": "s2"}]

    bad = spark.createDataFrame([("s1", "c1", 5.0), ("s3", "c9", 1.0)], "sale_id string, customer_id string, amount double")
    with pytest.raises(QualityGateFailed, match=r"`customer_exists`.*failed on 1 row; example keys: \{\"sale_id\": \"s3\"\}"):
        run_gate(spark, bad, table="gold.gate_fact", run_id="publish-t6", settings=settings, suite=suite,
                 scope="table", index_columns=("sale_id",), stage=False)


@pytest.mark.unit
def test_unstaged_split_uses_a_row_hash(spark, settings, suite):
    df = spark.createDataFrame(ROWS, SCHEMA)
    result = run_gate(spark, df, table=TABLE, run_id="refine-t7", settings=settings, suite=suite, stage=False)
    assert result.staged_uri is None
    assert _keys(result.passed) == [("a.csv", 1), ("a.csv", 4), ("a.csv", 5)]
    assert result.quarantined.count() == len(EXPECTED_FAILED)
    assert GATE_ROW_ID not in result.passed.columns


@pytest.mark.unit
def test_quarantine_sql_rule_must_return_the_rows(spark, settings):
    suite = Suite.model_validate({
        "table": TABLE, "description": "d", "rules": [
            {"name": "total_ok", "expectation": "unexpected_rows_expectation", "severity": "quarantine",
             "kwargs": {"unexpected_rows_query": "SELECT order_id FROM {batch} WHERE line_total < 0"},
             "description": "d"}]})
    rows = [line("e.csv", 1, "o1", 1, "SKU-0001", -1, "1.00", "0.00", "-1.00")]
    with pytest.raises(RuleFileError, match=r"SELECT \* FROM \{batch\}"):
        run_gate(spark, spark.createDataFrame(rows, SCHEMA), table=TABLE, run_id="refine-t8", settings=settings,
                 suite=suite)


@pytest.mark.unit
def test_a_rule_that_cannot_run_stops_quarantine_but_not_warn(spark, settings):
    def suite_with(severity):
        return Suite.model_validate({"table": TABLE, "description": "d", "rules": [
            {"name": "ghost_present", "expectation": "expect_column_values_to_not_be_null",
             "kwargs": {"column": "ghost"}, "severity": severity, "description": "d"}]})

    df = spark.createDataFrame([line("g.csv", 1, "o1", 1, "SKU-0001", 1, "1.00", "0.00", "1.00")], SCHEMA)
    with pytest.raises(QualityGateFailed, match="`ghost_present`.*could not run"):
        run_gate(spark, df, table=TABLE, run_id="refine-t9", settings=settings, suite=suite_with("quarantine"))
    result = run_gate(spark, df, table=TABLE, run_id="refine-t9", settings=settings, suite=suite_with("warn"))
    assert result.rules[0]["success"] is False and "ghost" in result.rules[0]["error"]
    assert result.passed.count() == 1


@pytest.mark.unit
def test_row_json_struct_is_serialized_for_quarantined_rows_only(spark, settings):
    from pyspark.sql import functions as F

    suite = Suite.model_validate({"table": TABLE, "description": "d", "rules": [
        {"name": "sku_present", "expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"},
         "severity": "quarantine", "description": "d"}]})
    df = spark.createDataFrame([("h.csv", 1, None, "raw-1"), ("h.csv", 2, "SKU-1", "raw-2")],
                               "_source_file string, _line_number long, sku string, raw_sku string")
    df = df.withColumn("_row_json", F.struct(F.col("raw_sku").alias("sku"), F.lit(None).cast("string").alias("note")))
    result = run_gate(spark, df, table=TABLE, run_id="refine-t10", settings=settings, suite=suite,
                      key_columns=("sku",), ingest_date=DAY)
    (q,) = result.quarantined.collect()
    assert json.loads(q["row_json"]) == {"sku": "raw-1", "note": None}
    assert json.loads(q["business_key"]) == {"sku": None}
    assert q["ingest_date"] == DAY
    assert result.passed.columns == df.columns


@pytest.mark.unit
def test_quarantine_writes_are_idempotent_and_replace_a_rerun_day(spark, settings, suite):
    df = spark.createDataFrame(ROWS, SCHEMA)
    first = run_gate(spark, df, table=TABLE, run_id="refine-r1", settings=settings, suite=suite)
    write_quarantine(spark, first.quarantined, settings, replace_days=(TABLE, [DAY]))
    before = sorted(tuple(map(str, r)) for r in read_quarantine(spark, settings).collect())
    assert len(before) == len(EXPECTED_FAILED)

    rerun = run_gate(spark, df, table=TABLE, run_id="refine-r2", settings=settings, suite=suite)
    write_quarantine(spark, rerun.quarantined, settings, replace_days=(TABLE, [DAY]))
    after = sorted(tuple(map(str, r)) for r in read_quarantine(spark, settings).collect())
    assert after == before  # same rows, same first run id and timestamp

    # The day is re-run after the bad rows were fixed upstream: only line 2 still fails.
    fixed = [r for r in ROWS if r[1] in (1, 2, 4, 5)]
    third = run_gate(spark, spark.createDataFrame(fixed, SCHEMA), table=TABLE, run_id="refine-r3", settings=settings,
                     suite=suite)
    write_quarantine(spark, third.quarantined, settings, replace_days=(TABLE, [DAY]))
    left = read_quarantine(spark, settings).collect()
    assert [json.loads(r["index_key"])["_line_number"] for r in left] == ["2"]
    assert left[0]["run_id"] == "refine-r1"

    # A replay that let line 2 through releases it: hidden by default, kept with the releasing run id.
    from lakehouse.quarantine import release

    release(spark, settings, source_table=TABLE, index_keys=read_quarantine(spark, settings).select("index_key"),
            released_run_id="replay-r4")
    assert read_quarantine(spark, settings).count() == 0
    (held,) = read_quarantine(spark, settings, include_released=True).collect()
    assert held["released_run_id"] == "replay-r4"
    for r in (first, rerun, third):
        r.cleanup(settings)


@pytest.mark.unit
def test_a_tables_first_quarantine_rows_are_appended_and_its_reruns_still_merge(spark, settings):
    """A table with no row in the quarantine yet has its rows appended (nothing to match or delete), without
    touching other tables' rows; once it has rows, a rerun MERGEs: same rows, and a rerun that quarantines nothing
    deletes the day's held rows (an empty batch must not take the append shortcut)."""
    from deltalake import DeltaTable

    from lakehouse.catalog import QUARANTINE

    def rows(table: str, n: int):
        return spark.createDataFrame(
            [(table, "{}", f'{{"k":"{i}"}}', f'{{"k":{i}}}', ["r"], "why", "run", DAY, None, None) for i in range(n)],
            QUARANTINE_SCHEMA)

    def held() -> dict[str, int]:
        return {r["source_table"]: r["count"]
                for r in read_quarantine(spark, settings).groupBy("source_table").count().collect()}

    def last_operation() -> str:
        return DeltaTable(QUARANTINE.location(settings)).history(1)[0]["operation"]

    write_quarantine(spark, rows("silver.a", 3), settings, replace_days=("silver.a", [DAY]))
    write_quarantine(spark, rows("silver.b", 2), settings, replace_days=("silver.b", [DAY]))
    assert (held(), last_operation()) == ({"silver.a": 3, "silver.b": 2}, "WRITE")
    write_quarantine(spark, rows("silver.b", 2), settings, replace_days=("silver.b", [DAY]))
    assert held() == {"silver.a": 3, "silver.b": 2}  # matched, not appended again
    write_quarantine(spark, rows("silver.b", 0), settings, replace_days=("silver.b", [DAY]))
    assert (held(), last_operation()) == ({"silver.a": 3}, "MERGE")


# ---------------------------------------------------------------------------------------------------------------
# Data docs
# ---------------------------------------------------------------------------------------------------------------
_ASSET_TAG = re.compile(r"<(?:link|script|img)\b[^>]*\b(?:href|src)\s*=\s*[\"']((?:https?:)?//[^\"']+)", re.I)
_CSS_REMOTE = re.compile(r"url\(\s*[\"']?(?:https?:)?//", re.I)


def _png_pixels(path: Path):
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into (width, height, rows of bytes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        ftype, line_ = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line_[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if ftype == 1:
                line_[i] = (line_[i] + a) & 255
            elif ftype == 2:
                line_[i] = (line_[i] + b) & 255
            elif ftype == 3:
                line_[i] = (line_[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line_[i] = (line_[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line_))
        prev = line_
    return width, height, bpp, rows


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(page: Path, out: Path, profile: Path) -> None:
    """Render ``page`` headless with no network (a fresh network namespace when allowed, else a dead proxy)."""
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--window-size=1200,800",
        "--virtual-time-budget=4000", f"--screenshot={out}", page.as_uri(),
    ]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        cmd = [unshare, "-n", *cmd]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)


@pytest.mark.unit
def test_data_docs_are_self_contained_and_render_offline(spark, settings, suite, tmp_path):
    from expectations.docs import build_data_docs, site_dir

    # Clean rows first: the SQL rules' results are the screen's counts, not GX's own; the docs render them too. The
    # failing run comes last, so that it heads the index (its red status icon is checked in the screenshot below).
    clean = spark.createDataFrame([ROWS[0], ROWS[3], ROWS[4]], SCHEMA)
    run_gate(spark, clean, table=TABLE, run_id="refine-docs-clean", settings=settings, suite=suite).cleanup(settings)
    df = spark.createDataFrame(ROWS, SCHEMA)
    run_gate(spark, df, table=TABLE, run_id="refine-docs", settings=settings, suite=suite).cleanup(settings)
    index = Path(build_data_docs(settings, rules_dir=EXAMPLE.parent))
    site = Path(site_dir(settings))
    assert index == site / "index.html" and index.exists()
    pages = sorted(site.rglob("*.html"))
    assert any("validations" in p.parts for p in pages) and any("expectations" in p.parts for p in pages)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert _ASSET_TAG.findall(html) == [], page
        assert not _CSS_REMOTE.search(html), page
        for ref in re.findall(r"<(?:link|script)\b[^>]*\b(?:href|src)=\"([^\"]+)\"", html):
            assert (page.parent / ref).resolve().is_file(), (page, ref)  # every local asset exists
    for css in site.rglob("*.css"):
        assert not _CSS_REMOTE.search(css.read_text(encoding="utf-8")), css
    assert "refine-docs" in index.read_text(encoding="utf-8")
    [clean_page] = [p for p in pages if "validations" in p.parts and "refine-docs-clean" in str(p)]
    assert "abs(line_total" in clean_page.read_text(encoding="utf-8")  # the SQL rule, rendered from the screen's count

    if _chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium): offline rendering not checked")
    shot = tmp_path / "index.png"
    _screenshot(index, shot, tmp_path / "profile")
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, bpp, rows = _png_pixels(shot)
    pixels = [row[i:i + 3] for row in rows[: height // 2] for i in range(0, width * bpp, bpp * 2)]
    # Bootstrap styles the breadcrumb card grey (#e9ecef-ish); Font Awesome draws the red failed-run cross
    # (bootstrap's text-danger #dc3545). Unstyled offline pages have neither.
    grey = sum(1 for p in pixels if 220 <= p[0] <= 236 and 222 <= p[1] <= 238 and 226 <= p[2] <= 242 and p[0] < p[2])
    red = sum(1 for p in pixels if p[0] > 200 and p[1] < 90 and p[2] < 100)
    assert grey > 500, f"no bootstrap-styled card in the screenshot ({grey} grey pixels)"
    assert red > 5, f"no Font Awesome status icon in the screenshot ({red} red pixels)"


@pytest.mark.unit
def test_uniqueness_screen_agrees_with_gx(spark, settings, monkeypatch):
    """The screen checks uniqueness rules by grouping the keys; every verdict and count must be GX's own: a column's
    nulls are not values, ``ignore_row_if`` decides which rows of a column list count, and a rule that finds repeats
    is reported by GX's expectation as written."""
    import expectations.gate as gate

    def unique(name, kwargs, expectation="expect_compound_columns_to_be_unique"):
        return {"name": name, "expectation": expectation, "kwargs": kwargs, "severity": "warn", "scope": "table",
                "description": "d"}

    suite = Suite.model_validate({"table": "gold.gate_unique", "description": "d", "rules": [
        unique("a_unique", {"column": "a"}, "expect_column_values_to_be_unique"),  # nulls repeat: still unique
        unique("b_unique", {"column": "b"}, "expect_column_values_to_be_unique"),  # x and y twice
        unique("ab_default", {"column_list": ["a", "b"]}),  # (null, y) twice counts, (null, null) twice does not
        unique("ab_any", {"column_list": ["a", "b"], "ignore_row_if": "any_value_is_missing"}),
        unique("ad_default", {"column_list": ["a", "d"]}),  # only (null, null) repeats: ignored
        unique("ad_never", {"column_list": ["a", "d"], "ignore_row_if": "never"}),  # ... unless never
        unique("c_mostly", {"column": "c", "mostly": 0.1}, "expect_column_values_to_be_unique"),
    ]})
    rows = [("k1", "x", 1, 1), ("k2", "x", 1, 2), (None, "y", 3, 3), (None, "y", 4, 4), (None, None, 5, None),
            (None, None, 6, None), ("k3", None, None, 7), ("k4", None, None, 8)]
    df = spark.createDataFrame(rows, "a string, b string, c int, d int")

    def verdicts():
        result = run_gate(spark, df, table="gold.gate_unique", run_id="publish-u1", settings=settings, suite=suite,
                          scope="table", index_columns=(), stage=False)
        configs = [res.expectation_config.type for res in result.validation.results]
        return {r["name"]: (r["success"], r["unexpected_count"]) for r in result.rules}, configs

    screened, configs = verdicts()
    assert configs == [r.expectation for r in suite.rules]  # reported under the rules' own expectations
    monkeypatch.setattr(gate, "_screen_form", lambda rule: rule)  # GX's own check of every rule
    by_gx, _ = verdicts()
    assert screened == by_gx
    assert {name: ok for name, (ok, _) in screened.items()} == {
        "a_unique": True, "b_unique": False, "ab_default": False, "ab_any": True, "ad_default": True,
        "ad_never": False, "c_mostly": True}
    assert (screened["b_unique"][1], screened["ab_default"][1], screened["ad_never"][1]) == (4, 2, 2)
