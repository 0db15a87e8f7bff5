"""Refine over two generated days (generator -> landing -> bronze -> silver) with injected bad records: the quarantine
holds exactly the generator's bad records (truth/bad_records.csv) plus the lines of quarantined order headers, with
the right rules and the original row; accounting balances; a rerun of both days changes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re

import pytest

from lakehouse import delta
from lakehouse.catalog import QUARANTINE, SILVER_ORDERS, SILVER_TABLES, bronze_table
from silver_helpers import rows_of

pytestmark = [pytest.mark.flow, pytest.mark.slow]

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
QUARANTINED_KINDS = {"malformed", "wrong_type", "negative_price", "unknown_enum"}
SILVER_OF = {  # (source kind, bronze entity) -> silver table
    ("online", "customers"): "silver.customers", ("pos", "members"): "silver.customers",
    ("online", "products"): "silver.products", ("pos", "products"): "silver.products",
    ("pos", "stores"): "silver.stores", ("online", "payments"): "silver.payments",
    ("online", "orders"): "silver.orders", ("pos", "transactions"): "silver.orders",
    ("online", "order_lines"): "silver.order_lines", ("pos", "transaction_lines"): "silver.order_lines",
    ("clickstream", "events"): "silver.events", ("inventory", "movements"): "silver.inventory_movements",
}
SILVER_COLUMN = {  # bronze column -> silver column where they differ (values_parse names silver columns)
    "birth_date": "date_of_birth", "joined_at": "created_at", "opt_in": "marketing_opt_in",
    "transaction_ts": "order_ts", "total_amount": "order_total", "discount": "discount_amount",
}
ENUM_RULE = {
    "status": "status_known", "channel": "channel_known", "device_type": "device_type_known",
    "payment_method": "payment_method_known", "transaction_type": "status_known", "event_type": "event_type_known",
    "movement_type": "movement_type_known", "marketing_opt_in": "values_parse", "opt_in": "values_parse",
}
HEADER_OF = {"online": ("orders", "order_id"), "pos": ("transactions", "transaction_id")}


@pytest.fixture(scope="module")
def refined(spark, tmp_path_factory):
    """Two generated days, ingested and refined once, plus the runs of a second refine of both days."""
    from flows.ingest import ingest_days
    from flows.refine import refine_days
    from generator import generate
    from lakehouse.settings import load_settings

    settings = load_settings(data_root=str(tmp_path_factory.mktemp("silver_gen") / "lh"), spark_remote=None)
    generate(settings, start=DAYS[0], days=len(DAYS), customers=150, orders_per_day=60, seed=11, bad_share=0.06,
             formats={}, progress=False)
    ingest_runs = ingest_days(settings, DAYS)
    runs = refine_days(settings, DAYS)
    snapshot = {s.qualified: rows_of(spark, s, settings) for s in (*SILVER_TABLES, QUARANTINE)}
    reruns = refine_days(settings, DAYS)
    return settings, ingest_runs, runs, snapshot, reruns


def _truth(settings):
    with open(f"{settings.truth_root}/bad_records.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["ingest_date"] in {d.isoformat() for d in DAYS}]


def _quarantine(spark, settings):
    out = {}
    for r in rows_of(spark, QUARANTINE, settings):
        key = json.loads(r["index_key"])
        rel = key["_source_file"].split(str(settings.landing_root).rstrip("/") + "/", 1)[-1]
        out[(r["source_table"], rel, int(key["_line_number"]))] = r
    return out


def test_quarantine_holds_exactly_the_bad_records_and_their_orphaned_lines(spark, refined):
    settings, _, _, _, _ = refined
    truth = _truth(settings)
    bad = {(SILVER_OF[(r["source"], r["entity"])], r["file"], int(r["line_number"])): r
           for r in truth if r["kind"] in QUARANTINED_KINDS}
    assert {r["kind"] for r in bad.values()} == QUARANTINED_KINDS, "the generator injected every kind"
    # Lines whose order header was quarantined cannot be placed and wait in quarantine too, until a valid version
    # of their header arrives (then the refine of that day releases them).
    placed = {(r["source_system"], r["order_id"]) for r in rows_of(spark, SILVER_ORDERS, settings)}
    orphans, released = set(), set()
    for kind, (header_entity, id_column) in HEADER_OF.items():
        bad_headers = {r["business_key"] for r in truth if r["kind"] in QUARANTINED_KINDS and r["source"] == kind
                       and r["entity"] == header_entity}
        lines_entity = "order_lines" if kind == "online" else "transaction_lines"
        lines = delta.read_table(spark, bronze_table(kind, lines_entity), settings)
        for row in lines.where(lines[id_column].isin(sorted(bad_headers))).select(
                id_column, "_source_file", "_line_number").collect():
            rel = row["_source_file"].split(str(settings.landing_root).rstrip("/") + "/", 1)[-1]
            key = ("silver.order_lines", rel, int(row["_line_number"]))
            if key not in bad:
                (released if (kind, row[id_column]) in placed else orphans).add(key)

    held = _quarantine(spark, settings)
    assert set(held) == set(bad) | orphans | released
    assert {k for k, r in held.items() if r["released_run_id"] is not None} == released

    for key, t in bad.items():
        q = held[key]
        rules, row = q["failed_rules"], json.loads(q["row_json"])
        assert q["ingest_date"].isoformat() == t["ingest_date"]
        if t["kind"] == "malformed":
            assert "no_parse_error" in rules and row.get("_parse_error")
            continue
        m = re.match(r"^(\w+): '(.*)' -> '(.*)'$", t["detail"])
        assert m and m.group(1) == t["column"], t["detail"]
        assert row[t["column"]] == m.group(3), "the quarantine keeps the original bronze value"
        if t["kind"] == "wrong_type":
            assert "values_parse" in rules
            assert SILVER_COLUMN.get(t["column"], t["column"]) in q["reasons"]
        elif t["kind"] == "negative_price":
            assert any(r.endswith("_not_negative") for r in rules), rules
        else:
            assert ENUM_RULE[t["column"]] in rules, (t["column"], rules)
    for key in orphans | released:
        assert held[key]["failed_rules"] == ["order_header_found"]


def test_accounting_balances_against_bronze(refined):
    _, ingest_runs, runs, _, _ = refined
    bronze_rows = {}
    for r in ingest_runs:
        source_entity = r.table_name.removeprefix("bronze.")
        kind, entity = next((k, e) for (k, e) in SILVER_OF if f"{k}_{e}" == source_entity)
        key = (SILVER_OF[(kind, entity)], r.run_date)
        bronze_rows[key] = bronze_rows.get(key, 0) + r.rows_out
    releases = [r for r in runs if r.message.startswith("order lines whose header arrived later")]
    assert all(r.balanced and r.rows_in == r.rows_out + r.rows_quarantined + r.rows_deduplicated for r in releases)
    runs = [r for r in runs if r not in releases]
    assert len(runs) == len(SILVER_TABLES) * len(DAYS)
    for r in runs:
        assert r.status == "ok" and r.balanced, r
        assert r.rows_in == r.rows_out + r.rows_quarantined + r.rows_deduplicated
        assert r.rows_in == bronze_rows.get((r.table_name, r.run_date), 0), r.table_name
    assert sum(r.rows_quarantined for r in runs) > 0 and sum(r.rows_deduplicated for r in runs) > 0


def test_duplicates_collapse_and_late_records_land(spark, refined):
    settings, _, _, snapshot, _ = refined
    truth = _truth(settings)
    for table in ("silver.events", "silver.inventory_movements", "silver.order_lines", "silver.customers"):
        from transforms.silver.tables import silver_table

        keys = silver_table(table).keys
        rows = snapshot[table]
        assert len({tuple(r[k] for k in keys) for r in rows}) == len(rows), f"{table} has one row per key"
    late = [r for r in truth if r["kind"] == "late_arriving" and r["entity"] in ("orders", "transactions")]
    assert late, "the generator injected late-arriving orders"
    orders = {(r["source_system"], r["order_id"]): r for r in snapshot["silver.orders"]}
    for t in late:
        o = orders[(t["source"], t["business_key"])]
        assert o["order_date"] < dt.date.fromisoformat(t["ingest_date"]), "late record keeps its own business date"
    assert {r["source_system"] for r in snapshot["silver.order_lines"]} == {"online", "pos"}


def test_rerunning_both_days_changes_nothing(spark, refined):
    settings, _, _, snapshot, reruns = refined
    assert all(r.balanced and r.rows_out == 0 and r.status == "ok" for r in reruns)
    assert {s.qualified: rows_of(spark, s, settings) for s in (*SILVER_TABLES, QUARANTINE)} == snapshot
