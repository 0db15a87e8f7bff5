"""Small column helpers shared by the gold transforms (no I/O, no session)."""

from __future__ import annotations

import datetime as dt
import warnings

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import Window

# A whole-table window (ranking all customers, all days) is intended in gold; the client warns on every one.
warnings.filterwarnings("ignore", message=".*No Partition Defined for Window operation.*")

MONEY = "decimal(18,2)"
EPOCH = dt.date(1970, 1, 1)


def money(col: Column | str) -> Column:
    """Round to cents and cast to the gold money type DECIMAL(18,2)."""
    c = F.col(col) if isinstance(col, str) else col
    return F.round(c.cast("decimal(38,6)"), 2).cast(MONEY)


def day_number(col: Column | str) -> Column:
    """Days since 1970-01-01 as an INT: the key for range windows (a DATE range frame fails on Sail and Spark 4.2)."""
    c = F.col(col) if isinstance(col, str) else col
    return F.datediff(c.cast("date"), F.lit(EPOCH.isoformat()).cast("date"))


def date_key(col: Column | str) -> Column:
    """The yyyymmdd INT key of a date."""
    c = F.col(col) if isinstance(col, str) else col
    return F.date_format(c.cast("date"), "yyyyMMdd").cast("int")


def safe_div(num: Column, den: Column) -> Column:
    """num / den as DOUBLE, null when the denominator is 0 or null."""
    return F.when(den.isNull() | (den == 0), F.lit(None).cast("double")).otherwise(num.cast("double") / den.cast("double"))


def midrank_quintile(value: Column | str, *, higher_is_better: bool = True, partition_by: tuple[str, ...] = ()) -> Column:
    """Tie-aware quintile 1..5: ``1 + floor(5 * (midrank - 0.5) / n)``; equal values always share one score.

    ``midrank`` is the average 1-based position of the value's tie group in ascending order of goodness, ``n`` the
    number of rows with a non-null value. Ten distinct values split 2-2-2-2-2; all-equal values (or a single row)
    score 3; rows with a null value score null.
    """
    v = F.col(value) if isinstance(value, str) else value
    key = v if higher_is_better else -v
    order = Window.partitionBy(*partition_by).orderBy(key.asc_nulls_first())
    ties = Window.partitionBy(*partition_by, key)
    whole = Window.partitionBy(*partition_by)
    n = F.count(v).over(whole)
    nulls = F.sum(F.when(v.isNull(), 1).otherwise(0)).over(whole)
    rank_min = F.rank().over(order) - nulls  # nulls sort first; shift them out
    midrank = rank_min + (F.count(F.lit(1)).over(ties) - 1) / 2.0
    score = F.least(F.lit(5), F.lit(1) + F.floor(5 * (midrank - 0.5) / n)).cast("int")
    return F.when(v.isNull(), F.lit(None).cast("int")).otherwise(score)


def midrank_percentile(value: Column | str, *, partition_by: tuple[str, ...] = ()) -> Column:
    """Tie-aware percentile 0..100 (DOUBLE): ``100 * (midrank - 0.5) / n``; null for null values."""
    v = F.col(value) if isinstance(value, str) else value
    order = Window.partitionBy(*partition_by).orderBy(v.asc_nulls_first())
    ties = Window.partitionBy(*partition_by, v)
    whole = Window.partitionBy(*partition_by)
    n = F.count(v).over(whole)
    nulls = F.sum(F.when(v.isNull(), 1).otherwise(0)).over(whole)
    midrank = F.rank().over(order) - nulls + (F.count(F.lit(1)).over(ties) - 1) / 2.0
    return F.when(v.isNull(), F.lit(None).cast("double")).otherwise(F.round(100.0 * (midrank - 0.5) / n, 4))
