"""Voucher recommendations: the top N products per golden customer, each with a margin-safe voucher and a reason.

Built from DataFrame operations only (no MLlib). Four candidate signals per (customer, product), each scaled to
0..1 within the customer (divided by the customer's largest value of that signal):

- ``buy_again``: the customer's own purchases of the product, each order weighted by recency,
  ``sum(exp(-ln2 * age_days / half_life_days))``; products the customer fully returned are excluded.
- ``frequently_bought_together``: ``sum over the customer's top products a of confidence(a -> b)`` where
  ``confidence = orders with a and b / orders with a`` over all baskets, keeping each product's ``neighbours`` best.
- ``category_affinity``: the customer's share of spend in the product's category_l1 times the product's popularity
  within that category (distinct recent buyers / the category's best), for the customer's top categories.
- ``popular_in_segment``: distinct recent buyers of the product among customers of the same segment / the segment's
  best (all customers when the segment has no buyers, e.g. Visitors).

``score = sum(weight_s * signal_s)``; ``reason`` is the signal with the largest weighted contribution. The weights
are the blend measured best by ``bench/vouchers.py`` (holdout of each customer's last order; see its JSON).

Voucher value. ``discount_sensitivity`` (0..1) ``= 0.6 * share of the customer's sale lines that were discounted +
0.4 * min(1, mean discount depth / 0.30)`` (the population mean for customers without purchases). The offered
percentage ``= min_pct + (max_pct - min_pct) * sensitivity`` (5 % to 25 % by default) capped at
``max_margin_share`` (default half) of the product's margin percentage, floored to a whole percent; products whose
cap is below 1 % (no margin room, or unknown cost/price) are never offered. ``voucher_value = unit_price *
voucher_pct / 100``; the voucher is valid from the day after ``as_of`` for ``validity_days``.

``stage`` (optional, ``stage(frame, name) -> frame``) materializes the two frames the plan reads twice, the
buy-again scores and the recent buyers, so the engine computes each once (1M order lines: about 3 s less engine CPU
for this table). The result is the same with or without it.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.gold.common import money

Stage = Callable[[DataFrame, str], DataFrame]

SIGNALS: tuple[str, ...] = ("buy_again", "frequently_bought_together", "category_affinity", "popular_in_segment")
# The blend bench/vouchers.py measured best (bench/results/vouchers.json, "chosen_blend": highest mean recall@10
# relative to each data set's best blend, over generated data and the real UCI Online Retail week).
DEFAULT_WEIGHTS: dict[str, float] = {
    "buy_again": 0.4,
    "frequently_bought_together": 0.2,
    "category_affinity": 0.1,
    "popular_in_segment": 0.3,
}


def sale_lines(fact_sales: DataFrame) -> DataFrame:
    """Identified sale lines (positive quantity) of ``gold.fact_sales``: the purchases recommendations learn from."""
    return fact_sales.where(
        (F.col("line_type") == "sale") & F.col("golden_id").isNotNull() & F.col("sku").isNotNull() & (F.col("quantity") > 0)
    )


def score_buy_again(fact_sales: DataFrame, *, as_of: dt.date, half_life_days: float = 60.0) -> DataFrame:
    """(golden_id, sku, purchase_orders, last_purchase_date, raw): recency-weighted repeat purchases, returns netted."""
    asof = F.lit(as_of.isoformat()).cast("date")
    per_order = (
        sale_lines(fact_sales)
        .groupBy("golden_id", "sku", "source_system", "order_id")
        .agg(F.min("order_date").alias("order_date"), F.sum("quantity").alias("qty"))
    )
    decay = F.exp(-math.log(2) * F.datediff(asof, F.col("order_date")) / float(half_life_days))
    bought = per_order.groupBy("golden_id", "sku").agg(
        F.count(F.lit(1)).alias("purchase_orders"),
        F.sum("qty").alias("bought_qty"),
        F.max("order_date").alias("last_purchase_date"),
        # Rounded: a floating-point sum depends on the order the engine adds the orders in, so two products bought
        # on the same days could differ in the last bit and the seed cut of frequently_bought_together (which breaks
        # ties by sku) would depend on the engine's plan rather than on the data.
        F.round(F.sum(decay), 9).alias("raw"),
    )
    returned = (
        fact_sales.where((F.col("line_type") == "return") & F.col("golden_id").isNotNull())
        .groupBy("golden_id", "sku")
        .agg((-F.sum("quantity")).alias("returned_qty"))
    )
    return (
        bought.join(returned, ["golden_id", "sku"], "left")
        .where(F.coalesce(F.col("returned_qty"), F.lit(0)) < F.col("bought_qty"))
        .select("golden_id", "sku", "purchase_orders", "last_purchase_date", "raw")
    )


def co_purchase_neighbours(fact_sales: DataFrame, *, neighbours: int = 10, min_support: int = 2) -> DataFrame:
    """(sku, other_sku, support, confidence): products bought in the same order, the ``neighbours`` best per product."""
    baskets = (
        fact_sales.where((F.col("line_type") == "sale") & F.col("sku").isNotNull() & (F.col("quantity") > 0))
        .select("source_system", "order_id", "sku")
        .distinct()
    )
    item_orders = baskets.groupBy("sku").agg(F.count(F.lit(1)).alias("item_orders"))
    a = baskets.alias("a")
    b = baskets.alias("b")
    pairs = (
        a.join(b, (F.col("a.source_system") == F.col("b.source_system")) & (F.col("a.order_id") == F.col("b.order_id"))
               & (F.col("a.sku") != F.col("b.sku")))
        .groupBy(F.col("a.sku").alias("sku"), F.col("b.sku").alias("other_sku"))
        .agg(F.count(F.lit(1)).alias("support"))
        .where(F.col("support") >= min_support)
    )
    scored = pairs.join(item_orders, "sku").select(
        "sku", "other_sku", "support", (F.col("support") / F.col("item_orders")).alias("confidence")
    )
    best = Window.partitionBy("sku").orderBy(F.col("confidence").desc(), F.col("support").desc(), F.col("other_sku"))
    return scored.withColumn("_r", F.row_number().over(best)).where(F.col("_r") <= neighbours).drop("_r")


def recent_popularity(fact_sales: DataFrame, *, as_of: dt.date, days: int = 90) -> DataFrame:
    """(golden_id, sku) pairs bought in the last ``days`` days up to ``as_of``: the basis of popularity counts."""
    asof = F.lit(as_of.isoformat()).cast("date")
    return (
        sale_lines(fact_sales)
        .where(F.col("order_date") > F.date_sub(asof, days))
        .select("golden_id", "sku")
        .distinct()
    )


def estimate_discount_sensitivity(fact_sales: DataFrame, customers: DataFrame, *, reference_depth: float = 0.30) -> DataFrame:
    """(golden_id, discounted_share, discount_depth, discount_sensitivity 0..1) for every customer of ``customers``."""
    lines = sale_lines(fact_sales).select(
        "golden_id",
        (F.col("discount_amount") > 0).alias("_disc"),
        F.when(F.col("gross_amount") > 0, F.col("discount_amount") / F.col("gross_amount")).cast("double").alias("_depth"),
    )
    per = lines.groupBy("golden_id").agg(
        F.avg(F.col("_disc").cast("double")).alias("discounted_share"),
        F.avg(F.when(F.col("_disc"), F.col("_depth"))).alias("discount_depth"),
    )
    sens = 0.6 * F.col("discounted_share") + 0.4 * F.least(F.lit(1.0), F.coalesce(F.col("discount_depth"), F.lit(0.0)) / reference_depth)
    scored = per.select("golden_id", "discounted_share", "discount_depth", sens.alias("_s"))
    out = customers.select("golden_id").distinct().join(scored, "golden_id", "left")
    pop = F.avg("_s").over(Window.partitionBy())
    return out.select(
        "golden_id",
        F.round("discounted_share", 4).alias("discounted_share"),
        F.round("discount_depth", 4).alias("discount_depth"),
        F.round(F.least(F.lit(1.0), F.greatest(F.lit(0.0), F.coalesce(F.col("_s"), pop, F.lit(0.5)))), 4).alias("discount_sensitivity"),
    )


def _candidates(
    fact_sales: DataFrame,
    *,
    dim_product: DataFrame,
    customer_segments: DataFrame,
    as_of: dt.date,
    weights: dict[str, float],
    half_life_days: float,
    neighbours: int,
    seed_items: int,
    top_categories: int,
    items_per_category: int,
    popular_items: int,
    popularity_days: int,
    stage: Stage | None = None,
) -> DataFrame:
    """Long candidate list: (golden_id, sku, signal, raw)."""
    parts: list[DataFrame] = []
    ba = score_buy_again(fact_sales, as_of=as_of, half_life_days=half_life_days)
    if stage is not None and weights.get("buy_again", 0) > 0 and weights.get("frequently_bought_together", 0) > 0:
        ba = stage(ba, "voucher_buy_again")  # two readers: the signal and the bought-together seeds
    if weights.get("buy_again", 0) > 0:
        parts.append(ba.select("golden_id", "sku", F.lit("buy_again").alias("signal"), "raw"))
    if weights.get("frequently_bought_together", 0) > 0:
        seeds_w = Window.partitionBy("golden_id").orderBy(F.col("raw").desc(), F.col("sku"))
        seeds = ba.withColumn("_r", F.row_number().over(seeds_w)).where(F.col("_r") <= seed_items).select("golden_id", "sku")
        nb = co_purchase_neighbours(fact_sales, neighbours=neighbours)
        fbt = (
            seeds.join(nb, "sku")
            .groupBy("golden_id", F.col("other_sku").alias("sku"))
            .agg(F.sum("confidence").alias("raw"))
        )
        parts.append(fbt.select("golden_id", "sku", F.lit("frequently_bought_together").alias("signal"), "raw"))
    recent = None
    if weights.get("category_affinity", 0) > 0 or weights.get("popular_in_segment", 0) > 0:
        recent = recent_popularity(fact_sales, as_of=as_of, days=popularity_days)
        if stage is not None and weights.get("category_affinity", 0) > 0 and weights.get("popular_in_segment", 0) > 0:
            recent = stage(recent, "voucher_recent_buyers")  # two readers: both popularity signals
    prod = dim_product.where(~F.col("is_inferred")).select("sku", "category_l1")
    if weights.get("category_affinity", 0) > 0:
        spend = (
            sale_lines(fact_sales).join(prod, "sku")
            .groupBy("golden_id", prod["category_l1"])
            .agg(F.sum(F.greatest(F.col("net_amount"), F.lit(0))).alias("spend"))
        )
        share_w = Window.partitionBy("golden_id")
        cat_rank = Window.partitionBy("golden_id").orderBy(F.col("spend").desc(), F.col("category_l1"))
        shares = (
            spend.withColumn("share", F.col("spend") / F.sum("spend").over(share_w))
            .withColumn("_r", F.row_number().over(cat_rank))
            .where((F.col("_r") <= top_categories) & (F.col("share") > 0))
            .select("golden_id", "category_l1", "share")
        )
        pop = recent.groupBy("sku").agg(F.count(F.lit(1)).alias("buyers")).join(prod, "sku")
        in_cat = Window.partitionBy("category_l1").orderBy(F.col("buyers").desc(), F.col("sku"))
        top_in_cat = (
            pop.withColumn("_r", F.row_number().over(in_cat))
            .where(F.col("_r") <= items_per_category)
            .withColumn("pop", F.col("buyers") / F.max("buyers").over(Window.partitionBy("category_l1")))
            .select("category_l1", "sku", "pop")
        )
        cat = shares.join(top_in_cat, "category_l1").select(
            "golden_id", "sku", F.lit("category_affinity").alias("signal"), (F.col("share") * F.col("pop")).alias("raw")
        )
        parts.append(cat)
    if weights.get("popular_in_segment", 0) > 0:
        seg = customer_segments.select("golden_id", "customer_segment")
        seg_pop = recent.join(seg, "golden_id").groupBy("customer_segment", "sku").agg(F.count(F.lit(1)).alias("buyers"))
        glob = recent.groupBy("sku").agg(F.count(F.lit(1)).alias("buyers")).select(
            F.lit("__all__").alias("customer_segment"), "sku", "buyers"
        )
        both = seg_pop.unionByName(glob)
        in_seg = Window.partitionBy("customer_segment").orderBy(F.col("buyers").desc(), F.col("sku"))
        top_seg = (
            both.withColumn("_r", F.row_number().over(in_seg))
            .where(F.col("_r") <= popular_items)
            .withColumn("raw", F.col("buyers") / F.max("buyers").over(Window.partitionBy("customer_segment")))
        )
        with_buyers = top_seg.select("customer_segment").distinct()
        seg_key = seg.join(with_buyers.withColumn("_has", F.lit(True)), "customer_segment", "left").select(
            "golden_id", F.when(F.col("_has"), F.col("customer_segment")).otherwise(F.lit("__all__")).alias("customer_segment")
        )
        popular = seg_key.join(top_seg, "customer_segment").select(
            "golden_id", "sku", F.lit("popular_in_segment").alias("signal"), "raw"
        )
        parts.append(popular)
    if not parts:
        from lakehouse.errors import LakehouseError

        raise LakehouseError(f"voucher weights select no signal: give a positive weight to one of {SIGNALS}")
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def recommend_vouchers(
    fact_sales: DataFrame,
    *,
    dim_product: DataFrame,
    customer_segments: DataFrame,
    as_of: dt.date,
    top_n: int = 10,
    weights: dict[str, float] | None = None,
    half_life_days: float = 60.0,
    neighbours: int = 10,
    seed_items: int = 20,
    top_categories: int = 3,
    items_per_category: int = 10,
    popular_items: int = 20,
    popularity_days: int = 90,
    min_pct: float = 5.0,
    max_pct: float = 25.0,
    max_margin_share: float = 0.5,
    validity_days: int = 14,
    stage: Stage | None = None,
) -> DataFrame:
    """``gold.voucher_recommendations``: top ``top_n`` products per customer of ``customer_segments`` (see module doc)."""
    w = {s: float((DEFAULT_WEIGHTS if weights is None else weights).get(s, 0.0)) for s in SIGNALS}
    asof = F.lit(as_of.isoformat()).cast("date")
    long = _candidates(
        fact_sales, dim_product=dim_product, customer_segments=customer_segments, as_of=as_of, weights=w,
        half_life_days=half_life_days, neighbours=neighbours, seed_items=seed_items, top_categories=top_categories,
        items_per_category=items_per_category, popular_items=popular_items, popularity_days=popularity_days,
        stage=stage,
    )
    wide = long.groupBy("golden_id", "sku").agg(
        *[F.sum(F.when(F.col("signal") == s, F.col("raw"))).alias(s) for s in SIGNALS]
    )
    per_customer = Window.partitionBy("golden_id")
    normed = wide.select(
        "golden_id", "sku",
        *[F.coalesce(F.col(s) / F.max(s).over(per_customer), F.lit(0.0)).alias(s) for s in SIGNALS],
    )
    contrib = [F.col(s) * F.lit(w[s]) for s in SIGNALS]
    score = contrib[0]
    for c in contrib[1:]:
        score = score + c
    best = F.greatest(*contrib)
    reason = None
    for s, c in zip(SIGNALS, contrib):
        reason = F.when(c == best, F.lit(s)) if reason is None else reason.when(c == best, F.lit(s))
    scored = normed.select("golden_id", "sku", *SIGNALS, F.round(score, 6).alias("score"), reason.alias("reason"))

    sens = estimate_discount_sensitivity(fact_sales, customer_segments)
    prod = dim_product.where(~F.col("is_inferred") & (F.col("unit_price") > 0) & F.col("unit_cost").isNotNull()).select(
        "sku", "product_name", "category_l1", "unit_price", "unit_cost",
        (100.0 * (F.col("unit_price") - F.col("unit_cost")) / F.col("unit_price")).cast("double").alias("_margin_pct"),
    )
    raw_pct = F.lit(min_pct) + F.lit(max_pct - min_pct) * F.col("discount_sensitivity")
    cap = F.col("_margin_pct") * max_margin_share
    pct = F.floor(F.least(raw_pct, cap)).cast("double")
    offered = (
        scored.join(prod, "sku")
        .join(sens, "golden_id", "left")
        .select("*", cap.alias("max_voucher_pct"), pct.alias("voucher_pct"))
        .where(F.col("voucher_pct") >= 1.0)
        .where(F.col("score") > 0)
    )
    rank_w = Window.partitionBy("golden_id").orderBy(F.col("score").desc(), F.col("sku"))
    top = offered.withColumn("rank", F.row_number().over(rank_w)).where(F.col("rank") <= top_n)
    return top.select(
        "golden_id",
        F.col("rank").cast("int").alias("rank"),
        "sku",
        "product_name",
        "category_l1",
        "reason",
        "score",
        "voucher_pct",
        money(F.col("unit_price") * F.col("voucher_pct") / 100.0).alias("voucher_value"),
        money("unit_price").alias("unit_price"),
        F.round("max_voucher_pct", 2).alias("max_voucher_pct"),
        F.coalesce(F.col("discount_sensitivity"), F.lit(0.5)).alias("discount_sensitivity"),
        F.round("buy_again", 4).alias("buy_again_signal"),
        F.round("frequently_bought_together", 4).alias("bought_together_signal"),
        F.round("category_affinity", 4).alias("category_affinity_signal"),
        F.round("popular_in_segment", 4).alias("popular_in_segment_signal"),
        F.date_add(asof, 1).alias("valid_from"),
        F.date_add(asof, validity_days).alias("valid_to"),
        asof.alias("as_of_date"),
    )
