"""Catch-up refine: several ingest days refined as one batch per table end with the same silver tables and the same
held quarantine rows as refining the days one by one (with late headers, duplicates, corrections and bad records
from the generator), balance their accounting, and change nothing when run again. Silver tables refined side by side
(the default) end as refined one at a time."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from lakehouse.catalog import QUARANTINE, SILVER_TABLES
from lakehouse.errors import LakehouseError
from silver_helpers import rows_of

pytestmark = [pytest.mark.flow, pytest.mark.slow]

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(3)]
RUN_COLUMNS = {"_run_id"}  # which run wrote a row: differs by construction


def _silver(spark, settings):
    out = {}
    for spec in SILVER_TABLES:
        keys = spec.keys
        rows = rows_of(spark, spec, settings)
        out[spec.qualified] = {tuple(r[k] for k in keys): {c: v for c, v in r.items() if c not in RUN_COLUMNS}
                               for r in rows}
        assert len(out[spec.qualified]) == len(rows), f"{spec.qualified} holds one row per key"
    return out


def _held(spark, settings):
    """Unreleased quarantine rows: (source table, index key) -> (failed rules, original row)."""
    return {(r["source_table"], r["index_key"]): (tuple(r["failed_rules"]), json.loads(r["row_json"]))
            for r in rows_of(spark, QUARANTINE, settings, where="released_run_id IS NULL")}


@pytest.fixture(scope="module")
def warehouses(spark, tmp_path_factory):
    """The same generated landing ingested into three warehouses: refined day by day, all days as one batch, and in
    batches of two days (a batch of two, then one)."""
    from flows.ingest import ingest_days
    from flows.refine import refine_days
    from generator import generate
    from lakehouse.settings import load_settings

    root = tmp_path_factory.mktemp("catchup")
    daily = load_settings(data_root=str(root / "daily"), landing_root=str(root / "landing"), spark_remote=None)
    generate(daily, start=DAYS[0], days=len(DAYS), customers=150, orders_per_day=60, seed=23, bad_share=0.06,
             formats={}, progress=False)
    ingest_days(daily, DAYS)
    out = {}
    for name, batch_days in (("daily", 1), ("one_batch", len(DAYS)), ("by_two", 2), ("one_at_a_time", len(DAYS))):
        settings = load_settings(data_root=str(root / name), landing_root=str(root / "landing"), spark_remote=None,
                                 refine_workers=1 if name == "one_at_a_time" else 2)  # 2: side by side (default)
        if name != "daily":  # the very same bronze rows (ingest times are part of latest-wins)
            shutil.copytree(f"{daily.warehouse_root}/bronze", f"{settings.warehouse_root}/bronze")
        runs = refine_days(settings, DAYS, batch_days=batch_days)
        out[name] = (settings, runs)
    return out


@pytest.mark.parametrize("name,reference", [("one_batch", "daily"), ("by_two", "daily"),
                                            ("one_batch", "one_at_a_time")])
def test_catch_up_ends_with_the_same_silver_and_quarantine_as_day_by_day(spark, warehouses, name, reference):
    """A catch-up ends as day by day does, and tables refined side by side as one table at a time."""
    daily, _ = warehouses[reference]
    settings, _ = warehouses[name]
    expected, got = _silver(spark, daily), _silver(spark, settings)
    for table in expected:
        assert got[table].keys() == expected[table].keys(), table
        differing = [k for k in expected[table] if got[table][k] != expected[table][k]]
        diffs = [{c: (expected[table][k][c], got[table][k][c]) for c in expected[table][k]
                  if expected[table][k][c] != got[table][k][c]} for k in differing[:3]]
        assert not differing, (table, len(differing), differing[:3], diffs)
    assert sum(len(v) for v in expected.values()) > 1000
    assert _held(spark, settings) == _held(spark, daily)
    assert len(_held(spark, daily)) > 10


def test_catch_up_records_one_balanced_run_per_table_and_batch(spark, warehouses):
    _, daily_runs = warehouses["daily"]
    _, batch_runs = warehouses["one_batch"]
    _, two_runs = warehouses["by_two"]
    main = [r for r in batch_runs if not r.message.startswith("order lines whose header arrived later")]
    assert sorted(r.table_name for r in main) == sorted(s.qualified for s in SILVER_TABLES)
    assert {r.run_date for r in main} == {DAYS[-1]} and len({r.run_id for r in main}) == 1
    assert all(r.status == "ok" and r.balanced for r in batch_runs + two_runs)
    assert all(f"ingest days {DAYS[0]} to {DAYS[-1]} (3) as one batch" in r.message for r in main if r.rows_in)
    # every bronze row of the days is read once, as day by day reads it
    daily_in = {}
    for r in daily_runs:
        if not r.message.startswith("order lines whose header arrived later"):
            daily_in[r.table_name] = daily_in.get(r.table_name, 0) + r.rows_in
    assert {r.table_name: r.rows_in for r in main} == daily_in
    assert sorted({r.run_date for r in two_runs if r.table_name == "silver.orders"}) == [DAYS[1], DAYS[2]]


def test_catch_up_again_changes_nothing(spark, warehouses):
    from flows.refine import refine_days

    settings, _ = warehouses["one_batch"]
    before = (_silver(spark, settings), _held(spark, settings))
    runs = refine_days(settings, DAYS, batch_days=len(DAYS))
    assert all(r.rows_out == 0 and r.balanced for r in runs)
    daily, _ = warehouses["daily"]
    assert all(r.rows_out == 0 for r in refine_days(daily, DAYS, batch_days=2))  # a catch-up over refined days
    assert (_silver(spark, settings), _held(spark, settings)) == before


def test_batch_days_must_be_positive(warehouses):
    from flows.refine import refine_days

    settings, _ = warehouses["daily"]
    with pytest.raises(LakehouseError, match="batch_days must be at least 1"):
        refine_days(settings, DAYS, batch_days=0)
