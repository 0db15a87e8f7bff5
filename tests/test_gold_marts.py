"""Marts on tiny frames: a day with no sales, returns exceeding sales, rolling windows, funnel, inventory."""

from __future__ import annotations

import datetime as dt

import pytest

from test_gold_frames import (
    D, MOVEMENTS_SCHEMA, ORDERS_SCHEMA, event, events, line, money, order_lines, products, ts, xref,
)
from transforms.gold import marts
from transforms.gold.dimensions import build_dim_date, conform_products
from transforms.gold.facts import build_fact_sales
from transforms.gold.metrics import attach_golden_id_to_events

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]
AS_OF = D(2026, 1, 5)


@pytest.fixture
def fact(spark):
    rows = [
        line("o1", 1, "A", 1, 10, day=D(2026, 1, 1), customer="c1"),
        line("t1", 1, "B", 1, 20, day=D(2026, 1, 1), customer=None, system="pos", channel="store", store="S1", payment="cash"),
        # 2 January: no sales at all
        line("o3", 1, "B", 1, 20, day=D(2026, 1, 3), customer="c2", channel="app", payment="paypal"),
        line("o3", 2, "C", 2, 5, day=D(2026, 1, 3), customer="c2", channel="app", payment="paypal"),
        line("r1", 1, "A", -5, 10, day=D(2026, 1, 3), customer="c1"),               # returns exceed the day's sales
        line("o4", 1, "D", 10, 10, day=D(2026, 1, 4), customer="c1", line_type="cancelled"),
        line("o5", 1, "A", 1, 10, day=D(2026, 1, 5), customer="c1"),
    ]
    return build_fact_sales(order_lines(spark, rows), xref=xref(spark, [("online", "c1", "G1")]),
                            dim_product=conform_products(products(spark)))


@pytest.fixture
def ev(spark):
    return events(spark, [
        event("view", "A", session="s1", day=D(2026, 1, 1), hour=9),
        event("cart", "A", session="s1", day=D(2026, 1, 1), hour=10),
        event("purchase", "A", session="s1", day=D(2026, 1, 1), hour=11),
        event("view", "A", user="c2", session="s2", day=D(2026, 1, 1), device="mobile"),
        event("cart", "C", user="c2", session="s4", day=D(2026, 1, 1), category="home", price=5, device="mobile"),
        event("cart", "C", user="c2", session="s4", day=D(2026, 1, 1), hour=11, category="home", price=5, device="mobile"),
        event("remove_from_cart", "C", user="c2", session="s4", day=D(2026, 1, 1), hour=12, category="home", price=5,
              device="mobile"),
        event("view", "B", user="c3", session="s3", day=D(2026, 1, 2)),
    ])


def _dim_date(spark):
    spine = spark.createDataFrame([(D(2025, 12, 20) + dt.timedelta(days=i),) for i in range(30)], "date date")
    return build_dim_date(spine)


def test_daily_sales_summary_zero_days_returns_rolling_and_channels(spark, fact, ev):
    out = marts.build_daily_sales_summary(fact, events=ev, dim_date=_dim_date(spark), as_of=AS_OF)
    rows = {(r["event_date"], r["channel"]): r.asDict() for r in out.collect()}
    assert len(rows) == 5 * 4                                     # 1..5 January x web, app, store, all
    a = {d: rows[(D(2026, 1, d), "all")] for d in range(1, 6)}
    assert [a[d]["total_revenue"] for d in range(1, 6)] == [money(30), money(0), money(-20), money(0), money(10)]
    assert a[2]["total_orders"] == 0 and a[2]["total_events"] == 1 and a[2]["unique_sessions"] == 1
    assert a[1]["total_orders"] == 2 and a[1]["overall_conversion_rate"] == pytest.approx(100 / 3, abs=1e-3)
    assert a[3]["returns_amount"] == money(50) and a[3]["gross_sales"] == money(30) and a[3]["avg_order_value"] == money(30)
    assert a[4]["cancelled_amount"] == money(100) and a[4]["total_orders"] == 0
    assert a[2]["revenue_7d_avg"] == money(15)                    # (30 + 0) / 2 days available
    assert a[5]["revenue_7d_avg"] == money(4)                     # (30 + 0 - 20 + 0 + 10) / 5
    assert a[2]["revenue_dod_change"] == pytest.approx(-100.0)
    assert a[3]["revenue_dod_change"] is None                     # previous day 0: undefined
    web3 = rows[(D(2026, 1, 3), "web")]
    assert web3["total_revenue"] == money(-50) and web3["total_events"] is None
    assert rows[(D(2026, 1, 1), "store")]["total_revenue"] == money(20)
    for d in range(1, 6):
        day = D(2026, 1, d)
        assert sum(rows[(day, c)]["total_revenue"] for c in ("web", "app", "store")) == a[d]["total_revenue"]


def test_daily_sales_summary_with_no_sales_at_all(spark, ev):
    empty = order_lines(spark, [])
    fact = build_fact_sales(empty, xref=xref(spark, []), dim_product=conform_products(products(spark)))
    out = marts.build_daily_sales_summary(fact, events=ev, dim_date=_dim_date(spark), as_of=AS_OF).where("channel = 'all'")
    got = {r["event_date"]: r for r in out.collect()}
    assert sorted(got) == [D(2026, 1, d) for d in range(1, 6)]
    assert all(r["total_revenue"] == money(0) and r["revenue_7d_avg"] == money(0) for r in got.values())


def test_product_performance(spark, fact, ev):
    dim = conform_products(products(spark))
    out = {r["sku"]: r.asDict() for r in marts.build_product_performance(dim, fact_sales=fact, events=ev).collect()}
    a = out["A"]
    assert (a["total_views"], a["total_cart_adds"], a["total_purchases"]) == (2, 1, 1)
    assert (a["view_to_cart_rate"], a["cart_to_purchase_rate"], a["overall_conversion_rate"]) == (50.0, 100.0, 50.0)
    assert a["total_revenue"] == money(-30) and a["units_returned"] == 5 and a["units_sold"] == 2
    assert out["B"]["total_revenue"] == money(40) and out["B"]["revenue_rank_global"] == 1
    assert out["B"]["performance_tier"] == "Top 10%" and out["D"]["total_revenue"] == money(0)
    assert out["D"]["performance_tier"] == "Bottom 50%" and out["D"]["view_to_cart_rate"] is None
    assert sum(r["total_revenue"] for r in out.values()) == money(20)


def test_conversion_funnel_and_cart_abandonment(spark, ev):
    f = {(r["event_date"], r["category_l1"]): r.asDict() for r in marts.build_conversion_funnel(ev).collect()}
    el = f[(D(2026, 1, 1), "electronics")]
    assert (el["total_sessions"], el["sessions_with_view"], el["sessions_with_cart"], el["sessions_with_purchase"]) == (2, 2, 1, 1)
    assert (el["session_view_to_cart_rate"], el["cart_abandonment_rate"], el["total_revenue"]) == (50.0, 0.0, money(10))
    home = f[(D(2026, 1, 1), "home")]
    assert home["cart_abandonment_rate"] == 100.0 and home["session_view_to_cart_rate"] is None
    assert f[(D(2026, 1, 1), "all")]["total_sessions"] == 3
    x = xref(spark, [("online", "c2", "G2")])
    carts = {r["user_session"]: r.asDict() for r in marts.build_cart_abandonment(attach_golden_id_to_events(ev, xref=x)).collect()}
    assert set(carts) == {"s1", "s4"}
    assert carts["s1"]["is_abandoned"] is False and carts["s1"]["abandoned_value"] == money(0)
    s4 = carts["s4"]
    assert (s4["is_abandoned"], s4["cart_adds"], s4["cart_removes"], s4["golden_id"]) == (True, 2, 1, "G2")
    assert s4["cart_value"] == money(10) and s4["abandoned_value"] == money(5)


def test_category_payment_and_device_summaries(spark, fact, ev):
    cat = {(r["sale_date"], r["category_l1"]): r for r in marts.build_category_sales_summary(fact).collect()}
    assert cat[(D(2026, 1, 3), "electronics")]["total_revenue"] == money(-30)   # B 20 - A return 50
    assert cat[(D(2026, 1, 3), "home")]["total_revenue"] == money(10)
    pay = {(r["sale_date"], r["payment_method"]): r for r in marts.build_payment_method_summary(fact).collect()}
    assert pay[(D(2026, 1, 1), "cash")]["total_revenue"] == money(20)
    assert pay[(D(2026, 1, 1), "cash")]["share_of_revenue"] == pytest.approx(100 * 20 / 30, abs=1e-3)
    orders = spark.createDataFrame(
        [("online", "o3", "c2", "app", ts(D(2026, 1, 3)), D(2026, 1, 3), "placed", None, "mobile", "paypal", "GBP", money(30))],
        ORDERS_SCHEMA)
    dev = {(r["event_date"], r["device_type"]): r for r in marts.build_device_usage_summary(ev, orders=orders, fact_sales=fact).collect()}
    m1 = dev[(D(2026, 1, 1), "mobile")]
    assert (m1["sessions"], m1["purchase_sessions"], m1["session_conversion_rate"]) == (2, 0, 0.0)
    assert dev[(D(2026, 1, 1), "desktop")]["session_conversion_rate"] == 100.0
    assert dev[(D(2026, 1, 3), "mobile")]["online_orders"] == 1 and dev[(D(2026, 1, 3), "mobile")]["online_revenue"] == money(30)


def test_inventory_marts(spark):
    def mv(i, day, loc, sku, kind, qty, cost=2):
        return ("inventory", f"m{i}", ts(day), day, loc, sku, kind, qty, money(cost), None)

    moves = spark.createDataFrame([
        mv(1, D(2026, 1, 1), "S1", "A", "inbound", 10), mv(2, D(2026, 1, 2), "S1", "A", "outbound", 3),
        mv(3, D(2026, 1, 2), "S1", "A", "outbound", 2), mv(4, D(2026, 1, 3), "S1", "A", "adjustment", -2, cost=3),
        mv(5, D(2026, 1, 1), "W1", "B", "inbound", 5), mv(6, D(2026, 1, 2), "W1", "B", "outbound", 9),
    ], MOVEMENTS_SCHEMA)
    summ = {(r["movement_date"], r["location_id"], r["sku"], r["movement_type"]): r
            for r in marts.build_inventory_movement_summary(moves).collect()}
    out2 = summ[(D(2026, 1, 2), "S1", "A", "outbound")]
    assert (out2["movements"], out2["units_moved"], out2["net_units"], out2["total_cost"]) == (2, 5, -5, money(10))
    pos = {(r["location_id"], r["sku"]): r for r in marts.build_inventory_net_position(moves, as_of=AS_OF).collect()}
    s1 = pos[("S1", "A")]
    assert (s1["inbound_units"], s1["outbound_units"], s1["adjustment_units"], s1["net_units"]) == (10, 5, -2, 3)
    assert s1["latest_unit_cost"] == money(3) and s1["stock_value"] == money(9) and s1["is_negative"] is False
    assert pos[("W1", "B")]["net_units"] == -4 and pos[("W1", "B")]["is_negative"] is True
