"""Marts (seed 003 and 004 tables): daily sales, product performance, funnel, cart abandonment, category, payment,
device and inventory summaries.

Conventions: rates are percentages (0-100, DOUBLE) and null when their denominator is 0; money is DECIMAL(18,2);
revenue is ``fact_sales.revenue_amount`` (sales minus returns, cancelled lines excluded). Sales measures come from
``gold.fact_sales`` (the truth of what was sold), behavioural measures (events, sessions, funnel) from clickstream
events, which carry no sales channel: event columns are filled on the ``channel = 'all'`` rows only.
Rolling windows order by ``day_number`` (an INT) with a RANGE frame: a DATE range frame fails on Sail and Spark 4.2.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.gold.common import day_number, money, safe_div

ALL = "all"


def _pct(num, den):
    return F.round(100.0 * safe_div(num, den), 4)


def _event_flags():
    et = F.col("event_type")
    return et == "view", et == "cart", et == "purchase", et == "remove_from_cart"


def _day_spine(dim_date: DataFrame, *, first_day: DataFrame, as_of: dt.date) -> DataFrame:
    """Every dim_date day from the first day with data (``first_day``: one row, column ``d``) up to ``as_of``."""
    asof = F.lit(as_of.isoformat()).cast("date")
    return (
        dim_date.crossJoin(first_day)
        .where((F.col("date") >= F.coalesce(F.col("d"), asof)) & (F.col("date") <= asof))
        .select(F.col("date").alias("event_date"), "day_number", "day_name", "is_weekend", "is_holiday")
    )


def build_daily_sales_summary(
    fact_sales: DataFrame,
    *,
    events: DataFrame,
    dim_date: DataFrame,
    channels: tuple[str, ...] = ("web", "app", "store"),
    as_of: dt.date,
) -> DataFrame:
    """``gold.daily_sales_summary``: one row per day and channel (plus ``all``), zero-filled days, 7-day average, DoD %."""
    sale = F.col("line_type") == "sale"
    ret = F.col("line_type") == "return"
    canc = F.col("line_type") == "cancelled"
    order_key = F.concat_ws("|", "source_system", "order_id")
    fact = fact_sales.select(
        "order_date", "channel", "golden_id", "quantity", "net_amount", "revenue_amount", "line_type",
        order_key.alias("_order"),
    )
    fact = fact.unionByName(fact.withColumn("channel", F.lit(ALL)))
    sales = fact.groupBy(F.col("order_date").alias("event_date"), "channel").agg(
        F.countDistinct(F.when(sale, F.col("_order"))).cast("long").alias("total_orders"),
        money(F.sum("revenue_amount")).alias("total_revenue"),
        money(F.sum(F.when(sale, F.col("net_amount")).otherwise(0))).alias("gross_sales"),
        money(-F.sum(F.when(ret, F.col("net_amount")).otherwise(0))).alias("returns_amount"),
        money(F.sum(F.when(canc, F.col("net_amount")).otherwise(0))).alias("cancelled_amount"),
        F.sum(F.when(sale, F.col("quantity")).otherwise(0)).cast("long").alias("units_sold"),
        F.countDistinct(F.when(sale, F.col("golden_id"))).cast("long").alias("unique_customers"),
    )
    is_view, is_cart, is_purchase, _ = _event_flags()
    ev = events.groupBy(F.col("event_date").cast("date").alias("event_date")).agg(
        F.count(F.lit(1)).cast("long").alias("total_events"),
        F.sum(F.when(is_view, 1).otherwise(0)).cast("long").alias("total_views"),
        F.sum(F.when(is_cart, 1).otherwise(0)).cast("long").alias("total_cart_adds"),
        F.sum(F.when(is_purchase, 1).otherwise(0)).cast("long").alias("total_purchase_events"),
        F.countDistinct("user_id").cast("long").alias("unique_users"),
        F.countDistinct("user_session").cast("long").alias("unique_sessions"),
        F.countDistinct(F.when(is_purchase, F.col("user_session"))).cast("long").alias("_purchase_sessions"),
    ).withColumn("channel", F.lit(ALL))
    firsts = fact_sales.select(F.col("order_date").alias("d")).unionByName(
        events.select(F.col("event_date").cast("date").alias("d"))
    ).agg(F.min("d").alias("d"))
    spine = _day_spine(dim_date, first_day=firsts, as_of=as_of)
    # ``firsts`` has exactly one row: exploding the literal list over it gives the channel rows without a session.
    chan_rows = firsts.select(F.explode(F.array(*[F.lit(c) for c in (*channels, ALL)])).alias("channel"))
    grid = spine.crossJoin(chan_rows)
    df = grid.join(sales, ["event_date", "channel"], "left").join(ev, ["event_date", "channel"], "left")
    zero = F.lit(0).cast("long")
    zmoney = F.lit(0).cast("decimal(18,2)")
    is_all = F.col("channel") == ALL
    df = df.select(
        "event_date", "day_number", "day_name", "channel", "is_weekend", "is_holiday",
        *[F.when(is_all, F.coalesce(F.col(c), zero)).alias(c)
          for c in ("total_events", "total_views", "total_cart_adds", "total_purchase_events", "unique_users", "unique_sessions")],
        F.coalesce("total_orders", zero).alias("total_orders"),
        F.coalesce("total_revenue", zmoney).alias("total_revenue"),
        F.coalesce("gross_sales", zmoney).alias("gross_sales"),
        F.coalesce("returns_amount", zmoney).alias("returns_amount"),
        F.coalesce("cancelled_amount", zmoney).alias("cancelled_amount"),
        F.coalesce("units_sold", zero).alias("units_sold"),
        F.coalesce("unique_customers", zero).alias("unique_customers"),
        F.when(is_all, _pct(F.col("_purchase_sessions"), F.col("unique_sessions"))).alias("overall_conversion_rate"),
    )
    w7 = Window.partitionBy("channel").orderBy("day_number").rangeBetween(-6, 0)
    prev = Window.partitionBy("channel").orderBy("day_number").rangeBetween(-1, -1)
    prev_rev = F.sum("total_revenue").over(prev)
    return df.select(
        "*",
        money(safe_div(F.col("gross_sales"), F.col("total_orders"))).alias("avg_order_value"),
        money(F.avg("total_revenue").over(w7)).alias("revenue_7d_avg"),
        F.round(100.0 * safe_div(F.col("total_revenue") - prev_rev, prev_rev), 4).alias("revenue_dod_change"),
    )


def build_product_performance(
    dim_product: DataFrame, *, fact_sales: DataFrame, events: DataFrame
) -> DataFrame:
    """``gold.product_performance``: per SKU events funnel (seed 003), sales, revenue rank and performance tier."""
    is_view, is_cart, is_purchase, _ = _event_flags()
    ev = events.groupBy(F.col("product_id").cast("string").alias("sku")).agg(
        F.sum(F.when(is_view, 1).otherwise(0)).cast("long").alias("total_views"),
        F.sum(F.when(is_cart, 1).otherwise(0)).cast("long").alias("total_cart_adds"),
        F.sum(F.when(is_purchase, 1).otherwise(0)).cast("long").alias("total_purchases"),
        F.countDistinct(F.coalesce(F.col("user_id").cast("string"), F.col("user_session"))).cast("long").alias("unique_users"),
        F.avg(F.col("price").cast("double")).alias("_event_price"),
    )
    sale = F.col("line_type") == "sale"
    sales = fact_sales.groupBy("sku").agg(
        F.countDistinct(F.when(sale, F.concat_ws("|", "source_system", "order_id"))).cast("long").alias("total_orders"),
        F.sum(F.when(sale, F.col("quantity")).otherwise(0)).cast("long").alias("units_sold"),
        (-F.sum(F.when(F.col("line_type") == "return", F.col("quantity")).otherwise(0))).cast("long").alias("units_returned"),
        money(F.sum("revenue_amount")).alias("total_revenue"),
        F.sum(F.when(sale, F.col("net_amount"))).alias("_sale_net"),
        F.sum(F.when(sale, F.col("quantity"))).alias("_sale_qty"),
        F.countDistinct(F.when(sale, F.col("golden_id"))).cast("long").alias("unique_buyers"),
    )
    prod = dim_product.select("sku", "product_name", "brand", "category_l1", "category_l2", "category_l3", "unit_price")
    df = prod.join(ev, "sku", "left").join(sales, "sku", "left")
    zero = F.lit(0).cast("long")
    df = df.select(
        "sku", "product_name", "brand", "category_l1", "category_l2", "category_l3",
        money(F.coalesce(safe_div(F.col("_sale_net"), F.col("_sale_qty")), F.col("_event_price"), F.col("unit_price").cast("double"))).alias("avg_price"),
        *[F.coalesce(F.col(c), zero).alias(c) for c in
          ("total_views", "total_cart_adds", "total_purchases", "unique_users", "total_orders", "units_sold",
           "units_returned", "unique_buyers")],
        F.coalesce("total_revenue", F.lit(0).cast("decimal(18,2)")).alias("total_revenue"),
    )
    rank_w = Window.orderBy(F.col("total_revenue").desc())
    n = F.count(F.lit(1)).over(Window.partitionBy())
    df = df.select(
        "*",
        _pct(F.col("total_cart_adds"), F.col("total_views")).alias("view_to_cart_rate"),
        _pct(F.col("total_purchases"), F.col("total_cart_adds")).alias("cart_to_purchase_rate"),
        _pct(F.col("total_purchases"), F.col("total_views")).alias("overall_conversion_rate"),
        F.rank().over(rank_w).cast("int").alias("revenue_rank_global"),
        n.alias("_n"),
    )
    top_share = (F.col("revenue_rank_global") - 1) / F.col("_n")
    tier = (
        F.when(F.col("total_revenue") <= 0, "Bottom 50%")
        .when(top_share < 0.10, "Top 10%")
        .when(top_share < 0.25, "Top 25%")
        .when(top_share < 0.50, "Top 50%")
        .otherwise("Bottom 50%")
    )
    return df.withColumn("performance_tier", tier).drop("_n")


def build_conversion_funnel(events: DataFrame) -> DataFrame:
    """``gold.conversion_funnel``: per day and category_l1 (plus ``all``) session funnel, abandonment and revenue."""
    is_view, is_cart, is_purchase, _ = _event_flags()
    ev = events.select(
        F.col("event_date").cast("date").alias("event_date"),
        F.coalesce(F.col("category_l1"), F.lit("unknown")).alias("category_l1"),
        "user_session", is_view.alias("_v"), is_cart.alias("_c"), is_purchase.alias("_p"),
        F.when(is_purchase, F.col("price").cast("decimal(18,2)")).alias("_rev"),
    )
    ev = ev.unionByName(ev.withColumn("category_l1", F.lit(ALL)))
    per_session = ev.groupBy("event_date", "category_l1", "user_session").agg(
        F.max(F.col("_v").cast("int")).alias("v"),
        F.max(F.col("_c").cast("int")).alias("c"),
        F.max(F.col("_p").cast("int")).alias("p"),
        F.sum("_rev").alias("rev"),
    )
    agg = per_session.groupBy("event_date", "category_l1").agg(
        F.count(F.lit(1)).cast("long").alias("total_sessions"),
        F.sum("v").cast("long").alias("sessions_with_view"),
        F.sum("c").cast("long").alias("sessions_with_cart"),
        F.sum("p").cast("long").alias("sessions_with_purchase"),
        F.sum(F.col("c") * F.col("p")).cast("long").alias("_cart_and_purchase"),
        money(F.coalesce(F.sum("rev"), F.lit(0))).alias("total_revenue"),
    )
    return agg.select(
        "event_date", "category_l1", "total_sessions", "sessions_with_view", "sessions_with_cart",
        "sessions_with_purchase",
        _pct(F.col("sessions_with_cart"), F.col("sessions_with_view")).alias("session_view_to_cart_rate"),
        _pct(F.col("_cart_and_purchase"), F.col("sessions_with_cart")).alias("session_cart_to_purchase_rate"),
        _pct(F.col("sessions_with_cart") - F.col("_cart_and_purchase"), F.col("sessions_with_cart")).alias("cart_abandonment_rate"),
        "total_revenue",
    )


def build_cart_abandonment(events_with_golden: DataFrame) -> DataFrame:
    """``gold.cart_abandonment``: one row per session with a cart add; abandoned when the session bought nothing."""
    is_view, is_cart, is_purchase, is_remove = _event_flags()
    price = F.col("price").cast("decimal(18,2)")
    carted = events_with_golden.where(is_cart).select("user_session").distinct()
    ev = events_with_golden.join(carted, "user_session", "left_semi")
    # max() instead of first(ignorenulls) and a collected set instead of countDistinct: both are single-pass aggregates
    s = ev.groupBy("user_session").agg(
        F.min(F.when(is_cart, F.col("event_time"))).alias("first_cart_ts"),
        F.max("event_time").alias("last_event_ts"),
        F.max(F.col("user_id").cast("string")).alias("user_id"),
        F.max(F.col("golden_id")).alias("golden_id"),
        F.max(F.col("device_type")).alias("device_type"),
        F.sum(F.when(is_cart, 1).otherwise(0)).cast("long").alias("cart_adds"),
        F.sum(F.when(is_remove, 1).otherwise(0)).cast("long").alias("cart_removes"),
        F.sum(F.when(is_purchase, 1).otherwise(0)).cast("long").alias("purchases"),
        money(F.sum(F.when(is_cart, price).otherwise(0))).alias("cart_value"),
        money(F.sum(F.when(is_remove, price).otherwise(0))).alias("removed_value"),
        money(F.sum(F.when(is_purchase, price).otherwise(0))).alias("purchased_value"),
        F.collect_set(F.when(is_cart, F.col("product_id").cast("string"))).alias("_cart_products"),
    )
    abandoned = F.col("purchases") == 0
    left = F.greatest(F.col("cart_value") - F.col("removed_value") - F.col("purchased_value"), F.lit(0))
    return s.select(
        F.col("first_cart_ts").cast("date").alias("event_date"),
        "user_session", "user_id", "golden_id", "device_type", "first_cart_ts", "last_event_ts",
        "cart_adds", "cart_removes", F.size("_cart_products").cast("long").alias("distinct_cart_products"),
        "purchases", "cart_value", "removed_value", "purchased_value", abandoned.alias("is_abandoned"),
        money(F.when(abandoned, F.greatest(F.col("cart_value") - F.col("removed_value"), F.lit(0))).otherwise(left)).alias("abandoned_value"),
    )


def build_category_sales_summary(fact_sales: DataFrame) -> DataFrame:
    """``gold.category_sales_summary`` (seed 004): revenue, orders and units per day and category_l1."""
    sale = F.col("line_type") == "sale"
    agg = fact_sales.groupBy(F.col("order_date").alias("sale_date"), "category_l1").agg(
        money(F.sum("revenue_amount")).alias("total_revenue"),
        money(F.sum(F.when(sale, F.col("net_amount")).otherwise(0))).alias("gross_sales"),
        money(-F.sum(F.when(F.col("line_type") == "return", F.col("net_amount")).otherwise(0))).alias("returns_amount"),
        F.countDistinct(F.when(sale, F.concat_ws("|", "source_system", "order_id"))).cast("long").alias("total_orders"),
        F.sum(F.when(sale, F.col("quantity")).otherwise(0)).cast("long").alias("units_sold"),
        F.countDistinct(F.when(sale, F.col("golden_id"))).cast("long").alias("unique_customers"),
        F.sum(F.when(sale, F.col("net_amount"))).alias("_net"),
        F.sum(F.when(sale, F.col("quantity"))).alias("_qty"),
    )
    day = Window.partitionBy("sale_date")
    return agg.select(
        "sale_date", "category_l1", "total_revenue", "gross_sales", "returns_amount", "total_orders", "units_sold",
        "unique_customers",
        money(safe_div(F.col("_net"), F.col("_qty"))).alias("avg_unit_price"),
        F.round(100.0 * safe_div(F.col("total_revenue"), F.sum("total_revenue").over(day)), 4).alias("share_of_day_revenue"),
    )


def build_payment_method_summary(fact_sales: DataFrame) -> DataFrame:
    """``gold.payment_method_summary`` (seed 004): revenue, orders and average order value per day and payment method."""
    sale = F.col("line_type") == "sale"
    agg = fact_sales.withColumn("payment_method", F.coalesce(F.col("payment_method"), F.lit("unknown"))).groupBy(
        F.col("order_date").alias("sale_date"), "payment_method"
    ).agg(
        money(F.sum("revenue_amount")).alias("total_revenue"),
        money(F.sum(F.when(sale, F.col("net_amount")).otherwise(0))).alias("gross_sales"),
        F.countDistinct(F.when(sale, F.concat_ws("|", "source_system", "order_id"))).cast("long").alias("total_orders"),
        F.countDistinct(F.concat_ws("|", "source_system", "order_id")).cast("long").alias("transactions"),
    )
    day = Window.partitionBy("sale_date")
    return agg.select(
        "sale_date", "payment_method", "total_revenue", "gross_sales", "total_orders", "transactions",
        money(safe_div(F.col("gross_sales"), F.col("total_orders"))).alias("avg_order_value"),
        F.round(100.0 * safe_div(F.col("total_revenue"), F.sum("total_revenue").over(day)), 4).alias("share_of_revenue"),
    )


def build_device_usage_summary(events: DataFrame, *, orders: DataFrame, fact_sales: DataFrame) -> DataFrame:
    """``gold.device_usage_summary`` (seed 004): sessions, users and conversion per day and device, plus online orders."""
    _, _, is_purchase, _ = _event_flags()
    ev = events.withColumn("device_type", F.coalesce(F.lower("device_type"), F.lit("unknown"))).groupBy(
        F.col("event_date").cast("date").alias("event_date"), "device_type"
    ).agg(
        F.count(F.lit(1)).cast("long").alias("total_events"),
        F.countDistinct("user_session").cast("long").alias("sessions"),
        F.countDistinct("user_id").cast("long").alias("unique_users"),
        F.countDistinct(F.when(is_purchase, F.col("user_session"))).cast("long").alias("purchase_sessions"),
    )
    dev = orders.where(F.col("device_type").isNotNull()).select(
        "source_system", F.col("order_id").cast("string").alias("order_id"), F.lower("device_type").alias("device_type")
    ).dropDuplicates(["source_system", "order_id"])
    sale = F.col("line_type") == "sale"
    by_dev = fact_sales.join(dev, ["source_system", "order_id"]).groupBy(
        F.col("order_date").alias("event_date"), "device_type"
    ).agg(
        F.countDistinct(F.when(sale, F.col("order_id"))).cast("long").alias("online_orders"),
        money(F.sum("revenue_amount")).alias("online_revenue"),
    )
    df = ev.join(by_dev, ["event_date", "device_type"], "full")
    zero = F.lit(0).cast("long")
    return df.select(
        "event_date", "device_type",
        *[F.coalesce(F.col(c), zero).alias(c) for c in ("total_events", "sessions", "unique_users", "purchase_sessions", "online_orders")],
        F.coalesce("online_revenue", F.lit(0).cast("decimal(18,2)")).alias("online_revenue"),
        _pct(F.col("purchase_sessions"), F.col("sessions")).alias("session_conversion_rate"),
    )


def _signed_quantity():
    mt = F.lower(F.col("movement_type"))
    q = F.col("quantity").cast("long")
    return (
        F.when(mt == "inbound", F.abs(q))
        .when(mt == "outbound", -F.abs(q))
        .otherwise(q)  # adjustment: signed as recorded (a count correction can go either way)
    )


def build_inventory_movement_summary(movements: DataFrame) -> DataFrame:
    """``gold.inventory_movement_summary`` (seed 004): movements, units and cost per day, location, SKU and type."""
    return movements.groupBy(
        F.col("movement_date").cast("date").alias("movement_date"), "location_id", "sku",
        F.lower("movement_type").alias("movement_type"),
    ).agg(
        F.count(F.lit(1)).cast("long").alias("movements"),
        F.sum(F.abs(F.col("quantity").cast("long"))).cast("long").alias("units_moved"),
        F.sum(_signed_quantity()).cast("long").alias("net_units"),
        money(F.sum(F.abs(F.col("quantity")) * F.col("unit_cost"))).alias("total_cost"),
    )


def build_inventory_net_position(movements: DataFrame, *, as_of: dt.date) -> DataFrame:
    """``gold.inventory_net_position`` (seed 004): stock per location and SKU = inbound - outbound +/- adjustments."""
    mt = F.lower(F.col("movement_type"))
    q = F.abs(F.col("quantity").cast("long"))
    latest = Window.partitionBy("location_id", "sku").orderBy(F.col("movement_ts").desc(), F.col("movement_id").desc())
    last_cost = movements.where(F.col("unit_cost").isNotNull()).withColumn("_r", F.row_number().over(latest)).where(
        F.col("_r") == 1
    ).select("location_id", "sku", F.col("unit_cost").cast("decimal(18,2)").alias("latest_unit_cost"))
    agg = movements.groupBy("location_id", "sku").agg(
        F.sum(F.when(mt == "inbound", q).otherwise(0)).cast("long").alias("inbound_units"),
        F.sum(F.when(mt == "outbound", q).otherwise(0)).cast("long").alias("outbound_units"),
        F.sum(F.when(~mt.isin("inbound", "outbound"), F.col("quantity").cast("long")).otherwise(0)).cast("long").alias("adjustment_units"),
        F.sum(_signed_quantity()).cast("long").alias("net_units"),
        F.count(F.lit(1)).cast("long").alias("movements"),
        F.max(F.col("movement_date").cast("date")).alias("last_movement_date"),
    )
    return agg.join(last_cost, ["location_id", "sku"], "left").select(
        "*",
        money(F.col("net_units") * F.col("latest_unit_cost")).alias("stock_value"),
        (F.col("net_units") < 0).alias("is_negative"),
        F.lit(as_of.isoformat()).cast("date").alias("as_of_date"),
    )
