"""The unified sales fact: every order line of every source at line grain, keyed to the golden customer.

Sign convention (one rule for both systems):

- ``quantity``, ``gross_amount``, ``discount_amount``, ``net_amount`` carry the sign of the movement of goods: a
  sale line is positive, a return line negative (the refund), in its own row with ``line_type = 'return'``.
  ``gross_amount = quantity * unit_price``; ``discount_amount`` has the sign of the quantity (a returned discounted
  item refunds the discounted price); ``net_amount`` is silver's ``line_total`` as given (normally
  ``gross_amount - discount_amount``; the gold gate warns where a source disagreed), so fact totals reconcile with
  silver exactly. ``cost_amount = quantity * unit_cost`` of the conformed product (signed like the quantity).
- A cancelled line keeps its original positive amounts (``line_type = 'cancelled'``) so that it still reconciles
  with silver, but ``revenue_amount`` (the column every revenue measure sums) is 0 for it. For sales and returns
  ``revenue_amount = net_amount``: net revenue = sales + (negative) returns.
- ``golden_id`` comes from ``gold.customer_xref`` on (source_system, source_customer_id). A line with no customer
  (an anonymous till sale) has ``golden_id`` null and ``customer_status = 'anonymous'``; a customer id the identity
  step has not resolved (yet) gives ``golden_id`` null and ``customer_status = 'unresolved'``.
- ``location_id`` is the store for POS lines and null for online lines.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.gold.common import date_key, money

FACT_SALES_COLUMNS: tuple[str, ...] = (
    "sales_key", "source_system", "order_id", "line_number", "golden_id", "customer_status", "source_customer_id",
    "sku", "location_id", "channel", "date_key", "order_date", "order_ts", "quantity", "unit_price",
    "gross_amount", "discount_amount", "net_amount", "revenue_amount", "cost_amount", "line_type",
    "payment_method", "currency", "category_l1", "brand",
)


def _sign(col):
    return F.when(col < 0, F.lit(-1)).otherwise(F.lit(1))


def build_fact_sales(order_lines: DataFrame, *, xref: DataFrame, dim_product: DataFrame) -> DataFrame:
    """Silver order lines -> ``gold.fact_sales`` rows (see the module docstring for keys and signs)."""
    xr = xref.select(
        F.col("source_system").alias("_x_sys"),
        F.col("source_customer_id").cast("string").alias("_x_id"),
        F.col("golden_id").cast("string").alias("golden_id"),
    ).dropDuplicates(["_x_sys", "_x_id"])
    prod = dim_product.select(
        F.col("sku").alias("_p_sku"), F.col("category_l1"), F.col("brand"), F.col("unit_cost").alias("_p_cost")
    )
    cust = F.trim(F.col("source_customer_id").cast("string"))
    lines = order_lines.select(
        F.col("source_system"),
        F.col("order_id").cast("string").alias("order_id"),
        F.col("line_number").cast("int").alias("line_number"),
        F.when(cust != "", cust).alias("source_customer_id"),
        F.col("sku").cast("string").alias("sku"),
        F.col("store_id").cast("string").alias("location_id"),
        F.lower(F.col("channel")).alias("channel"),
        F.col("order_date").cast("date").alias("order_date"),
        F.col("order_ts").cast("timestamp").alias("order_ts"),
        F.col("quantity").cast("int").alias("quantity"),
        F.col("unit_price").cast("decimal(18,2)").alias("unit_price"),
        F.col("discount_amount").cast("decimal(18,2)").alias("_discount"),
        F.col("line_total").cast("decimal(18,2)").alias("_total"),
        F.lower(F.col("line_type")).alias("line_type"),
        F.lower(F.col("payment_method")).alias("payment_method"),
        F.col("currency"),
    )
    joined = lines.join(
        xr, (lines["source_system"] == xr["_x_sys"]) & (lines["source_customer_id"] == xr["_x_id"]), "left"
    ).join(prod, lines["sku"] == prod["_p_sku"], "left")
    sign = _sign(F.col("quantity"))
    net = F.col("_total")  # silver line_total as is: fact totals reconcile with silver exactly
    return joined.select(
        F.concat_ws("|", "source_system", "order_id", F.col("line_number").cast("string")).alias("sales_key"),
        "source_system",
        "order_id",
        "line_number",
        "golden_id",
        F.when(F.col("source_customer_id").isNull(), "anonymous")
        .when(F.col("golden_id").isNull(), "unresolved")
        .otherwise("identified")
        .alias("customer_status"),
        "source_customer_id",
        "sku",
        "location_id",
        "channel",
        date_key("order_date").alias("date_key"),
        "order_date",
        "order_ts",
        "quantity",
        "unit_price",
        money(F.col("quantity") * F.col("unit_price")).alias("gross_amount"),
        money(F.abs(F.coalesce(F.col("_discount"), F.lit(0))) * sign).alias("discount_amount"),
        money(net).alias("net_amount"),
        money(F.when(F.col("line_type") == "cancelled", F.lit(0)).otherwise(net)).alias("revenue_amount"),
        money(F.col("quantity") * F.col("_p_cost")).alias("cost_amount"),
        "line_type",
        "payment_method",
        "currency",
        F.coalesce(F.col("category_l1"), F.lit("unknown")).alias("category_l1"),
        F.coalesce(F.col("brand"), F.lit("unknown")).alias("brand"),
    )
