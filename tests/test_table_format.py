"""The parquet table format (LAKEHOUSE_TABLE_FORMAT=parquet): same results as Delta for every write the pipeline uses.

Each case runs the same operations once on real Delta (Sail) and once on the parquet format (plain Parquet written
by the engine, Delta log committed by delta-rs, DML emulated copy-on-write) and compares the tables.
"""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse import delta
from lakehouse import parquet_tables as pt
from lakehouse.catalog import TableSpec, sql_ref
from lakehouse.errors import ConfigError
from lakehouse.settings import load_settings
from tests.conftest import assert_same_rows

pytestmark = pytest.mark.unit

SCHEMA = "k string, d date, v long, tags array<string>, r string"
ROWS = [
    ("a", dt.date(2026, 1, 1), 1, ["x"], None),
    ("b", dt.date(2026, 1, 1), 2, [], None),
    ("c", dt.date(2026, 1, 2), 3, None, "done"),
    (None, dt.date(2026, 1, 2), 4, ["y", "z"], None),
]
SOURCE = [
    ("a", dt.date(2026, 1, 1), 10, ["x"], None),      # matches a: changed
    ("b", dt.date(2026, 1, 1), 2, [], None),          # matches b: unchanged
    ("e", dt.date(2026, 1, 3), 5, ["n"], None),       # new
    (None, dt.date(2026, 1, 2), 40, None, None),      # matches the null key only with <=>
]
T = TableSpec("silver", "t", keys=("k",), partition_by=("d",))


@pytest.fixture
def both(tmp_path, spark):
    """(delta settings, parquet settings) with separate roots; the parquet routing is active during the test."""
    d = load_settings(data_root=str(tmp_path / "delta"), spark_remote=None)
    p = load_settings(data_root=str(tmp_path / "parquet"), spark_remote=None, table_format="parquet")
    with pt.activated(spark):
        yield d, p


def _rows(spark, settings, spec=T, version=None):
    return [r.asDict() for r in delta.read_table(spark, spec, settings, version=version).collect()]


def _start(spark, both):
    for s in both:
        delta.overwrite(spark.createDataFrame(ROWS, SCHEMA), T, s)


MERGES = {
    "upsert with condition": (
        "MERGE INTO {t} t USING {s} s ON t.`k` <=> s.`k` WHEN MATCHED AND (t.v <> s.v) THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    ),
    "update columns only": "MERGE INTO {t} t USING {s} s ON t.`k` <=> s.`k` WHEN MATCHED THEN UPDATE SET t.`v` = s.`v`, t.`r` = 'merged'",
    "delete flag, insert list": (
        "MERGE INTO {t} t USING {s} s ON t.`k` = s.`k` WHEN MATCHED AND s.v > 5 THEN DELETE "
        "WHEN MATCHED AND NOT s.v > 5 THEN UPDATE SET `v` = s.`v` + 100 "
        "WHEN NOT MATCHED AND NOT s.v > 5 THEN INSERT (`k`, `d`, `v`) VALUES (s.`k`, s.`d`, s.`v`)"
    ),
    "not matched by source delete": (
        "MERGE INTO {t} t USING {s} s ON t.`k` <=> s.`k` WHEN MATCHED AND t.v <> s.v THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT * "
        "WHEN NOT MATCHED BY SOURCE AND t.d IN (DATE'2026-01-02') AND t.r IS NULL THEN DELETE"
    ),
    "by source only, duplicate source keys": (
        "MERGE INTO {t} t USING (SELECT * FROM {s} UNION ALL SELECT * FROM {s}) s ON t.`k` = s.`k` "
        "WHEN NOT MATCHED BY SOURCE THEN UPDATE SET r = 'orphan'"
    ),
    "scd2 close and insert": (
        "MERGE INTO {t} t USING {s} s ON t.k = s.k AND t.r IS NULL "
        "WHEN MATCHED THEN UPDATE SET r = 'closed', v = s.v "
        "WHEN NOT MATCHED AND s.k IS NOT NULL THEN INSERT (`k`, `d`, `v`, `tags`, `r`) VALUES (s.`k`, s.`d`, s.`v`, s.`tags`, s.`r`)"
    ),
    "matched on an extra target condition": (
        "MERGE INTO {t} t USING {s} s ON t.k <=> s.k AND t.d = DATE'2026-01-01' AND t.r IS NULL "
        "WHEN MATCHED THEN UPDATE SET r = 'released'"
    ),
}


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merge_matches_delta(spark, both, name):
    _start(spark, both)
    src = spark.createDataFrame(SOURCE, SCHEMA)
    view = delta.temp_view(src, "fmt_src")
    try:
        for s in both:
            spark.sql(MERGES[name].format(t=sql_ref(T, s), s=view))
    finally:
        spark.catalog.dropTempView(view)
    d, p = both
    assert_same_rows(_rows(spark, p), _rows(spark, d))
    assert delta.table_version(T, p) == 1


def test_merge_upsert_and_delete_where_match_delta(spark, both):
    _start(spark, both)
    for s in both:
        delta.merge_upsert(spark, spark.createDataFrame(SOURCE, SCHEMA), T, s, update_condition="s.v <> t.v")
        delta.delete_where(spark, T, s, "d = DATE'2026-01-03' OR v = 2")
    d, p = both
    assert_same_rows(_rows(spark, p), _rows(spark, d))
    versions = delta.table_version(T, p)
    delta.delete_where(spark, T, p, "v > 1000")  # nothing matches: no new version
    assert delta.table_version(T, p) == versions == 2


def test_has_partition_reads_the_log_and_never_answers_a_wrong_no(spark, tmp_path):
    d = load_settings(data_root=str(tmp_path / "delta"), spark_remote=None)
    assert not delta.has_partition(T, d, {"d": "2026-01-01"})  # no table yet
    delta.overwrite(spark.createDataFrame(ROWS, SCHEMA), T, d)
    assert delta.has_partition(T, d, {"d": "2026-01-02"})
    assert not delta.has_partition(T, d, {"d": "2026-01-03"})
    delta.delete_where(spark, T, d, "d = DATE'2026-01-02'")
    assert not delta.has_partition(T, d, {"d": "2026-01-02"})  # its files were removed
    # not partitioned by these columns: the partition may hold rows
    assert delta.has_partition(T, d, {"k": "a"})
    flat = TableSpec("silver", "flat", keys=("k",))
    delta.overwrite(spark.createDataFrame(ROWS, SCHEMA), flat, d)
    assert delta.has_partition(flat, d, {"d": "2026-01-03"})


def test_has_partition_is_yes_for_the_parquet_format_which_writes_no_partitions(spark, both):
    _start(spark, both)
    assert delta.has_partition(T, both[1], {"d": "2026-01-03"})


def test_append_schema_drift_replace_where_and_time_travel(spark, both):
    d, p = both
    drift = spark.createDataFrame([("f", dt.date(2026, 1, 4), 6, None, None, "new")], SCHEMA + ", extra string")
    for s in both:
        delta.append(spark.createDataFrame(ROWS, SCHEMA), T, s)
        delta.append(drift, T, s, merge_schema=True)
        delta.overwrite(spark.createDataFrame([("g", dt.date(2026, 1, 1), 7, None, None, None)], SCHEMA + ", extra string"),
                        T, s, replace_where="d = DATE'2026-01-01'")
    assert_same_rows(_rows(spark, p), _rows(spark, d))
    assert "extra" in delta.read_table(spark, T, p).columns
    assert_same_rows(_rows(spark, p, version=0), _rows(spark, d, version=0))
    # append (v0); the drift append is two delta-rs commits: the new column (v1), then the files (v2); replace (v3)
    assert delta.table_version(T, p) == 3
    drift_row = dict(zip(["k", "d", "v", "tags", "r", "extra"], ("f", dt.date(2026, 1, 4), 6, None, None, "new")))
    assert_same_rows(_rows(spark, p, version=2), _rows(spark, p, version=1) + [drift_row])


def test_columns_set_by_rewriting_partitions_match_delta(spark, both):
    """The order totals' partition rewrite (a read of the table overwritten onto itself with replaceWhere) leaves
    both formats with the same rows."""
    from flows.refine import _set_columns_in_partitions

    _start(spark, both)
    changes = spark.createDataFrame([("a", dt.date(2026, 1, 1), 10, None, "set"), (None, dt.date(2026, 1, 2), 40, None, None)],
                                    SCHEMA)
    for s in both:
        _set_columns_in_partitions(spark, s, T, changes, ["k"], ["v", "r"])
    d, p = both
    assert_same_rows(_rows(spark, p), _rows(spark, d))
    assert {r["k"]: (r["v"], r["r"]) for r in _rows(spark, d)} == {"a": (10, "set"), "b": (2, None), "c": (3, "done"),
                                                                   None: (40, None)}


def test_empty_frames_create_tables_with_their_schema(spark, both):
    _, p = both
    delta.append(spark.createDataFrame([], SCHEMA), T, p)
    df = delta.read_table(spark, T, p)
    assert df.columns == ["k", "d", "v", "tags", "r"] and df.count() == 0
    delta.overwrite(spark.createDataFrame(ROWS, SCHEMA), T, p)
    delta.overwrite(spark.createDataFrame([], SCHEMA), T, p)
    assert delta.read_table(spark, T, p).count() == 0
    assert delta.read_table(spark, T, p, version=1).count() == len(ROWS)


def test_delta_calls_outside_lakehouse_delta_are_routed(spark, both, tmp_path):
    """spark.sql SELECT over delta.`path`, spark.read.format("delta") with versionAsOf, df.write.format("delta")."""
    _, p = both
    path = str(tmp_path / "parquet" / "staging" / "x")
    df = spark.createDataFrame(ROWS, SCHEMA)
    df.write.format("delta").mode("overwrite").save(path)
    df.where("v > 2").write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 2
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 4
    got = spark.sql(f"SELECT count(*) AS n FROM delta.`{path}` WHERE v > 3").collect()[0]["n"]
    assert got == 1
    spark.sql(f"DELETE FROM delta.`{path}` WHERE v = 4")
    spark.sql(f"UPDATE delta.`{path}` SET r = 'u' WHERE v = 3")
    assert [(r.v, r.r) for r in spark.read.format("delta").load(path).collect()] == [(3, "u")]


def test_tables_stay_readable_by_delta_rs(spark, both):
    """The API and the manifest read gold with delta-rs: the same rows and row counts in the log."""
    from deltalake import DeltaTable

    _, p = both
    delta.overwrite(spark.createDataFrame(ROWS, SCHEMA), T, p)
    table = DeltaTable(T.location(p))
    assert sorted(table.to_pyarrow_table().column("v").to_pylist()) == [1, 2, 3, 4]
    stats = table.get_add_actions(flatten=True)
    assert sum(stats.column("num_records").to_pylist()) == 4


def test_object_store_paths_are_refused(spark):
    with pytest.raises(ConfigError, match="local warehouse paths only"):
        pt.read(spark, "s3://bucket/warehouse/silver/t")


@pytest.mark.parametrize("statement, message", [
    ("MERGE INTO delta.`/x` t USING v ON t.k = v.k WHEN MATCHED THEN DELETE", "alias"),
    ("MERGE INTO delta.`/x` t USING v s ON t.k = s.k", "WHEN"),
    ("MERGE INTO parquet.`/x` t USING v s ON t.k = s.k WHEN MATCHED THEN DELETE", "delta.`<location>`"),
    ("MERGE INTO delta.`/x` t USING v s ON t.k = s.k WHEN MATCHED THEN UPDATE SET s.k = 1", "only the target"),
])
def test_unsupported_merges_say_why(statement, message):
    with pytest.raises(pt.ParquetTableError, match=message):
        pt.parse_merge(statement)


@pytest.mark.parametrize("remote, ok", [("local[2]", True), ("local", True), ("local[*]", True), ("sc://h:15002", True),
                                         ("local[two]", False), ("spark://h:7077", False)])
def test_settings_accept_a_local_apache_spark_and_the_table_format(remote, ok):
    if ok:
        assert load_settings(spark_remote=remote, table_format="parquet").spark_remote == remote
    else:
        with pytest.raises(ConfigError, match="local\\[2\\]"):
            load_settings(spark_remote=remote)
    with pytest.raises(ConfigError, match="table_format"):
        load_settings(table_format="iceberg")
