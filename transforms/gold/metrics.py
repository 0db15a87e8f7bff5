"""Customer metrics per golden customer: activity, orders, RFM, segment and churn risk (seed 003, made precise).

Definitions (``as_of`` is the publication day; only facts up to and including it are passed in):

- A *purchase* is an order (source_system, order_id) with at least one ``sale`` line; return and cancelled orders
  are not purchases. ``total_purchases`` counts purchases; ``total_revenue`` is net revenue
  (``fact_sales.revenue_amount``: sales minus returns, cancelled lines excluded) and can be negative when returns
  exceed sales; ``avg_order_value = total_revenue / total_purchases``.
- ``recency_days = as_of - last_purchase_date``.
- RFM: R from recency (fewer days is better), F from ``total_purchases``, M from ``total_revenue``, each a tie-aware
  quintile over customers with at least one purchase: ``score = 1 + floor(5 * (midrank - 0.5) / n)`` where
  ``midrank`` is the mean 1-based rank of the value's tie group and ``n`` the number of purchasing customers. Equal
  values always get the same score (no arbitrary split of ties by id); ten distinct values split 2-2-2-2-2; a lone
  customer scores 3. ``rfm_score = r + f + m`` (3..15); all four are null for customers without a purchase.
- Segment (seed 003, thresholds configurable): Champion >= 10 purchases, Loyal 5-9, Potential Loyalist 2-4,
  New Customer 1, Cart Abandoner = no purchase but at least one cart add, Visitor = anything else (views only, or a
  known customer with no recorded activity yet).
- Churn risk compares recency with the customer's own rhythm: ``mean_interpurchase_days = (last_purchase_date -
  first_purchase_date) / (purchase_days - 1)`` over distinct purchase days, ``churn_ratio = recency_days /
  max(mean_interpurchase_days, 1)``; Low when the ratio <= 1.5, Medium when <= 3, High above; N/A with fewer than two
  distinct purchase days (one purchase gives no rhythm).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.gold.common import money, midrank_quintile, safe_div

SEGMENTS: tuple[str, ...] = ("Champion", "Loyal", "Potential Loyalist", "New Customer", "Cart Abandoner", "Visitor")
CHURN_RISKS: tuple[str, ...] = ("High", "Medium", "Low", "N/A")
ONLINE_CHANNELS: tuple[str, ...] = ("web", "app")
DEFAULT_EVENT_CUSTOMER_SYSTEM: dict[str, str] = {"clickstream": "online"}


def attach_golden_id_to_events(
    events: DataFrame, *, xref: DataFrame, event_customer_system: dict[str, str] | None = None
) -> DataFrame:
    """Add ``golden_id`` to clickstream events: ``user_id`` is a customer id of the mapped system (clickstream -> online)."""
    mapping = DEFAULT_EVENT_CUSTOMER_SYSTEM if event_customer_system is None else event_customer_system
    sys_col = F.col("source_system")
    for ev_sys, cust_sys in mapping.items():
        sys_col = F.when(F.col("source_system") == ev_sys, F.lit(cust_sys)).otherwise(sys_col)
    xr = xref.select(
        F.col("source_system").alias("_x_sys"),
        F.col("source_customer_id").cast("string").alias("_x_id"),
        F.col("golden_id").cast("string").alias("golden_id"),
    ).dropDuplicates(["_x_sys", "_x_id"])
    base = events.drop("golden_id").withColumn("_cust_sys", sys_col)
    uid = F.col("user_id").cast("string")
    joined = base.join(xr, (base["_cust_sys"] == xr["_x_sys"]) & (uid == xr["_x_id"]), "left")
    return joined.drop("_cust_sys", "_x_sys", "_x_id")


def summarize_customer_orders(fact_sales: DataFrame) -> DataFrame:
    """Order-based measures per golden customer from ``gold.fact_sales`` (identified lines only)."""
    orders = (
        fact_sales.where(F.col("golden_id").isNotNull())
        .groupBy("golden_id", "source_system", "order_id")
        .agg(
            F.min("order_date").alias("order_date"),
            F.max(F.when(F.col("line_type") == "sale", 1).otherwise(0)).alias("is_purchase"),
            F.max(F.when(F.col("line_type") == "return", 1).otherwise(0)).alias("is_return"),
            F.max("channel").alias("channel"),  # one channel per order; max() is a cheap single-pass pick
            F.sum("revenue_amount").alias("revenue"),
            F.sum(F.when(F.col("line_type") == "sale", F.col("quantity")).otherwise(0)).alias("items"),
        )
    )
    online = F.col("channel").isin(*ONLINE_CHANNELS)
    purchase = F.col("is_purchase") == 1
    return orders.groupBy("golden_id").agg(
        F.sum(F.col("is_purchase")).cast("long").alias("total_purchases"),
        money(F.sum("revenue")).alias("total_revenue"),
        F.sum("items").cast("long").alias("total_items"),
        F.sum(F.col("is_return")).cast("long").alias("return_orders"),
        money(-F.sum(F.when(F.col("is_return") == 1, F.col("revenue")).otherwise(0))).alias("returned_amount"),
        F.min(F.when(purchase, F.col("order_date"))).alias("first_purchase_date"),
        F.max(F.when(purchase, F.col("order_date"))).alias("last_purchase_date"),
        F.countDistinct(F.when(purchase, F.col("order_date"))).cast("long").alias("purchase_days"),
        F.min("order_date").alias("first_order_date"),
        F.max("order_date").alias("last_order_date"),
        F.sum(F.when(purchase & online, 1).otherwise(0)).cast("long").alias("online_orders"),
        F.sum(F.when(purchase & (F.col("channel") == "store"), 1).otherwise(0)).cast("long").alias("store_orders"),
        money(F.sum(F.when(online, F.col("revenue")).otherwise(0))).alias("online_revenue"),
        money(F.sum(F.when(F.col("channel") == "store", F.col("revenue")).otherwise(0))).alias("store_revenue"),
    )


def summarize_customer_events(events_with_golden: DataFrame) -> DataFrame:
    """Clickstream measures per golden customer (seed 003: sessions, events, views, cart adds, products viewed)."""
    et = F.col("event_type")
    return (
        events_with_golden.where(F.col("golden_id").isNotNull())
        .groupBy("golden_id")
        .agg(
            F.countDistinct("user_session").cast("long").alias("total_sessions"),
            F.count(F.lit(1)).cast("long").alias("total_events"),
            F.sum(F.when(et == "view", 1).otherwise(0)).cast("long").alias("total_views"),
            F.sum(F.when(et == "cart", 1).otherwise(0)).cast("long").alias("total_cart_adds"),
            F.sum(F.when(et == "purchase", 1).otherwise(0)).cast("long").alias("total_purchase_events"),
            F.countDistinct(F.when(et == "view", F.col("product_id"))).cast("long").alias("unique_products_viewed"),
            F.min(F.col("event_time").cast("date")).alias("first_event_date"),
            F.max(F.col("event_time").cast("date")).alias("last_event_date"),
        )
    )


def assign_segment(
    *, champion_min: int = 10, loyal_min: int = 5, potential_min: int = 2
) -> F.Column:
    """The seed 003 segment from ``total_purchases`` and ``total_cart_adds``."""
    p, carts = F.col("total_purchases"), F.col("total_cart_adds")
    return (
        F.when(p >= champion_min, "Champion")
        .when(p >= loyal_min, "Loyal")
        .when(p >= potential_min, "Potential Loyalist")
        .when(p >= 1, "New Customer")
        .when(carts > 0, "Cart Abandoner")
        .otherwise("Visitor")
    )


def score_rfm(df: DataFrame) -> DataFrame:
    """Add r_score, f_score, m_score (tie-aware quintiles over purchasing customers) and rfm_score (3..15)."""
    buyer = F.col("total_purchases") > 0
    out = df.select(
        "*",
        midrank_quintile(F.when(buyer, F.col("recency_days")), higher_is_better=False).alias("r_score"),
        midrank_quintile(F.when(buyer, F.col("total_purchases"))).alias("f_score"),
        midrank_quintile(F.when(buyer, F.col("total_revenue"))).alias("m_score"),
    )
    return out.withColumn("rfm_score", F.col("r_score") + F.col("f_score") + F.col("m_score"))


def assess_churn(*, medium_ratio: float = 1.5, high_ratio: float = 3.0) -> tuple[F.Column, F.Column, F.Column]:
    """(mean_interpurchase_days, churn_ratio, churn_risk) columns from purchase dates and recency."""
    enough = F.col("purchase_days") >= 2
    mean_interval = F.when(
        enough,
        F.datediff("last_purchase_date", "first_purchase_date") / (F.col("purchase_days") - 1),
    ).cast("double")
    ratio = F.when(enough, F.col("recency_days") / F.greatest(mean_interval, F.lit(1.0)))
    risk = (
        F.when(~enough | F.col("purchase_days").isNull(), "N/A")
        .when(ratio > high_ratio, "High")
        .when(ratio > medium_ratio, "Medium")
        .otherwise("Low")
    )
    return F.round(mean_interval, 2), F.round(ratio, 3), risk


def build_customer_metrics(
    golden_customers: DataFrame,
    *,
    fact_sales: DataFrame,
    events_with_golden: DataFrame,
    as_of: dt.date,
    champion_min: int = 10,
    loyal_min: int = 5,
    potential_min: int = 2,
    churn_medium_ratio: float = 1.5,
    churn_high_ratio: float = 3.0,
) -> DataFrame:
    """``gold.customer_metrics``: one row per golden customer (see the module docstring for every definition)."""
    asof = F.lit(as_of.isoformat()).cast("date")
    orders = summarize_customer_orders(fact_sales)
    events = summarize_customer_events(events_with_golden)
    base = golden_customers.select(F.col("golden_id").cast("string").alias("golden_id")).distinct()
    df = base.join(orders, "golden_id", "left").join(events, "golden_id", "left")
    zero_long = ["total_sessions", "total_events", "total_views", "total_cart_adds", "total_purchase_events",
                 "unique_products_viewed", "total_purchases", "total_items", "return_orders", "purchase_days",
                 "online_orders", "store_orders"]
    zero_money = ["total_revenue", "returned_amount", "online_revenue", "store_revenue"]
    df = df.select(
        "golden_id",
        *[F.coalesce(F.col(c), F.lit(0).cast("long")).alias(c) for c in zero_long],
        *[F.coalesce(F.col(c), F.lit(0).cast("decimal(18,2)")).alias(c) for c in zero_money],
        "first_purchase_date", "last_purchase_date", "first_order_date", "last_order_date",
        "first_event_date", "last_event_date",
    )
    df = df.select(
        "*",
        money(safe_div(F.col("total_revenue"), F.col("total_purchases"))).alias("avg_order_value"),
        F.least("first_order_date", "first_event_date").alias("first_activity_date"),
        F.greatest("last_order_date", "last_event_date").alias("last_activity_date"),
        F.datediff(asof, F.col("last_purchase_date")).alias("recency_days"),
    ).withColumn("days_since_last_activity", F.datediff(asof, F.col("last_activity_date")))
    df = score_rfm(df)
    mean_interval, ratio, risk = assess_churn(medium_ratio=churn_medium_ratio, high_ratio=churn_high_ratio)
    channels_used = (F.col("online_orders") > 0).cast("int") + (F.col("store_orders") > 0).cast("int")
    return df.select(
        "golden_id",
        "total_sessions", "total_events", "total_views", "total_cart_adds", "total_purchase_events",
        "unique_products_viewed", "total_purchases", "total_items", "total_revenue", "avg_order_value",
        "return_orders", "returned_amount",
        "first_activity_date", "last_activity_date", "days_since_last_activity",
        "first_purchase_date", "last_purchase_date", "purchase_days", "recency_days",
        "r_score", "f_score", "m_score", "rfm_score",
        assign_segment(champion_min=champion_min, loyal_min=loyal_min, potential_min=potential_min).alias("customer_segment"),
        mean_interval.alias("mean_interpurchase_days"),
        ratio.alias("churn_ratio"),
        risk.alias("churn_risk"),
        "online_orders", "store_orders", "online_revenue", "store_revenue",
        channels_used.cast("int").alias("channels_used"),
        asof.alias("as_of_date"),
    )
