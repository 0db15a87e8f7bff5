"""Conformed dimensions: product (one row per SKU across catalogues), store/location, channel and date.

Product survivorship (one row per SKU from every source catalogue in ``silver.products``):

- ``product_name``, ``brand``: the best-ranked source that knows the value (not null, not empty, not ``unknown``);
  sources rank by ``source_priority`` (default online first: the web catalogue carries the customer-facing names),
  then any other source alphabetically; within a source the most recent ``updated_at`` wins.
- ``category_code``, ``category_l1..l3``: taken together from the best-ranked row whose ``category_l1`` is known, so
  that levels of two different hierarchies are never mixed.
- ``unit_price`` (the list price): the best-ranked source's price; ``store_unit_price`` keeps the ``pos`` price.
- ``unit_cost``: the most recently updated known cost of any source (cost is a fact about the product, not about a
  channel).
- SKUs sold (``silver.order_lines``) or moved (inventory) that no catalogue knows become *inferred* members
  (``is_inferred`` true, name and categories ``unknown``) so that every fact row joins to the dimension.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.gold.common import date_key, day_number, money

DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = ("online", "pos")

DIM_CHANNEL_SCHEMA = "channel string, channel_name string, channel_group string, is_digital boolean, description string"
CHANNELS: tuple[tuple[str, str, str, bool, str], ...] = (
    ("web", "Web shop", "online", True, "Orders placed on the website."),
    ("app", "Mobile app", "online", True, "Orders placed in the mobile app."),
    ("store", "Store", "store", False, "Till transactions in a physical store (POS)."),
)


def _known(col: Column) -> Column:
    text = F.lower(F.trim(col.cast("string")))
    return col.isNotNull() & (text != "") & (text != "unknown")


def _rank_key(source_priority: tuple[str, ...]) -> Column:
    prio = F.lit(len(source_priority))
    for i, src in reversed(list(enumerate(source_priority))):
        prio = F.when(F.col("source_system") == src, F.lit(i)).otherwise(prio)
    return prio


def conform_products(products: DataFrame, *, source_priority: tuple[str, ...] = DEFAULT_SOURCE_PRIORITY) -> DataFrame:
    """One product per SKU from every source catalogue, attributes chosen by the documented survivorship rules."""
    ranked = products.select(
        "*",
        _rank_key(source_priority).alias("_prio"),
        (-F.coalesce(F.unix_timestamp(F.col("updated_at").cast("timestamp")), F.lit(0))).alias("_age"),
    )

    def best(value: Column, known: Column, order: tuple[str, ...] = ("_prio", "_age", "source_system")) -> Column:
        """The value of the best-ranked row where ``known`` holds (min over a struct of the rank key and value)."""
        key = F.struct(*[F.col(c) for c in order], value.alias("v"))
        return F.min(F.when(known, key)).getField("v")

    hierarchy = F.struct(
        F.col("category_code"), F.col("category_l1"), F.col("category_l2"), F.col("category_l3")
    )
    agg = ranked.groupBy("sku").agg(
        best(F.trim(F.col("product_name")), _known(F.col("product_name"))).alias("product_name"),
        best(F.lower(F.trim(F.col("brand"))), _known(F.col("brand"))).alias("brand"),
        best(hierarchy, _known(F.col("category_l1"))).alias("_cat"),
        best(F.col("unit_price"), F.col("unit_price").isNotNull()).alias("unit_price"),
        best(F.col("unit_cost"), F.col("unit_cost").isNotNull(), ("_age", "_prio", "source_system")).alias("unit_cost"),
        best(F.col("unit_price"), F.col("unit_price").isNotNull() & (F.col("source_system") == "pos")).alias("store_unit_price"),
        best(F.col("currency"), _known(F.col("currency"))).alias("currency"),
        F.sort_array(F.collect_set("source_system")).alias("source_systems"),
        F.max(F.col("updated_at").cast("timestamp")).alias("updated_at"),
    )
    return agg.select(
        "sku",
        F.coalesce("product_name", F.lit("unknown")).alias("product_name"),
        F.coalesce("brand", F.lit("unknown")).alias("brand"),
        F.coalesce(F.col("_cat.category_code"), F.lit("unknown")).alias("category_code"),
        F.coalesce(F.col("_cat.category_l1"), F.lit("unknown")).alias("category_l1"),
        F.coalesce(F.col("_cat.category_l2"), F.lit("unknown")).alias("category_l2"),
        F.coalesce(F.col("_cat.category_l3"), F.lit("unknown")).alias("category_l3"),
        money("unit_price").alias("unit_price"),
        money("unit_cost").alias("unit_cost"),
        money("store_unit_price").alias("store_unit_price"),
        F.round(
            F.when(F.col("unit_price") > 0, 100.0 * (F.col("unit_price") - F.col("unit_cost")) / F.col("unit_price")).cast("double"), 2
        ).alias("margin_pct"),
        F.coalesce("currency", F.lit("GBP")).alias("currency"),
        "source_systems",
        F.lit(False).alias("is_inferred"),
        "updated_at",
    )


def add_inferred_products(dim_product: DataFrame, skus: DataFrame) -> DataFrame:
    """Append an inferred member (``is_inferred`` true, attributes ``unknown``) for every SKU of ``skus`` not in the dimension."""
    missing = (
        skus.select(F.col("sku").cast("string").alias("sku"))
        .where(F.col("sku").isNotNull())
        .distinct()
        .join(dim_product.select("sku"), "sku", "left_anti")
    )
    inferred = missing.select(
        "sku",
        F.lit("unknown").alias("product_name"),
        F.lit("unknown").alias("brand"),
        F.lit("unknown").alias("category_code"),
        F.lit("unknown").alias("category_l1"),
        F.lit("unknown").alias("category_l2"),
        F.lit("unknown").alias("category_l3"),
        F.lit(None).cast("decimal(18,2)").alias("unit_price"),
        F.lit(None).cast("decimal(18,2)").alias("unit_cost"),
        F.lit(None).cast("decimal(18,2)").alias("store_unit_price"),
        F.lit(None).cast("double").alias("margin_pct"),
        F.lit("GBP").alias("currency"),
        F.array().cast("array<string>").alias("source_systems"),
        F.lit(True).alias("is_inferred"),
        F.lit(None).cast("timestamp").alias("updated_at"),
    )
    return dim_product.unionByName(inferred)


def build_dim_store(stores: DataFrame, *, source_priority: tuple[str, ...] = ("pos",)) -> DataFrame:
    """One location per ``store_id`` (stores and warehouses); the best-ranked source's most recent row survives."""
    ranked = stores.select("*", _rank_key(source_priority).alias("_prio"))
    row = F.struct(
        F.col("_prio"), F.col("source_system"), F.col("store_name"), F.col("location_type"), F.col("city"),
        F.col("region"), F.col("postcode"), F.col("country"), F.col("opened_at").cast("date").alias("opened_at"),
    )
    best = ranked.groupBy("store_id").agg(F.min(row).alias("r"))
    loc_type = F.lower(F.trim(F.col("r.location_type")))
    return best.select(
        F.col("store_id").alias("location_id"),
        F.coalesce(F.col("r.store_name"), F.col("store_id")).alias("name"),
        F.when(loc_type.isin("store", "warehouse"), loc_type).otherwise(F.lit("store")).alias("location_type"),
        F.coalesce(F.col("r.city"), F.lit("unknown")).alias("city"),
        F.coalesce(F.col("r.region"), F.lit("unknown")).alias("region"),
        F.col("r.postcode").alias("postcode"),
        F.col("r.country").alias("country"),
        F.col("r.opened_at").alias("opened_at"),
        (loc_type == "warehouse").alias("is_warehouse"),
        F.col("r.source_system").alias("source_system"),
        F.lit(False).alias("is_inferred"),
    )


def add_inferred_locations(dim_store: DataFrame, location_ids: DataFrame) -> DataFrame:
    """Append an inferred location for every ``location_id`` of ``location_ids`` missing from the dimension."""
    missing = (
        location_ids.select(F.col("location_id").cast("string").alias("location_id"))
        .where(F.col("location_id").isNotNull())
        .distinct()
        .join(dim_store.select("location_id"), "location_id", "left_anti")
    )
    inferred = missing.select(
        "location_id",
        F.col("location_id").alias("name"),
        F.lit("store").alias("location_type"),
        F.lit("unknown").alias("city"),
        F.lit("unknown").alias("region"),
        F.lit(None).cast("string").alias("postcode"),
        F.lit(None).cast("string").alias("country"),
        F.lit(None).cast("date").alias("opened_at"),
        F.lit(False).alias("is_warehouse"),
        F.lit(None).cast("string").alias("source_system"),
        F.lit(True).alias("is_inferred"),
    )
    return dim_store.unionByName(inferred)


# ---------------------------------------------------------------------------------------------------------------
# Date dimension
# ---------------------------------------------------------------------------------------------------------------
def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _substitute(day: dt.date, taken: set[dt.date]) -> dt.date:
    while day.weekday() >= 5 or day in taken:
        day += dt.timedelta(days=1)
    return day


def uk_holidays(years: range | list[int]) -> dict[dt.date, str]:
    """England & Wales bank holidays by rule (weekend substitutes included; one-off royal holidays are not)."""
    out: dict[dt.date, str] = {}
    for y in years:
        out[_substitute(dt.date(y, 1, 1), set())] = "New Year's Day"
        easter = _easter(y)
        out[easter - dt.timedelta(days=2)] = "Good Friday"
        out[easter + dt.timedelta(days=1)] = "Easter Monday"
        first_may = dt.date(y, 5, 1)
        out[first_may + dt.timedelta(days=(7 - first_may.weekday()) % 7)] = "Early May bank holiday"
        last_may = dt.date(y, 5, 31)
        out[last_may - dt.timedelta(days=last_may.weekday())] = "Spring bank holiday"
        last_aug = dt.date(y, 8, 31)
        out[last_aug - dt.timedelta(days=last_aug.weekday())] = "Summer bank holiday"
        xmas = _substitute(dt.date(y, 12, 25), set())
        out[xmas] = "Christmas Day"
        out[_substitute(dt.date(y, 12, 26), {xmas})] = "Boxing Day"
    return out


def date_range_for(as_of: dt.date, *, years_back: int = 3, years_forward: int = 1) -> tuple[dt.date, dt.date]:
    """The dim_date span: 1 January ``years_back`` years before ``as_of`` to 31 December ``years_forward`` after."""
    return dt.date(as_of.year - years_back, 1, 1), dt.date(as_of.year + years_forward, 12, 31)


def build_dim_date(spine: DataFrame, *, holidays: dict[dt.date, str] | None = None) -> DataFrame:
    """Calendar, ISO and 4-4-5 retail fields for every ``date`` of ``spine`` (one DATE column named ``date``).

    Retail calendar: the fiscal year is the ISO year (it starts on the Monday of ISO week 1), each quarter is 13 weeks
    in 4-4-5 periods (weeks 1-4 period 1, 5-8 period 2, 9-13 period 3, ...); week 53 of a long year joins period 12.
    """
    holidays = holidays or {}
    d = F.col("date")
    iso_dow = ((F.dayofweek(d) + 5) % 7) + 1  # 1 = Monday .. 7 = Sunday
    iso_week = F.weekofyear(d)
    iso_year = F.year(F.date_add(d, (F.lit(4) - iso_dow).cast("int")))
    q_week = F.least(iso_week, F.lit(52))  # week 53 folds into the last period
    fiscal_quarter = ((q_week - 1) / 13).cast("int") + 1
    week_in_quarter = (q_week - 1) % 13
    period_in_quarter = F.when(week_in_quarter < 4, 1).when(week_in_quarter < 8, 2).otherwise(3)
    if holidays:
        pairs = []
        for day, name in sorted(holidays.items()):
            pairs += [F.lit(day.isoformat()), F.lit(name)]
        holiday_name = F.create_map(*pairs)[d.cast("string")]
    else:
        holiday_name = F.lit(None).cast("string")
    return spine.select(F.col("date").cast("date").alias("date")).distinct().select(
        date_key(d).alias("date_key"),
        d.alias("date"),
        day_number(d).alias("day_number"),
        F.year(d).alias("year"),
        F.quarter(d).alias("quarter"),
        F.month(d).alias("month"),
        F.date_format(d, "MMMM").alias("month_name"),
        F.dayofmonth(d).alias("day_of_month"),
        F.dayofyear(d).alias("day_of_year"),
        iso_dow.alias("day_of_week"),
        F.date_format(d, "EEEE").alias("day_name"),
        (iso_dow >= 6).alias("is_weekend"),
        iso_year.alias("iso_year"),
        iso_week.alias("iso_week"),
        F.date_sub(d, (iso_dow - 1).cast("int")).alias("week_start_date"),
        iso_year.alias("fiscal_year"),
        fiscal_quarter.alias("fiscal_quarter"),
        ((fiscal_quarter - 1) * 3 + period_in_quarter).alias("fiscal_period"),
        iso_week.alias("fiscal_week"),
        holiday_name.isNotNull().alias("is_holiday"),
        holiday_name.alias("holiday_name"),
    )
