"""Clustering of links into identities: min-label propagation steps and the over-merge guard.

Connected components are found by iterating :func:`propagate_labels` (each node takes the smallest label among
itself and its neighbours, then the label of its label: pointer jumping) until no label changes; the loop, which
needs an action per round, lives in ``flows.identity``. The guard works in two tiers:

1. *strong* links (deterministic rules, or probability >= ``strong_threshold``) form strong components;
2. *weak* links (threshold <= probability < strong) may only join strong components by **best link**: each
   component follows only its single best weak link towards a larger component, and two components that both have
   several records need at least ``bridge_min_support`` weak record pairs between them. A record weakly similar to
   two different people therefore joins at most one of them and never glues the two together.
3. A merged cluster larger than ``max_cluster_size`` falls back to its strong components, and a strong component
   larger than that falls apart into single records (flagged ``over_merge_guard``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def undirected_edges(links: DataFrame, *, src: str = "left_key", dst: str = "right_key") -> DataFrame:
    """(src, dst) in both directions, distinct."""
    a = links.select(F.col(src).alias("src"), F.col(dst).alias("dst"))
    b = links.select(F.col(dst).alias("src"), F.col(src).alias("dst"))
    return a.unionByName(b).distinct()


def initial_labels(nodes: DataFrame, *, node: str = "record_key") -> DataFrame:
    """Every node labelled by itself: (node, label)."""
    return nodes.select(F.col(node).alias("node")).distinct().withColumn("label", F.col("node"))


def propagate_labels(labels: DataFrame, edges: DataFrame) -> DataFrame:
    """One round: min label over the node and its neighbours, then pointer jumping (label of the label)."""
    neighbour = edges.join(labels, edges["src"] == labels["node"]).select(edges["dst"].alias("node"), labels["label"])
    smallest = labels.unionByName(neighbour).groupBy("node").agg(F.min("label").alias("label"))
    c, p = smallest.alias("c"), smallest.alias("p")
    return c.join(p, F.col("c.label") == F.col("p.node"), "left").select(
        F.col("c.node").alias("node"), F.least(F.col("c.label"), F.coalesce(F.col("p.label"), F.col("c.label"))).alias("label")
    )


def changed_labels(old: DataFrame, new: DataFrame) -> DataFrame:
    """Nodes whose label differs between two rounds."""
    return new.alias("n").join(old.alias("o"), "node").where(F.col("n.label") != F.col("o.label")).select("node")


def component_sizes(labels: DataFrame) -> DataFrame:
    """(label, size) of each component."""
    return labels.groupBy("label").agg(F.count(F.lit(1)).alias("size"))


def weak_component_links(links: DataFrame, strong_labels: DataFrame) -> DataFrame:
    """Weak record links lifted to strong components: (ca, cb, best_score, support) with ca < cb."""
    weak = links.where(~F.col("is_strong"))
    la = strong_labels.select(F.col("node").alias("left_key"), F.col("label").alias("la"))
    lb = strong_labels.select(F.col("node").alias("right_key"), F.col("label").alias("lb"))
    lifted = weak.join(la, "left_key").join(lb, "right_key").where(F.col("la") != F.col("lb"))
    return (
        lifted.select(F.least("la", "lb").alias("ca"), F.greatest("la", "lb").alias("cb"), "match_score")
        .groupBy("ca", "cb")
        .agg(F.max("match_score").alias("best_score"), F.count(F.lit(1)).alias("support"))
    )


def accepted_component_links(comp_links: DataFrame, sizes: DataFrame, *, bridge_min_support: int) -> DataFrame:
    """The weak component links the best-link rule accepts: (src, dst) between strong-component labels."""
    sa = sizes.select(F.col("label").alias("ca"), F.col("size").alias("size_a"))
    sb = sizes.select(F.col("label").alias("cb"), F.col("size").alias("size_b"))
    with_sizes = comp_links.join(sa, "ca").join(sb, "cb")
    # Orient each link from its smaller side ((size, label) ascending) and keep that side's single best link.
    a_smaller = (F.col("size_a") < F.col("size_b")) | ((F.col("size_a") == F.col("size_b")) & (F.col("ca") < F.col("cb")))
    oriented = with_sizes.select(
        F.when(a_smaller, F.col("ca")).otherwise(F.col("cb")).alias("small"),
        F.when(a_smaller, F.col("cb")).otherwise(F.col("ca")).alias("large"),
        F.least("size_a", "size_b").alias("small_size"),
        "best_score",
        "support",
    )
    rank = Window.partitionBy("small").orderBy(F.col("best_score").desc(), F.col("support").desc(), F.col("large"))
    best = oriented.withColumn("_r", F.row_number().over(rank)).where(F.col("_r") == 1)
    ok = (F.col("small_size") == 1) | (F.col("support") >= bridge_min_support)
    return best.where(ok).select(F.col("small").alias("left_key"), F.col("large").alias("right_key"))


def guarded_clusters(
    nodes: DataFrame, strong_labels: DataFrame, merged_labels: DataFrame, *, max_cluster_size: int
) -> DataFrame:
    """Final (record_key, cluster_key, guard) from strong-component labels and merged-component labels.

    ``merged_labels`` maps strong-component labels to merged labels (node = strong label). Oversized merged clusters
    fall back to strong components; oversized strong components fall apart into single records.
    """
    rec = nodes.select("record_key").distinct()
    s = strong_labels.select(F.col("node").alias("record_key"), F.col("label").alias("strong_label"))
    m = merged_labels.select(F.col("node").alias("strong_label"), F.col("label").alias("merged_label"))
    joined = rec.join(s, "record_key", "left").withColumn("strong_label", F.coalesce("strong_label", "record_key"))
    joined = joined.join(m, "strong_label", "left").withColumn("merged_label", F.coalesce("merged_label", "strong_label"))
    joined = joined.withColumn("_msize", F.count(F.lit(1)).over(Window.partitionBy("merged_label")))
    joined = joined.withColumn("_ssize", F.count(F.lit(1)).over(Window.partitionBy("strong_label")))
    too_big_merged = F.col("_msize") > max_cluster_size
    too_big_strong = F.col("_ssize") > max_cluster_size
    return joined.select(
        "record_key",
        F.when(~too_big_merged, F.col("merged_label"))
        .when(~too_big_strong, F.col("strong_label"))
        .otherwise(F.col("record_key"))
        .alias("cluster_key"),
        F.when(too_big_strong, F.lit("split_to_records")).when(too_big_merged, F.lit("split_to_strong")).alias("guard"),
    )


def best_link_per_record(clusters: DataFrame, links: DataFrame) -> DataFrame:
    """(record_key, match_score, match_rule): the strongest link inside the record's cluster, or ``singleton``."""
    ca = clusters.select(F.col("record_key").alias("left_key"), F.col("cluster_key").alias("_cl"))
    cb = clusters.select(F.col("record_key").alias("right_key"), F.col("cluster_key").alias("_cr"))
    inside = links.join(ca, "left_key").join(cb, "right_key").where(F.col("_cl") == F.col("_cr"))
    ends = inside.select(F.col("left_key").alias("record_key"), "match_score", "match_rule").unionByName(
        inside.select(F.col("right_key").alias("record_key"), "match_score", "match_rule")
    )
    best = ends.groupBy("record_key").agg(
        F.max_by(F.struct("match_score", "match_rule"), F.struct("match_score", "match_rule")).alias("_b")
    )
    return (
        clusters.select("record_key", "guard").join(best, "record_key", "left")
        .select(
            "record_key",
            F.col("_b.match_score").alias("match_score"),
            F.when(F.col("guard").isNotNull(), F.lit("over_merge_guard"))
            .otherwise(F.coalesce(F.col("_b.match_rule"), F.lit("singleton")))
            .alias("match_rule"),
        )
    )
