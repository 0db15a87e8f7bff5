"""SCD type 2 staging for ``gold.dim_customer`` (the staged-union MERGE pattern)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .survivorship import SCD2_ATTRIBUTES

DIM_COLUMNS: tuple[str, ...] = ("golden_id", *SCD2_ATTRIBUTES, "attribute_hash", "valid_from", "valid_to", "is_current", "run_id")


def stage_dim_changes(golden: DataFrame, current: DataFrame, retired: DataFrame, *, valid_from, run_id: str) -> DataFrame:
    """Rows for ``MERGE ... ON t.golden_id = s.merge_key AND t.is_current``.

    ``golden``: new golden rows of the touched ids; ``current``: (golden_id, attribute_hash) of the current dim rows;
    ``retired``: (golden_id) of ids that no longer exist. A changed or new id yields a closing row (merge_key = id)
    and an inserting row (merge_key null); a retired id yields a closing row only; an unchanged id yields nothing.
    """
    cur = current.select("golden_id", F.col("attribute_hash").alias("_cur_hash"))
    changed = golden.join(cur, "golden_id", "left").where(
        F.col("_cur_hash").isNull() | (F.col("_cur_hash") != F.col("attribute_hash"))
    ).drop("_cur_hash")
    vf = F.lit(valid_from).cast("timestamp")
    versions = changed.select(
        *[F.col(c) for c in ("golden_id", *SCD2_ATTRIBUTES, "attribute_hash")],
        vf.alias("valid_from"), F.lit(None).cast("timestamp").alias("valid_to"), F.lit(True).alias("is_current"),
        F.lit(run_id).alias("run_id"),
    )
    closing = versions.withColumn("merge_key", F.col("golden_id"))
    inserting = versions.withColumn("merge_key", F.lit(None).cast("string"))
    types = dict(golden.dtypes)
    retiring = retired.select(
        "golden_id",
        *[F.lit(None).cast(types[c]).alias(c) for c in (*SCD2_ATTRIBUTES, "attribute_hash")],
        vf.alias("valid_from"), F.lit(None).cast("timestamp").alias("valid_to"), F.lit(False).alias("is_current"),
        F.lit(run_id).alias("run_id"), F.col("golden_id").alias("merge_key"),
    )
    return closing.unionByName(inserting).unionByName(retiring)


def merge_dim_sql(target: str, source_view: str) -> str:
    """The MERGE statement applying staged rows to the dimension."""
    cols = ", ".join(f"`{c}`" for c in DIM_COLUMNS)
    vals = ", ".join(f"s.`{c}`" for c in DIM_COLUMNS)
    return (
        f"MERGE INTO {target} t USING {source_view} s "
        "ON t.golden_id = s.merge_key AND t.is_current = true "
        "WHEN MATCHED THEN UPDATE SET is_current = false, valid_to = s.valid_from "
        f"WHEN NOT MATCHED AND s.merge_key IS NULL THEN INSERT ({cols}) VALUES ({vals})"
    )
