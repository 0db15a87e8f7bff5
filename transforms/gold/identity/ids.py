"""Golden id assignment: stable across runs, with documented survivor rules for merges and splits.

Given the new clusters of the records in scope and the golden ids those records had before:

* **split** - an old golden id stays with the new cluster holding most of its old records (tie: the cluster with
  the oldest of those records, then the smallest record key);
* **merge** - a new cluster that keeps several old ids keeps the oldest identity (smallest ``first_seen``, tie: the
  smallest id); the others are retired and recorded as merged into it;
* **new** - a cluster that keeps no old id gets ``gc_`` + the first 16 hex digits of sha2-256 of its oldest record
  key (oldest = smallest ``created_at``, tie: record key), salted if that id was ever issued before.

So a full rebuild from scratch and day-by-day runs issue the same ids, and re-running a day renumbers nothing.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ID_PREFIX = "gc_"


def cluster_oldest_record(members: DataFrame) -> DataFrame:
    """(cluster_key, oldest_key): the cluster's oldest record (smallest first_ts, then record key)."""
    return members.groupBy("cluster_key").agg(
        F.min_by("record_key", F.struct(F.coalesce(F.col("first_ts"), F.lit("9999-12-31").cast("timestamp")), "record_key")).alias("oldest_key")
    )


def keep_existing_ids(members: DataFrame, previous: DataFrame, previous_golden: DataFrame) -> DataFrame:
    """(cluster_key, golden_id) for clusters that keep an old id, by the split then merge rules."""
    claims = (
        members.join(previous, "record_key")
        .groupBy("cluster_key", "golden_id")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min(F.coalesce(F.col("first_ts"), F.lit("9999-12-31").cast("timestamp"))).alias("oldest_ts"),
            F.min("record_key").alias("oldest_key"),
        )
    )
    split_rank = Window.partitionBy("golden_id").orderBy(F.col("n").desc(), F.col("oldest_ts"), F.col("oldest_key"))
    won = claims.withColumn("_r", F.row_number().over(split_rank)).where(F.col("_r") == 1).drop("_r")
    won = won.join(previous_golden.select("golden_id", "first_seen"), "golden_id", "left")
    merge_rank = Window.partitionBy("cluster_key").orderBy(
        F.coalesce(F.col("first_seen"), F.lit("9999-12-31").cast("timestamp")), F.col("golden_id")
    )
    return won.withColumn("_r", F.row_number().over(merge_rank)).where(F.col("_r") == 1).select("cluster_key", "golden_id")


def propose_new_ids(oldest: DataFrame, *, salt: int = 0) -> DataFrame:
    """(cluster_key, golden_id) candidates from the oldest record key (``salt`` > 0 after a collision)."""
    basis = F.col("oldest_key") if salt == 0 else F.concat(F.col("oldest_key"), F.lit(f"#{salt}"))
    return oldest.select("cluster_key", F.concat(F.lit(ID_PREFIX), F.substring(F.sha2(basis, 256), 1, 16)).alias("golden_id"))


def identity_changes(previous: DataFrame, assigned: DataFrame, surviving_ids: DataFrame, *, survivor_rule: dict[str, str]) -> DataFrame:
    """Merges and splits: (change_type, old_golden_id, new_golden_id, records_moved, match_rules, rule).

    ``previous``: (record_key, golden_id) before; ``assigned``: (record_key, golden_id, match_rule) after
    (match_rules lists the link rules of the moved records); ``surviving_ids``:
    (golden_id) of every id still in use after the run. A record moving away from an id that is retired is a
    merge; moving away from an id that survives elsewhere is a split.
    """
    moved = (
        previous.select("record_key", F.col("golden_id").alias("old_golden_id"))
        .join(assigned.select("record_key", F.col("golden_id").alias("new_golden_id"), "match_rule"), "record_key")
        .where(F.col("old_golden_id") != F.col("new_golden_id"))
    )
    alive = surviving_ids.select(F.col("golden_id").alias("old_golden_id"), F.lit(True).alias("_alive")).distinct()
    grouped = moved.groupBy("old_golden_id", "new_golden_id").agg(
        F.count(F.lit(1)).alias("records_moved"),
        F.concat_ws(",", F.array_sort(F.collect_set("match_rule"))).alias("match_rules"),
    )
    typed = grouped.join(alive, "old_golden_id", "left").withColumn(
        "change_type", F.when(F.col("_alive"), F.lit("split")).otherwise(F.lit("merge"))
    )
    return typed.select(
        "change_type", "old_golden_id", "new_golden_id", "records_moved", "match_rules",
        F.when(F.col("change_type") == "merge", F.lit(survivor_rule["merge"])).otherwise(F.lit(survivor_rule["split"])).alias("rule"),
    )


SURVIVOR_RULES = {
    "merge": "merge: the oldest identity (smallest first_seen, then smallest id) keeps its id",
    "split": "split: the part with most of the old records (tie: oldest record) keeps the id; the rest moves",
}
