"""Loyalty score 0-100 and tier per golden customer, with every component stored so a score can be explained.

``loyalty_score = rfm_weight * rfm_component + value_weight * value_component + tenure_weight * tenure_component
+ channel_weight * channel_component`` (weights default 0.40 / 0.30 / 0.15 / 0.15 and sum to 1), each component 0-100:

- ``rfm_component = 100 * (rfm_score - 3) / 12`` (0 without a purchase).
- ``tenure_component = 100 * min(tenure_days, 730) / 730``: two years of relationship earn the full component;
  ``tenure_days = as_of - min(golden first_seen, first activity)``.
- ``channel_component = 100 * channels_bought_in / 2`` over {online (web, app), store}: buying in both earns 100.
- ``value_component``: the tie-aware percentile (0-100) of ``expected_future_value`` among customers with a positive
  one, 0 otherwise. ``expected_future_value`` (next 365 days) ``= max(avg_order_value, 0) * annual_frequency *
  retention`` with ``annual_frequency = total_purchases * 365 / max(days since first purchase + 1, 90)`` and
  ``retention = min(1, interval / max(recency_days, 1))``, ``interval`` being the customer's mean inter-purchase days
  or, with a single purchase day, the mean of that over all customers (30 when nobody has one).

Tier: platinum >= 80, gold >= 60, silver >= 35, bronze below.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.gold.common import money, midrank_percentile

DEFAULT_WEIGHTS: dict[str, float] = {"rfm": 0.40, "value": 0.30, "tenure": 0.15, "channel": 0.15}
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (("platinum", 80.0), ("gold", 60.0), ("silver", 35.0), ("bronze", 0.0))
TIERS: tuple[str, ...] = ("bronze", "silver", "gold", "platinum")


def score_loyalty(
    customer_metrics: DataFrame,
    *,
    golden_customers: DataFrame,
    as_of: dt.date,
    weights: dict[str, float] | None = None,
    tenure_full_days: int = 730,
    min_observation_days: int = 90,
    tiers: tuple[tuple[str, float], ...] = DEFAULT_TIERS,
) -> DataFrame:
    """``gold.loyalty_scores`` from ``gold.customer_metrics`` and the golden records (see the module docstring)."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    if abs(sum(w.values()) - 1.0) > 1e-9 or any(v < 0 for v in w.values()):
        from lakehouse.errors import LakehouseError

        raise LakehouseError(f"loyalty weights must be non-negative and sum to 1, got {w}")
    asof = F.lit(as_of.isoformat()).cast("date")
    seen = golden_customers.select(
        F.col("golden_id").cast("string").alias("golden_id"),
        F.col("first_seen").cast("date").alias("_first_seen"),
    ).dropDuplicates(["golden_id"])
    m = customer_metrics.join(seen, "golden_id", "left")

    buyer = F.col("total_purchases") > 0
    start = F.least(F.col("_first_seen"), F.col("first_activity_date"))
    tenure_days = F.greatest(F.coalesce(F.datediff(asof, start), F.lit(0)), F.lit(0))
    pop_interval = F.avg("mean_interpurchase_days").over(Window.partitionBy())
    interval = F.greatest(
        F.coalesce(F.col("mean_interpurchase_days"), pop_interval, F.lit(30.0)), F.lit(1.0)
    )
    retention = F.least(F.lit(1.0), interval / F.greatest(F.col("recency_days").cast("double"), F.lit(1.0)))
    observed = F.greatest(F.datediff(asof, F.col("first_purchase_date")) + 1, F.lit(min_observation_days))
    annual_frequency = F.col("total_purchases") * 365.0 / observed
    aov = F.greatest(F.col("avg_order_value").cast("double"), F.lit(0.0))
    efv = F.when(buyer, aov * annual_frequency * retention).otherwise(0.0)

    staged = m.select(
        "golden_id",
        "rfm_score",
        "channels_used",
        tenure_days.alias("tenure_days"),
        F.round(F.when(buyer, annual_frequency), 3).alias("annual_frequency"),
        F.round(F.when(buyer, retention), 4).alias("retention_probability"),
        F.round(efv, 2).alias("expected_future_value"),
    )
    value_pct = midrank_percentile(F.when(F.col("expected_future_value") > 0, F.col("expected_future_value")))
    comps = staged.select(
        "*",
        F.round(F.coalesce((F.col("rfm_score") - 3) * 100.0 / 12.0, F.lit(0.0)), 2).alias("rfm_component"),
        F.round(F.least(F.col("tenure_days"), F.lit(tenure_full_days)) * 100.0 / tenure_full_days, 2).alias("tenure_component"),
        F.round(F.coalesce(F.col("channels_used"), F.lit(0)) * 100.0 / 2.0, 2).alias("channel_component"),
        F.round(F.coalesce(value_pct, F.lit(0.0)), 2).alias("value_component"),
    )
    score = F.round(
        F.col("rfm_component") * w["rfm"]
        + F.col("value_component") * w["value"]
        + F.col("tenure_component") * w["tenure"]
        + F.col("channel_component") * w["channel"],
        1,
    )
    tier = None
    for name, floor in tiers:
        tier = F.when(F.col("loyalty_score") >= floor, F.lit(name)) if tier is None else tier.when(F.col("loyalty_score") >= floor, F.lit(name))
    tier = tier.otherwise(F.lit(tiers[-1][0]))
    return comps.withColumn("loyalty_score", score).select(
        "golden_id",
        "loyalty_score",
        tier.alias("loyalty_tier"),
        "rfm_component", F.lit(w["rfm"]).alias("rfm_weight"),
        "value_component", F.lit(w["value"]).alias("value_weight"),
        "tenure_component", F.lit(w["tenure"]).alias("tenure_weight"),
        "channel_component", F.lit(w["channel"]).alias("channel_weight"),
        money("expected_future_value").alias("expected_future_value"),
        "annual_frequency",
        "retention_probability",
        "tenure_days",
        "rfm_score",
        "channels_used",
        asof.alias("as_of_date"),
    )
