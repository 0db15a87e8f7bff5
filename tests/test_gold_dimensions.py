"""Conformed dimensions and the sales fact on tiny frames."""

from __future__ import annotations

import datetime as dt

import pytest

from test_gold_frames import (
    AS_OF, D, STORES_SCHEMA, line, money, order_lines, product, products, rows_by, xref,
)
from transforms.gold.dimensions import (
    add_inferred_locations, add_inferred_products, build_dim_date, build_dim_store, conform_products, uk_holidays,
)
from transforms.gold.facts import FACT_SALES_COLUMNS, build_fact_sales

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]


def test_product_survivorship_prefers_online_then_recency_and_keeps_hierarchy_whole(spark):
    rows = [
        product("pos", "A", "ALPHA STORE", "Acme", "electronics", 11, 5, l2="audio", l3="speakers", updated=D(2026, 1, 20)),
        product("online", "A", "Alpha", None, "unknown", 10, 4, l2="unknown", l3="unknown", updated=D(2026, 1, 1)),
        product("online", "A", "Alpha v2", None, "unknown", 10.5, None, updated=D(2026, 1, 5)),
        product("pos", "B", "Bee", "bumble", "home", 3, 1),
    ]
    dim = rows_by(conform_products(products(spark, rows)), "sku")
    a = dim["A"]
    assert a["product_name"] == "Alpha v2"            # online first, most recent online row
    assert a["brand"] == "acme"                       # online has none -> pos, lower-cased
    assert (a["category_l1"], a["category_l2"], a["category_l3"]) == ("electronics", "audio", "speakers")
    assert a["unit_price"] == money(10.5)             # list price from the best-ranked source
    assert a["store_unit_price"] == money(11)
    assert a["unit_cost"] == money(5)                 # most recently updated known cost, any source
    assert a["source_systems"] == ["online", "pos"]
    assert a["margin_pct"] == pytest.approx(100 * (10.5 - 5) / 10.5, abs=0.01)
    assert dim["B"]["product_name"] == "Bee" and dim["B"]["is_inferred"] is False
    assert len(dim) == 2


def test_inferred_products_and_locations_cover_every_fact_key(spark):
    dim = conform_products(products(spark))
    sold = order_lines(spark, [line("o1", 1, "ZZZ", 1, 3, day=D(2026, 1, 2)), line("o2", 1, "A", 1, 10, day=D(2026, 1, 2))])
    full = rows_by(add_inferred_products(dim, sold), "sku")
    assert full["ZZZ"]["is_inferred"] is True and full["ZZZ"]["category_l1"] == "unknown"
    assert full["A"]["is_inferred"] is False
    stores = spark.createDataFrame(
        [("pos", "S1", "Leeds", "STORE", "Leeds", "North", "LS1 1AA", "GB", D(2020, 1, 1)),
         ("pos", "W1", "Hub", "warehouse", "Derby", "Midlands", None, "GB", None)], STORES_SCHEMA)
    locs = build_dim_store(stores)
    used = spark.createDataFrame([("S1",), ("S9",), (None,)], "location_id string")
    out = rows_by(add_inferred_locations(locs, used), "location_id")
    assert set(out) == {"S1", "W1", "S9"}
    assert out["S1"]["location_type"] == "store" and out["W1"]["is_warehouse"] is True
    assert out["S9"]["is_inferred"] is True


@pytest.mark.parametrize(
    "day, iso_year, iso_week, fiscal_quarter, fiscal_period, weekend, holiday",
    [
        (D(2025, 1, 1), 2025, 1, 1, 1, False, "New Year's Day"),
        (D(2024, 12, 30), 2025, 1, 1, 1, False, None),      # ISO week 1 of 2025 starts in 2024
        (D(2025, 2, 1), 2025, 5, 1, 2, True, None),         # week 5 -> second period (4-4-5)
        (D(2025, 3, 24), 2025, 13, 1, 3, False, None),      # week 13 -> third, 5-week period
        (D(2025, 12, 26), 2025, 52, 4, 12, False, "Boxing Day"),
        (D(2026, 12, 31), 2026, 53, 4, 12, False, None),    # a 53-week year folds week 53 into period 12
        (D(2025, 4, 18), 2025, 16, 2, 4, False, "Good Friday"),
        (D(2027, 12, 27), 2027, 52, 4, 12, False, "Christmas Day"),  # 25 Dec 2027 is a Saturday: substitute Monday
    ],
)
def test_dim_date_retail_calendar(spark, day, iso_year, iso_week, fiscal_quarter, fiscal_period, weekend, holiday):
    spine = spark.createDataFrame([(day,)], "date date")
    row = build_dim_date(spine, holidays=uk_holidays(range(2024, 2028))).collect()[0]
    assert row["date_key"] == int(day.strftime("%Y%m%d"))
    assert row["day_number"] == (day - dt.date(1970, 1, 1)).days
    assert (row["iso_year"], row["iso_week"]) == (iso_year, iso_week)
    assert (row["fiscal_quarter"], row["fiscal_period"]) == (fiscal_quarter, fiscal_period)
    assert row["is_weekend"] is weekend
    assert row["holiday_name"] == holiday and row["is_holiday"] is (holiday is not None)
    assert row["day_of_week"] == day.isoweekday()


def test_fact_sales_signs_keys_and_anonymous_customers(spark):
    lines = order_lines(spark, [
        line("o1", 1, "A", 2, 10, day=D(2026, 1, 5), customer="c1", discount=2),
        line("o1", 2, "NEW", 1, 3, day=D(2026, 1, 5), customer="c1"),
        line("r1", 1, "A", -1, 10, day=D(2026, 1, 9), customer="c1", discount=1),
        line("t1", 1, "B", 1, 20, day=D(2026, 1, 6), customer=None, system="pos", channel="store", store="S1",
             payment="cash"),
        line("t2", 1, "B", 1, 20, day=D(2026, 1, 6), customer="m9", system="pos", channel="store", store="S1"),
        line("o3", 1, "C", 4, 5, day=D(2026, 1, 7), customer="c1", line_type="cancelled"),
    ])
    dim = add_inferred_products(conform_products(products(spark)), lines)
    fact = build_fact_sales(lines, xref=xref(spark, [("online", "c1", "G1")]), dim_product=dim)
    assert tuple(fact.columns) == FACT_SALES_COLUMNS
    f = rows_by(fact, "sales_key")
    sale, ret, anon, unres, canc = f["online|o1|1"], f["online|r1|1"], f["pos|t1|1"], f["pos|t2|1"], f["online|o3|1"]
    assert (sale["gross_amount"], sale["discount_amount"], sale["net_amount"]) == (money(20), money(2), money(18))
    assert (ret["quantity"], ret["gross_amount"], ret["discount_amount"], ret["net_amount"]) == (-1, money(-10), money(-1), money(-9))
    assert ret["revenue_amount"] == money(-9) and ret["line_type"] == "return"
    assert canc["net_amount"] == money(20) and canc["revenue_amount"] == money(0)
    assert sale["golden_id"] == "G1" and sale["customer_status"] == "identified"
    assert anon["golden_id"] is None and anon["customer_status"] == "anonymous"
    assert unres["golden_id"] is None and unres["customer_status"] == "unresolved"
    assert anon["location_id"] == "S1" and sale["location_id"] is None
    assert sale["date_key"] == 20260105 and sale["category_l1"] == "electronics"
    assert sale["cost_amount"] == money(8)
    assert f["online|o1|2"]["category_l1"] == "unknown"
    # every fact net amount equals silver's line_total, so the totals reconcile exactly
    assert sum(r["net_amount"] for r in f.values()) == sum(r["line_total"] for r in lines.collect())
