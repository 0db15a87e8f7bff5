"""Subscription candidates: (golden customer, product) pairs bought at a regular replenishment interval.

Per pair, the distinct purchase days of sale lines (two orders on one day are one replenishment) give the intervals
between consecutive purchases. ``mean_interval_days`` is their mean, ``interval_cv`` their coefficient of variation
(sample standard deviation / mean: 0 is perfectly regular). A pair is a candidate when it has at least
``min_purchases`` purchase days (default 3, i.e. two intervals), ``mean_interval_days >= min_interval_days`` (default
5: same-week top-ups are not replenishment) and ``interval_cv <= max_cv`` (default 0.5).
``next_expected_date = last_purchase_date + round(mean_interval_days)``. ``regularity``: very_regular (cv <= 0.2),
regular (<= 0.35), irregular otherwise. ``status`` relative to ``as_of``: upcoming (next date more than 3 days
away), due (within 3 days either side), overdue (later, up to two intervals past), lapsed (beyond that).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.gold.vouchers import sale_lines


def find_subscription_candidates(
    fact_sales: DataFrame,
    *,
    dim_product: DataFrame,
    as_of: dt.date,
    min_purchases: int = 3,
    min_interval_days: float = 5.0,
    max_cv: float = 0.5,
    due_window_days: int = 3,
) -> DataFrame:
    """``gold.subscription_candidates`` from ``gold.fact_sales`` (see the module docstring for the rules)."""
    asof = F.lit(as_of.isoformat()).cast("date")
    days = (
        sale_lines(fact_sales)
        .groupBy("golden_id", "sku", "order_date")
        .agg(F.sum("quantity").alias("qty"))
    )
    # The mean interval of a pair is (last day - first day) / (days - 1): the intervals between consecutive days add
    # up to that span. So the pairs that can pass the count and mean-interval rules are known from an aggregate, and
    # only their days go through the window (a sort of every customer's purchase days costs more than both).
    span = days.groupBy("golden_id", "sku").agg(
        F.count(F.lit(1)).alias("_n"), F.datediff(F.max("order_date"), F.min("order_date")).alias("_span"))
    eligible = span.where(  # a superset (a hair of slack for rounding): the rules themselves are applied below
        (F.col("_n") >= max(min_purchases, 2)) & (F.col("_span") >= (F.col("_n") - 1) * float(min_interval_days) - 1e-6)
    ).select("golden_id", "sku")
    by_pair = Window.partitionBy("golden_id", "sku").orderBy("order_date")
    intervals = days.join(eligible, ["golden_id", "sku"], "left_semi").withColumn(
        "interval", F.datediff("order_date", F.lag("order_date").over(by_pair)))
    stats = intervals.groupBy("golden_id", "sku").agg(
        F.count(F.lit(1)).alias("purchase_count"),
        F.avg("interval").alias("mean_interval_days"),
        F.stddev_samp("interval").alias("_sd"),
        F.min("order_date").alias("first_purchase_date"),
        F.max("order_date").alias("last_purchase_date"),
        F.avg("qty").alias("avg_quantity"),
    )
    cv = F.col("_sd") / F.col("mean_interval_days")
    cands = stats.where(
        (F.col("purchase_count") >= min_purchases) & (F.col("mean_interval_days") >= min_interval_days)
    ).withColumn("interval_cv", F.round(F.coalesce(cv, F.lit(0.0)), 4)).where(F.col("interval_cv") <= max_cv)
    next_date = F.date_add(F.col("last_purchase_date"), F.round(F.col("mean_interval_days")).cast("int"))
    out = cands.withColumn("next_expected_date", next_date).withColumn(
        "days_until_next", F.datediff(F.col("next_expected_date"), asof)
    )
    late = -F.col("days_until_next")
    status = (
        F.when(F.col("days_until_next") > due_window_days, "upcoming")
        .when(F.col("days_until_next") >= -due_window_days, "due")
        .when(late <= 2 * F.col("mean_interval_days"), "overdue")
        .otherwise("lapsed")
    )
    regularity = F.when(F.col("interval_cv") <= 0.2, "very_regular").when(F.col("interval_cv") <= 0.35, "regular").otherwise("irregular")
    prod = dim_product.select("sku", "product_name", "category_l1")
    return out.join(prod, "sku", "left").select(
        "golden_id",
        "sku",
        F.coalesce("product_name", F.lit("unknown")).alias("product_name"),
        F.coalesce("category_l1", F.lit("unknown")).alias("category_l1"),
        F.col("purchase_count").cast("long").alias("purchase_count"),
        F.round("mean_interval_days", 2).alias("mean_interval_days"),
        "interval_cv",
        regularity.alias("regularity"),
        F.round("avg_quantity", 2).alias("avg_quantity"),
        "first_purchase_date",
        "last_purchase_date",
        "next_expected_date",
        "days_until_next",
        status.alias("status"),
        asof.alias("as_of_date"),
    )
