"""Tiny silver-shaped and identity-shaped frames for the gold tests (contracts.md schemas), plus their own checks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

ORDER_LINES_SCHEMA = (
    "source_system string, order_id string, line_number int, source_kind string, channel string, "
    "source_customer_id string, store_id string, sku string, quantity int, unit_price decimal(12,2), "
    "discount_amount decimal(12,2), line_total decimal(12,2), line_type string, order_ts timestamp, "
    "order_date date, payment_method string, currency string"
)
PRODUCTS_SCHEMA = (
    "source_system string, sku string, product_name string, brand string, category_code string, category_l1 string, "
    "category_l2 string, category_l3 string, unit_price decimal(12,2), unit_cost decimal(12,2), currency string, "
    "updated_at timestamp"
)
STORES_SCHEMA = (
    "source_system string, store_id string, store_name string, location_type string, city string, region string, "
    "postcode string, country string, opened_at date"
)
ORDERS_SCHEMA = (
    "source_system string, order_id string, source_customer_id string, channel string, order_ts timestamp, "
    "order_date date, status string, store_id string, device_type string, payment_method string, currency string, "
    "order_total decimal(12,2)"
)
EVENTS_SCHEMA = (
    "event_id string, event_time timestamp, event_type string, product_id string, category_id string, "
    "category_code string, brand string, price decimal(12,2), user_id string, user_session string, event_date date, "
    "event_hour int, event_day_of_week int, category_l1 string, category_l2 string, category_l3 string, "
    "device_type string, source_system string"
)
MOVEMENTS_SCHEMA = (
    "source_system string, movement_id string, movement_ts timestamp, movement_date date, location_id string, "
    "sku string, movement_type string, quantity int, unit_cost decimal(12,2), reference string"
)
XREF_SCHEMA = "source_system string, source_customer_id string, golden_id string, match_score double, match_rule string"
GOLDEN_SCHEMA = "golden_id string, full_name string, first_seen timestamp, last_seen timestamp"

D = dt.date
AS_OF = D(2026, 1, 31)


def money(x) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def ts(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, 0, 0)


def line(order_id, line_number, sku, qty, price, *, day, customer="c1", system="online", channel="web",
         store=None, discount=0, line_type=None, payment="card"):
    """One silver order line: line_total = qty * price - signed discount (negative for returns)."""
    sign = -1 if qty < 0 else 1
    total = money(qty * price - sign * abs(discount))
    lt = line_type or ("return" if qty < 0 else "sale")
    kind = "pos" if system == "pos" else "online"
    return (system, order_id, line_number, kind, channel, customer, store, sku, qty, money(price),
            money(abs(discount)), total, lt, ts(day), day, payment, "GBP")


def order_lines(spark, rows):
    return spark.createDataFrame(rows, ORDER_LINES_SCHEMA)


def product(system, sku, name, brand, l1, price, cost, *, l2="x", l3="y", updated=D(2026, 1, 1), code=None):
    return (system, sku, name, brand, code or f"{l1}.{l2}.{l3}", l1, l2, l3, money(price) if price is not None else None,
            money(cost) if cost is not None else None, "GBP", ts(updated))


def products(spark, rows=None):
    rows = rows if rows is not None else [
        product("online", "A", "Alpha", "acme", "electronics", 10, 4),
        product("online", "B", "Beta", "acme", "electronics", 20, 12),
        product("online", "C", "Gamma", "zen", "home", 5, 1),
        product("online", "D", "Delta", "zen", "home", 8, 7.9),
        product("pos", "A", "ALPHA 1", "Acme", "electronics", 11, 4),
    ]
    return spark.createDataFrame(rows, PRODUCTS_SCHEMA)


def xref(spark, pairs):
    return spark.createDataFrame(
        [(s, c, g, 1.0, "exact_email") for s, c, g in pairs], XREF_SCHEMA
    )


def golden(spark, ids, first_seen=D(2025, 1, 1)):
    return spark.createDataFrame([(g, g.upper(), ts(first_seen), ts(first_seen)) for g in ids], GOLDEN_SCHEMA)


def event(kind, sku, *, user="c1", session="s1", day=D(2026, 1, 10), hour=10, price=10, category="electronics",
          device="desktop", system="clickstream"):
    t = ts(day, hour)
    return (f"{session}-{kind}-{sku}-{hour}", t, kind, sku, None, f"{category}.x.y", "acme", money(price), user,
            session, day, hour, 1, category, "x", "y", device, system)


def events(spark, rows):
    return spark.createDataFrame(rows, EVENTS_SCHEMA)


def rows_by(df, key):
    return {r[key]: r.asDict() for r in df.collect()}


@pytest.mark.unit
def test_line_helper_follows_the_silver_sign_convention():
    sale = line("o1", 1, "A", 2, 10, day=D(2026, 1, 1), discount=1)
    ret = line("r1", 1, "A", -1, 10, day=D(2026, 1, 2), discount=1)
    assert sale[11] == money(19) and sale[12] == "sale"
    assert ret[11] == money(-9) and ret[12] == "return"
