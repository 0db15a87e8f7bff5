"""The lakehouse core: settings, catalogue, storage, the engine session and its errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from lakehouse import delta
from lakehouse.catalog import FILE_LEDGER, TableSpec, bronze_table, sql_ref
from lakehouse.errors import ConfigError, EngineUnreachable
from lakehouse.settings import load_settings
from lakehouse.storage import Storage

pytestmark = pytest.mark.unit


def test_settings_defaults_are_local(settings, tmp_path):
    assert settings.mode == "local"
    assert settings.landing_root == str(tmp_path / "lh" / "landing")
    assert settings.warehouse_root == str(tmp_path / "lh" / "warehouse")
    assert not settings.uses_s3


def test_settings_env_prefix_and_spark_remote(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_DATA_ROOT", "s3://bucket/x")
    monkeypatch.setenv("SPARK_REMOTE", "sc://example:15002")
    s = load_settings()
    assert s.landing_root == "s3://bucket/x/landing"
    assert s.spark_remote == "sc://example:15002"
    assert s.uses_s3


def test_bad_settings_fail_with_a_sentence(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", "http://not-spark-connect")
    with pytest.raises(ConfigError, match="spark_remote must be a Spark Connect URL"):
        load_settings()


def test_catalogue_locations(settings):
    spec = bronze_table("pos", "transactions")
    assert spec.qualified == "bronze.pos_transactions"
    assert spec.location(settings).endswith("/warehouse/bronze/pos_transactions")
    assert spec.partition_by == ("ingest_date",)
    assert sql_ref(FILE_LEDGER, settings).startswith("delta.`")


def test_unreachable_remote_is_a_clear_error():
    from lakehouse.spark import _check_reachable

    with pytest.raises(EngineUnreachable, match="sc://127.0.0.1:1 unreachable"):
        _check_reachable("sc://127.0.0.1:1", 1.0)


def test_cli_unreachable_remote_prints_no_traceback(tmp_path):
    env = {"PATH": "", "LAKEHOUSE_DATA_ROOT": str(tmp_path), "SPARK_REMOTE": "sc://127.0.0.1:1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "ingest", "--date", "2026-01-01"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.needs_sail
@pytest.mark.parametrize("preset, expected", [
    ({}, {"allow_thp": 0, "purge_decommits": 0}),
    ({"MIMALLOC_ALLOW_THP": "1"}, {"allow_thp": 1, "purge_decommits": 0}),
    ({"MIMALLOC_PURGE_DECOMMITS": "1"}, {"allow_thp": 0, "purge_decommits": 1}),
])
def test_embedded_sail_allocator_keeps_its_tuning_unless_the_user_chose(tmp_path, preset, expected):
    """No transparent huge pages, and idle memory given back with MADV_FREE (see lakehouse.spark.SAIL_ALLOCATOR_
    DEFAULTS); a value the user set wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "SPARK_", "MIMALLOC_"))}
    env.update({"LAKEHOUSE_DATA_ROOT": str(tmp_path), "MIMALLOC_VERBOSE": "1", "RUST_LOG": "error", **preset})
    script = tmp_path / "start.py"  # a file: under ``python -c`` pyspark's Connect client thinks it runs doctests
    script.write_text("from lakehouse.spark import get_spark, stop_spark\nget_spark()\nstop_spark()\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # mimalloc prints its options as it loads: the settings must be there before the library is
    for option, value in expected.items():
        assert f"option '{option}': {value}" in proc.stderr


def test_building_expressions_captures_no_call_sites(spark, monkeypatch):
    """The session turns PySpark's DataFrame debugging off: building a column records no caller (each record tried
    ``import IPython`` and, where it is not installed, searched sys.path again)."""
    import pyspark.errors.utils as pyspark_errors
    from pyspark.sql import functions as F

    from lakehouse.spark import DATAFRAME_DEBUGGING

    captured = []
    monkeypatch.setattr(pyspark_errors, "_capture_call_site", lambda depth: captured.append(depth) or "")
    column = F.when(F.col("a").isNull(), F.lit(1)).otherwise(F.length(F.concat(F.col("a"), F.lit("x"))))
    assert spark.range(2).withColumn("a", F.lit(None).cast("string")).select(column.alias("n")).collect()[0]["n"] == 1
    assert captured == []
    assert spark.conf.get(DATAFRAME_DEBUGGING) == "false"


@pytest.mark.parametrize("value", ["0", "-2", "seven"])
def test_cli_refine_batch_days_must_be_a_positive_whole_number(tmp_path, value):
    env = {"PATH": "", "LAKEHOUSE_DATA_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "refine", "--start", "2026-01-01", "--end", "2026-01-03",
         "--batch-days", value], capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "--batch-days" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv, option", [
    (["serve", "--port", "99999"], "--port"),  # uvicorn would listen on 34463 and print 99999
    (["serve", "--port", "0"], "--port"),
    (["server", "--port", "-1"], "--port"),
    (["serve", "--port", "http"], "--port"),
    (["pipeline", "--date", "2026-01-01", "--wait-lock", "-1"], "--wait-lock"),
    (["backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--wait-lock", "nan"], "--wait-lock"),  # never times out
    (["worker", "--limit", "0"], "--limit"),
])
def test_cli_refuses_out_of_range_ports_waits_and_limits(capsys, argv, option):
    from lakehouse import cli

    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err


def test_cli_accepts_the_edges_of_those_ranges():
    from lakehouse import cli

    parser = cli.build_parser()
    assert parser.parse_args(["serve", "--port", "65535"]).port == 65535
    assert parser.parse_args(["server", "--port", "1"]).port == 1
    assert parser.parse_args(["pipeline", "--date", "2026-01-01", "--wait-lock", "0"]).wait_lock == 0.0
    assert parser.parse_args(["pipeline", "--date", "2026-01-01", "--wait-lock", "inf"]).wait_lock == float("inf")
    assert parser.parse_args(["worker", "--limit", "2"]).limit == 2
    assert parser.parse_args(["serve"]).port == 8000 and parser.parse_args(["server"]).port == 4200


def test_cli_refine_batch_days_reaches_refine_days(monkeypatch, tmp_path):
    import flows.refine
    from lakehouse import cli

    seen = {}
    monkeypatch.setenv("LAKEHOUSE_DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(flows.refine, "refine_days",
                        lambda settings, days, *, tables=None, batch_days=1: seen.update(days=days, n=batch_days) or [])
    assert cli.main(["refine", "--start", "2026-01-01", "--end", "2026-01-03", "--batch-days", "3"]) == 0
    assert seen == {"days": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)], "n": 3}


def test_delta_roundtrip_merge_and_version(spark, settings):
    spec = TableSpec("silver", "t_roundtrip", keys=("id",))
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    delta.merge_upsert(spark, df, spec, settings)
    assert delta.table_version(spec, settings) == 0
    upd = spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string")
    delta.merge_upsert(spark, upd, spec, settings)
    rows = sorted(tuple(r) for r in delta.read_table(spark, spec, settings).collect())
    assert rows == [(1, "a"), (2, "B"), (3, "c")]
    assert delta.table_version(spec, settings) == 1


def _file_stats(spec, settings) -> list[tuple[set[str], int]]:
    """(columns with min/max statistics, numRecords) of each data file of the local table, from its Delta log's
    add actions (the files of later overwrites included)."""
    import json
    from pathlib import Path

    out = []
    for commit in sorted(Path(spec.location(settings), "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add")
            if add:
                stats = json.loads(add["stats"])
                out.append((set(stats.get("minValues", {})), int(stats["numRecords"])))
    return out


def test_new_tables_keep_statistics_on_keys_and_filter_columns_only(spark, settings):
    """A table created by append or overwrite collects per-file statistics on its keys and the columns the pipeline
    filters on, not on its first 32 columns; later appends keep the choice, and row counts are always written."""
    from deltalake import DeltaTable

    spec = TableSpec("silver", "t_stats", keys=("k1", "k2"), partition_by=("ingest_date",))
    schema = "v1 string, k1 string, v2 double, k2 int, _run_id string, ingest_date date, v3 string"
    rows = [("a", "x", 1.5, 1, "r1", dt.date(2026, 1, 1), "p"), ("b", "y", 2.5, 2, "r1", dt.date(2026, 1, 1), "q")]
    assert delta.stats_columns(spec, spark.createDataFrame(rows, schema).columns) == ["k1", "k2", "_run_id"]
    delta.append(spark.createDataFrame(rows, schema), spec, settings)
    delta.append(spark.createDataFrame(rows[:1], schema), spec, settings)
    config = DeltaTable(spec.location(settings)).metadata().configuration
    assert config.get(delta.STATS_COLUMNS_PROPERTY) == "k1,k2,_run_id"
    stats = _file_stats(spec, settings)
    assert sorted(n for _, n in stats) == [1, 2]
    assert all(cols == {"k1", "k2", "_run_id"} for cols, _ in stats), stats

    other = TableSpec("gold", "t_stats_overwrite", keys=("k1",))
    delta.overwrite(spark.createDataFrame(rows, schema), other, settings)
    assert [cols for cols, _ in _file_stats(other, settings)] == [{"k1", "_run_id", "ingest_date"}]
    # no key and no filter column: Delta's default (every column here)
    bare = TableSpec("gold", "t_stats_bare")
    delta.overwrite(spark.createDataFrame([("a", 1)], "v string, n int"), bare, settings)
    assert [cols for cols, _ in _file_stats(bare, settings)] == [{"v", "n"}]


def test_storage_lists_local_files(settings):
    st = Storage(settings)
    uri = st.landing_dir("pos", "stores") + "/ingest_date=2026-01-01/a.csv"
    st.write_bytes(uri, b"store_id\n1\n")
    files = st.list_files(st.landing_dir("pos", "stores") + "/ingest_date=2026-01-01")
    assert [f.name for f in files] == ["a.csv"]
    assert st.landing_dates("pos", "stores")[0].isoformat() == "2026-01-01"


def _staged_codecs(spark, settings) -> set[str]:
    """Stage a small frame and return the compression codecs of the Parquet files written."""
    import pyarrow.parquet as pq

    st = Storage(settings)
    uri = st.staging_dir("r-codec", "frame")
    df = spark.createDataFrame([(i, f"value {i % 7}") for i in range(200)], "id int, v string")
    back = st.stage_frame(spark, df, uri)
    assert sorted(tuple(r) for r in back.collect()) == sorted(tuple(r) for r in df.collect())
    parts = [f for f in st.list_files(uri, recursive=True) if f.name.endswith(".parquet")]
    assert parts
    codecs = set()
    for part in parts:
        fs, path = st.fs(part.uri)
        with fs.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
            codecs |= {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
                       for c in range(meta.num_columns)}
    st.delete_dir(uri)
    return codecs


def test_staged_frames_are_uncompressed_on_local_disk(spark, settings):
    """Staging on local disk is written uncompressed: it is read a few times and deleted, so compressing only costs
    CPU."""
    assert _staged_codecs(spark, settings) == {"UNCOMPRESSED"}


@pytest.mark.s3
def test_staged_frames_are_zstd_compressed_on_s3(spark, s3_settings):
    """On S3 the staged bytes cross the network, so they are compressed."""
    assert _staged_codecs(spark, s3_settings) == {"ZSTD"}
