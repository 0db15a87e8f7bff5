"""The real samples (../shared/datasets: Olist, Online Retail, REES46) flow through silver unchanged: landed through
their mapping files, ingested, refined; their real defects are caught by rules (counted here independently from the
export files), not cleaned by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter

import pytest

from conftest import DATASETS
from lakehouse import delta
from lakehouse.catalog import (
    QUARANTINE, SILVER_CUSTOMERS, SILVER_EVENTS, SILVER_ORDER_LINES, SILVER_ORDERS, SILVER_PAYMENTS, SILVER_PRODUCTS,
)

pytestmark = [pytest.mark.flow, pytest.mark.slow]

DAY = dt.date(2026, 2, 1)


def _export(folder: str, name: str) -> list[dict]:
    """The records of an export file as the publisher wrote them (CR line endings handled), truncated line kept."""
    text = (DATASETS / folder / name).read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def refined(spark, tmp_path_factory):
    from flows.ingest import ingest_days
    from flows.refine import refine_day
    from lakehouse.mappings import land_export, load_mappings
    from lakehouse.settings import load_settings

    settings = load_settings(data_root=str(tmp_path_factory.mktemp("silver_samples") / "lh"), spark_remote=None)
    mappings = load_mappings(settings)
    for name in ("olist", "online_retail", "rees46"):
        land_export(settings, mappings[name], str(DATASETS / name), DAY)
    ingested = ingest_days(settings, [DAY], sources=["olist", "online_retail", "rees46"])
    runs = {r.table_name: r for r in refine_day(settings, DAY)}
    return settings, ingested, runs


def _held(spark, settings, table, bronze):
    rows = delta.read_table(spark, QUARANTINE, settings).where(f"source_table = '{table}'").collect()
    return [r for r in rows if json.loads(r["row_json"])["_bronze_table"] == bronze]


def _rule(run, name):
    return next(r for r in run.gate_results if r["name"] == name and r["scope"] == "row")


def test_every_table_balances(refined):
    _, ingested, runs = refined
    bronze_in = sum(r.rows_out for r in ingested)
    assert all(r.balanced and r.status == "ok" for r in runs.values())
    assert sum(r.rows_in for r in runs.values()) == bronze_in  # each bronze table feeds exactly one silver table


def test_online_retail_missing_customer_ids_and_cancellations(spark, refined):
    settings, _, runs = refined
    export = _export("online_retail", "online_retail_2010-12-01_07.csv")
    complete = [r for r in export if r.get("Country") is not None]  # the last record is cut short in the sample
    no_customer = sum(1 for r in export if not (r.get("CustomerID") or "").strip())
    cancelled = [r for r in complete if r["InvoiceNo"].startswith("C")]
    negative = [r for r in complete if r["Quantity"].startswith("-")]
    assert no_customer > 4000 and cancelled and len(negative) > len(cancelled)

    # A customer record without its id cannot be kept: quarantined, with the reason.
    held = _held(spark, settings, "silver.customers", "bronze.online_retail_customers")
    assert Counter("customer_id_present" in r["failed_rules"] for r in held) == Counter({True: no_customer})
    truncated = [r for r in held if "no_parse_error" in r["failed_rules"]]
    assert len(truncated) == 1 and json.loads(truncated[0]["row_json"])["_raw_line"].startswith("537")
    # Orders and lines without a customer are guest sales: kept, and the warn rule counts them.
    guest_rows = sum(1 for r in complete if not r["CustomerID"].strip())
    assert _rule(runs["silver.orders"], "customer_present")["unexpected_count"] == guest_rows
    assert delta.read_table(spark, SILVER_ORDER_LINES, settings).where(
        "source_system = 'online_retail' AND source_customer_id IS NULL").count() == guest_rows

    lines = delta.read_table(spark, SILVER_ORDER_LINES, settings).where("source_system = 'online_retail'")
    c_lines = lines.where("order_id LIKE 'C%'").select("line_type", "quantity", "line_total").collect()
    assert len(c_lines) == len(cancelled)
    assert all(r["line_type"] == "return" and r["quantity"] < 0 and r["line_total"] < 0 for r in c_lines)
    assert _rule(runs["silver.order_lines"], "return_on_returned_order")["unexpected_count"] == len(negative)
    zero = sum(1 for r in complete if float(r["UnitPrice"]) == 0)
    assert _rule(runs["silver.order_lines"], "price_not_zero")["unexpected_count"] == zero
    assert lines.groupBy().count().collect()[0][0] == len(complete)

    orders = delta.read_table(spark, SILVER_ORDERS, settings).where("source_system = 'online_retail'")
    assert orders.select("order_id").distinct().count() == len({r["InvoiceNo"] for r in complete})
    customers = delta.read_table(spark, SILVER_CUSTOMERS, settings).where("source_system = 'online_retail'")
    assert {r["country"] for r in customers.select("country").distinct().collect()} >= {"GB", "FR", "DE", "NL"}


def test_olist_defects_and_mapped_values(spark, refined):
    settings, _, runs = refined
    payments = _export("olist", "olist_order_payments_dataset.csv")
    not_defined = sum(1 for r in payments if r["payment_type"] == "not_defined")
    held = _held(spark, settings, "silver.payments", "bronze.olist_payments")
    assert not_defined and [r["failed_rules"] for r in held] == [["payment_method_known"]] * not_defined
    silver_pay = delta.read_table(spark, SILVER_PAYMENTS, settings)
    assert {r[0] for r in silver_pay.select("payment_method").distinct().collect()} <= {"card", "bank_transfer", "gift_card"}

    orders = _export("olist", "olist_orders_dataset.csv")
    status = Counter(r["order_status"] for r in orders)
    silver_orders = delta.read_table(spark, SILVER_ORDERS, settings).where("source_system = 'olist'")
    got = Counter({r["status"]: r["count"] for r in silver_orders.groupBy("status").count().collect()})
    assert got["cancelled"] == status["canceled"] + status["unavailable"]
    assert got["delivered"] == status["delivered"] and sum(got.values()) == len(orders)
    cancelled_lines = delta.read_table(spark, SILVER_ORDER_LINES, settings).where(
        "source_system = 'olist' AND order_status = 'cancelled'")
    assert {r[0] for r in cancelled_lines.select("line_type").distinct().collect()} == {"cancelled"}

    products = _export("olist", "olist_products_dataset.csv")
    no_category = sum(1 for r in products if not r["product_category_name"])
    silver_products = delta.read_table(spark, SILVER_PRODUCTS, settings).where("source_system = 'olist'")
    assert no_category and silver_products.where("category_code = 'unknown' AND category_l1 = 'unknown'").count() == no_category
    assert {r[0] for r in silver_products.select("brand").distinct().collect()} == {"unknown"}
    assert _rule(runs["silver.products"], "name_present")["unexpected_count"] >= len(products)


def test_rees46_events_cleaned(spark, refined):
    settings, _, runs = refined
    export = _export("rees46", "events_2019-10-01.csv")
    complete = [r for r in export if r.get("user_session") is not None]
    def key(r):
        return r["event_time"], r["user_id"], r["product_id"], r["user_session"], r["event_type"]

    keys = Counter(key(r) for r in complete)
    first = {}
    for r in complete:
        first.setdefault(key(r), r)
    run = runs["silver.events"]
    assert run.rows_quarantined == len(export) - len(complete) == 1  # the sample's last line is cut short
    assert run.rows_deduplicated == sum(n - 1 for n in keys.values())
    events = delta.read_table(spark, SILVER_EVENTS, settings)
    assert events.count() == len(keys)
    no_category = sum(1 for r in first.values() if not r["category_code"])
    assert events.where("category_code = 'unknown' AND category_l1 = 'unknown'").count() == no_category
    sample = events.where("category_code = 'appliances.environment.water_heater'").limit(1).collect()[0]
    assert (sample["category_l1"], sample["category_l2"], sample["category_l3"]) == ("appliances", "environment", "water_heater")
    assert (sample["event_date"], sample["event_day_of_week"]) == (dt.date(2019, 10, 1), 2)  # a Tuesday
