"""Every silver rule file: it loads, names only columns the silver batch has, and each rule catches the row built to
break it (and only that row), through the real gate. Table-scope rules stop the flow on a duplicate key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from lakehouse.catalog import SILVER_TABLES
from lakehouse.errors import QualityGateFailed
from transforms.silver.tables import TABLES, to_batch

pytestmark = pytest.mark.unit

TS = dt.datetime(2026, 1, 3, 9, 0)
DAY = dt.date(2026, 1, 3)
LINEAGE = {"_version_ts": TS, "_ingested_at": TS, "_source_file": "f.csv", "ingest_date": DAY, "row_hash": "h",
           "_row_json": "{}", "_parse_error": None, "_unparsed": None}

# A valid silver batch row per table, and per rule the change that breaks it (and nothing else).
BASE = {
    "customers": dict(source_system="online", source_kind="online", source_customer_id="C1", first_name="Jane",
                      last_name="Doe", full_name="Jane Doe", email="jane@x.com", phone_e164="+447700900123",
                      date_of_birth=dt.date(1990, 2, 3), address_line1="1 High St", city="London", postcode="SW1A 1AA",
                      country="GB", loyalty_card=None, marketing_opt_in=True, created_at=TS, updated_at=TS),
    "products": dict(source_system="online", source_kind="online", sku="SKU-1", product_name="Headphones", brand="sony",
                     category_code="electronics.audio", category_l1="electronics", category_l2="audio",
                     category_l3="unknown", unit_price=Decimal("59.99"), unit_cost=Decimal("30.00"), currency="GBP",
                     updated_at=TS),
    "stores": dict(source_system="pos", source_kind="pos", store_id="S1", store_name="Leeds", location_type="store",
                   city="Leeds", region="Yorkshire", postcode="LS1 1UB", country="GB", opened_at=dt.date(2015, 3, 1)),
    "payments": dict(source_system="online", source_kind="online", payment_id="P1", order_id="O1", payment_ts=TS,
                     payment_date=DAY, payment_method="card", amount=Decimal("24.00"), status="captured"),
    "orders": dict(source_system="online", source_kind="online", order_id="O1", source_customer_id="C1", channel="web",
                   order_ts=TS, order_date=DAY, status="delivered", store_id=None, device_type="desktop",
                   payment_method="card", currency="GBP", order_total=Decimal("24.00"), shipping_postcode=None,
                   updated_at=TS),
    "order_lines": dict(source_system="online", source_kind="online", order_id="O1", line_number=1, channel="web",
                        source_customer_id="C1", store_id=None, sku="SKU-1", quantity=2, unit_price=Decimal("10.00"),
                        discount_amount=Decimal("1.00"), line_total=Decimal("19.00"), line_type="sale", order_ts=TS,
                        order_date=DAY, order_status="delivered", payment_method="card", currency="GBP", updated_at=TS),
    "events": dict(event_id="e1", source_system="clickstream", source_kind="clickstream", event_time=TS,
                   event_type="view", product_id="SKU-1", category_id=1, category_code="electronics.audio",
                   brand="sony", price=Decimal("59.99"), user_id="C1", user_session="s1", device_type="mobile",
                   event_date=DAY, event_hour=9, event_day_of_week=6, category_l1="electronics", category_l2="audio",
                   category_l3="unknown"),
    "inventory_movements": dict(source_system="inventory", source_kind="inventory", movement_id="M1", movement_ts=TS,
                                movement_date=DAY, location_id="W1", sku="SKU-1", movement_type="inbound", quantity=5,
                                unit_cost=Decimal("30.00"), reference="PO-1"),
}
COMMON = {"no_parse_error": {"_parse_error": "3 of 13 fields"}, "values_parse": {"_unparsed": "updated_at"}}
BREAK = {
    "customers": {"customer_id_present": {"source_customer_id": None}, "email_well_formed": {"email": "jane.x.com"},
                  "birth_date_plausible": {"date_of_birth": dt.date(1850, 1, 1)},
                  "country_is_iso_code": {"country": "UNSPECIFIED"},
                  "some_contact_given": {"email": None, "phone_e164": None, "postcode": None, "last_name": None}},
    "products": {"sku_present": {"sku": None}, "price_not_negative": {"unit_price": Decimal("-1.00")},
                 "cost_not_negative": {"unit_cost": Decimal("-1.00")}, "name_present": {"product_name": None},
                 "price_present": {"unit_price": None}, "currency_is_iso_code": {"currency": "pounds"}},
    "stores": {"store_id_present": {"store_id": None}, "location_type_known": {"location_type": "spaceport"},
               "country_is_iso_code": {"country": "UNITED KINGDOMS"}},
    "payments": {"payment_id_present": {"payment_id": None}, "order_id_present": {"order_id": None},
                 "amount_present": {"amount": None}, "payment_method_known": {"payment_method": "bitcoin"},
                 "status_known": {"status": "pending"}, "payment_time_present": {"payment_ts": None},
                 "payment_time_plausible": {"payment_ts": dt.datetime(2999, 1, 1)}},
    "orders": {"order_id_present": {"order_id": None}, "order_time_present": {"order_ts": None},
               "order_time_plausible": {"order_ts": dt.datetime(1850, 1, 1)},
               "channel_known": {"channel": "fax"}, "status_known": {"status": "lost"},
               "device_type_known": {"device_type": "smartwatch"}, "payment_method_known": {"payment_method": "bitcoin"},
               "customer_present": {"source_customer_id": None}, "status_present": {"status": None}},
    "order_lines": {
        "order_id_present": {"order_id": None}, "line_number_present": {"line_number": None}, "sku_present": {"sku": None},
        "quantity_present": {"quantity": None},
        "quantity_not_zero": {"quantity": 0, "discount_amount": Decimal("0"), "line_total": Decimal("0")},
        "quantity_plausible": {"quantity": 200000, "line_total": Decimal("1999999.00")},
        "unit_price_present": {"unit_price": None}, "unit_price_not_negative": {"unit_price": Decimal("-10.00")},
        "line_total_consistent": {"line_total": Decimal("25.00")}, "order_header_found": {"order_ts": None},
        "line_type_known": {"line_type": "gift"},
        "return_on_returned_order": {"quantity": -2, "line_total": Decimal("-19.00"), "line_type": "return"},
        "price_not_zero": {"unit_price": Decimal("0"), "discount_amount": Decimal("0"), "line_total": Decimal("0")}},
    "events": {"event_time_present": {"event_time": None},
               "event_time_plausible": {"event_time": dt.datetime(2999, 1, 1)},
               "event_type_known": {"event_type": "zoom"},
               "product_id_present": {"product_id": None}, "price_not_negative": {"price": Decimal("-1.00")},
               "device_type_known": {"device_type": "fridge"}, "session_present": {"user_session": None}},
    "inventory_movements": {
        "movement_id_present": {"movement_id": None}, "movement_time_present": {"movement_ts": None},
        "movement_time_plausible": {"movement_ts": dt.datetime(1989, 12, 31, 23, 59, 59)},
        "location_present": {"location_id": None}, "sku_present": {"sku": None},
        "movement_type_known": {"movement_type": "teleport"}, "quantity_present": {"quantity": None},
        "quantity_not_zero": {"quantity": 0}, "unit_cost_not_negative": {"unit_cost": Decimal("-1.00")}},
}
KEY_COLUMNS = ("column", "column_A", "column_B")


def test_every_silver_table_has_a_rule_file_that_loads():
    from expectations.rules import load_suite

    for spec in SILVER_TABLES:
        suite = load_suite(spec.qualified)
        assert suite.table == spec.qualified
        assert {r.severity for r in suite.rules} >= {"quarantine", "fail"}, spec.qualified
        assert any(r.scope == "table" for r in suite.rules)


@pytest.fixture(scope="module")
def batch_schemas(spark):
    """Silver batch schema per table, built by the real builders on empty bronze frames."""
    from silver_helpers import bronze_ddl
    from transforms.silver.entities import attach_order_headers

    headers = spark.createDataFrame([], "source_system string, order_id string, channel string, source_customer_id "
                                        "string, store_id string, order_ts timestamp, order_date date, status string, "
                                        "payment_method string, currency string")
    out = {}
    for name, table in TABLES.items():
        (kind, ent), builder = next(iter(table.feeds.items()))
        empty = spark.createDataFrame([], bronze_ddl(kind, ent))
        batch = builder(empty, source_system=kind, source_kind=kind)
        if name == "order_lines":
            batch = attach_order_headers(batch, headers=headers)
        out[name] = to_batch(batch, table=table).schema
    return out


@pytest.mark.parametrize("name", sorted(TABLES))
def test_rules_name_only_batch_columns(batch_schemas, name):
    from expectations.rules import load_suite

    columns = set(batch_schemas[name].fieldNames())
    assert set(BASE[name]) | set(LINEAGE) | {"_line_number"} == columns, "the test's base row covers the batch"
    for rule in load_suite(f"silver.{name}").rules:
        named = [rule.kwargs[k] for k in KEY_COLUMNS if k in rule.kwargs] + list(rule.kwargs.get("column_list", []))
        assert set(named) <= columns, (rule.name, named)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_row_rule_catches_the_row_that_breaks_it(spark, settings, batch_schemas, name):
    from expectations.gate import run_gate
    from expectations.rules import load_suite

    suite = load_suite(f"silver.{name}")
    row_rules = {r.name: r for r in suite.for_scope("row")}
    breaks = {**COMMON, **BREAK[name]}
    assert set(breaks) == set(row_rules), "every row rule has a breaking case (and no case is stale)"
    schema = batch_schemas[name]
    rows, line_of = [], {}
    for i, rule in enumerate(["(valid)", *sorted(breaks)], start=1):
        values = {**BASE[name], **LINEAGE, "_line_number": i, **({} if rule == "(valid)" else breaks[rule])}
        if name in ("customers", "products", "stores", "payments", "orders", "inventory_movements"):
            key = [k for k in TABLES[name].keys if k != "source_system"][0]
            if values[key] is not None:
                values[key] = f"{values[key]}-{i}"  # distinct keys: no rule sees a duplicate
        rows.append(tuple(values[f] for f in schema.fieldNames()))
        line_of[rule] = i
    df = spark.createDataFrame(rows, schema)
    result = run_gate(spark, df, table=suite.table, run_id="test", settings=settings, scope="row",
                      index_columns=("_source_file", "_line_number"), store_results=False)
    quarantined = {r["index_key"]: r["failed_rules"] for r in result.quarantined.collect()}
    got = {int(k.split('"_line_number":"')[1].rstrip('"}')): v for k, v in quarantined.items()}
    expected = {line_of[n]: [n] for n, r in row_rules.items() if r.severity == "quarantine"}
    assert got == expected
    passed_lines = sorted(r["_line_number"] for r in result.passed.select("_line_number").collect())
    assert passed_lines == sorted(set(range(1, len(rows) + 1)) - set(expected))
    for r in result.rules:
        if row_rules[r["name"]].severity == "warn":
            assert not r["success"] and r["unexpected_count"] == 1, r


@pytest.mark.parametrize("name", sorted(TABLES))
def test_duplicate_key_in_the_table_stops_the_flow(spark, settings, batch_schemas, name):
    from expectations.gate import run_gate

    schema = batch_schemas[name]
    row = {**BASE[name], **LINEAGE, "_line_number": 1}
    rows = [tuple({**row, "_line_number": i}[f] for f in schema.fieldNames()) for i in (1, 2)]
    with pytest.raises(QualityGateFailed, match=r"(key_unique|event_id_unique).*failed on 2 rows"):
        run_gate(spark, spark.createDataFrame(rows, schema), table=f"silver.{name}", run_id="test", settings=settings,
                 scope="table", store_results=False)
