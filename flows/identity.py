"""Identity resolution (issue 4): silver.customers -> gold.golden_customers, customer_xref, dim_customer, changes.

Plain Python, no Prefect: ``resolve_customers(settings, day=..., full_rebuild=...)`` reads the whole
``silver.customers``, computes every record's match features (a linear scan) and compares their hash with the state
kept from the previous run (``gold.identity_records`` / ``gold.identity_links`` / ``gold.identity_candidates``).
Only the changed records are blocked and scored against everyone, and only the link components they touch are
re-clustered, re-numbered and re-survived; everything else stays as it was. Because features depend on global
statistics only through thresholds and power-of-two buckets (placeholder frequency caps, block-size cap,
name-frequency buckets, the name-typo ratio), a record whose statistics move across a threshold has a changed
hash too. Best matches per system depend on competing pairs, not on one pair alone: they are recomputed every run
over all kept and new scored candidates, and any link that appears or goes away brings its components into the run.
So the incremental result equals a full rebuild.

Write order: change log, xref, golden, dim (MERGE), then the internal state, record hashes last; a run that dies
part-way is repaired by the next run, which still sees the old hashes and redoes the same work.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import delta
from lakehouse.catalog import (
    CUSTOMER_XREF, DIM_CUSTOMER, GOLDEN_CUSTOMERS, IDENTITY_CANDIDATES, IDENTITY_CHANGES, IDENTITY_LINKS, IDENTITY_RECORDS,
    SILVER_CUSTOMERS, sql_ref,
)
from lakehouse.errors import LakehouseError
from lakehouse.identity_config import IdentityConfig, load_identity_config
from lakehouse.runs import new_run_id
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.storage import Storage
from transforms.gold.identity import cluster as C
from transforms.gold.identity import ids as I
from transforms.gold.identity.compare import (
    CANDIDATE_COLUMNS, LINK_COLUMNS, best_match_links, candidate_pairs, score_candidates,
)
from transforms.gold.identity.features import SILVER_CUSTOMER_COLUMNS, prepare_records
from transforms.gold.identity.scd2 import merge_dim_sql, stage_dim_changes
from transforms.gold.identity.survivorship import build_golden

RECORDS_SCHEMA = "record_key string, record_hash string, component_id string"
LINKS_SCHEMA = (
    "left_key string, right_key string, match_weight double, match_probability double, match_score double, "
    "match_rule string, is_strong boolean"
)
CANDIDATES_SCHEMA = LINKS_SCHEMA + ", best_score double"
XREF_SCHEMA = (
    "source_system string, source_customer_id string, record_key string, golden_id string, match_score double, "
    "match_rule string, run_id string, resolved_at timestamp"
)
GOLDEN_FIRST_SEEN_SCHEMA = "golden_id string, first_seen timestamp"
CHANGES_SCHEMA = "old_golden_id string"


class IdentityResolutionError(LakehouseError):
    """Identity resolution cannot run on the given input or state."""


class Stager:
    """Materializes intermediate frames as Delta under the run's staging folder (breaks long lineages; Delta keeps
    the schema of an empty frame, plain parquet from this engine does not). Staged tables are read whole, so their
    writes collect no column statistics (only the row count per file)."""

    def __init__(self, spark, settings: Settings, run_id: str) -> None:
        self.spark = spark
        self.storage = Storage(settings)
        self.base = self.storage.staging_dir(run_id, "identity")
        self.n = 0

    def __call__(self, df: DataFrame, name: str) -> DataFrame:
        """Write ``df`` and return it read back."""
        self.n += 1
        path = f"{self.base}/{self.n:03d}_{name}"
        df.write.format("delta").mode("overwrite").option("delta.dataSkippingNumIndexedCols", "0").save(path)
        return self.spark.read.format("delta").load(path)

    def cleanup(self) -> None:
        """Delete the staging folder."""
        self.storage.delete_dir(self.base)


def connected_components(
    nodes: DataFrame, edges: DataFrame, *, stage: Callable[[DataFrame, str], DataFrame], max_iterations: int, name: str = "cc"
) -> DataFrame:
    """(node, label) with label = the smallest node of its component, by iterative min-label propagation."""
    both = stage(C.undirected_edges(edges), f"{name}_edges")
    labels = stage(C.initial_labels(nodes, node="node"), f"{name}_0")
    for i in range(1, max_iterations + 1):
        new = stage(C.propagate_labels(labels, both), f"{name}_{i}")
        if C.changed_labels(labels, new).limit(1).count() == 0:
            return new
        labels = new
    raise IdentityResolutionError(
        f"label propagation did not converge in {max_iterations} rounds; raise clustering.max_iterations in the identity config"
    )


def _cluster(scope: DataFrame, links: DataFrame, cfg: IdentityConfig, stage) -> tuple[DataFrame, DataFrame]:
    """(raw components, guarded clusters) of the records in scope."""
    it = cfg.clustering.max_iterations
    ends = lambda lk: lk.select(F.col("left_key").alias("node")).unionByName(lk.select(F.col("right_key").alias("node"))).distinct()  # noqa: E731
    raw = connected_components(ends(links), links, stage=stage, max_iterations=it, name="raw")
    strong_links = links.where(F.col("is_strong"))
    strong = connected_components(ends(strong_links), strong_links, stage=stage, max_iterations=it, name="strong")
    strong_full = stage(
        scope.select(F.col("record_key").alias("node")).join(strong, "node", "left")
        .withColumn("label", F.coalesce("label", "node")),
        "strong_full",
    )
    comp_links = C.weak_component_links(links, strong_full)
    accepted = stage(
        C.accepted_component_links(comp_links, C.component_sizes(strong_full), bridge_min_support=cfg.clustering.bridge_min_support),
        "accepted",
    )
    merged = connected_components(ends(accepted), accepted, stage=stage, max_iterations=it, name="merged")
    clusters = C.guarded_clusters(scope, strong_full, merged, max_cluster_size=cfg.clustering.max_cluster_size)
    return raw, stage(clusters, "clusters")


def _assign_ids(members: DataFrame, previous: DataFrame, prev_golden: DataFrame, used: DataFrame, stage) -> DataFrame:
    """(cluster_key, golden_id) for every cluster: kept ids by the survivor rules, new ids otherwise."""
    kept = stage(I.keep_existing_ids(members, previous, prev_golden), "kept_ids")
    need = I.cluster_oldest_record(members).join(kept.select("cluster_key"), "cluster_key", "left_anti")
    taken = used.unionByName(kept.select("golden_id")).distinct()
    parts = [kept]
    for salt in range(0, 10):
        proposed = stage(I.propose_new_ids(need, salt=salt), f"new_ids_{salt}")
        clash = proposed.join(taken, "golden_id", "left_semi")
        ok = proposed.join(clash.select("cluster_key"), "cluster_key", "left_anti")
        parts.append(ok)
        if clash.limit(1).count() == 0:
            break
        need = need.join(clash.select("cluster_key"), "cluster_key", "left_semi")
        taken = taken.unionByName(ok.select("golden_id")).distinct()
    else:  # pragma: no cover - ten sha2 collisions in a row
        raise IdentityResolutionError("could not find an unused golden id after 10 attempts")
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _read(spark, spec, settings, schema: str) -> DataFrame:
    return delta.read_or_empty(spark, spec, settings, schema)


def _merge(spark, df: DataFrame, spec, settings, *, keys: tuple[str, ...], delete_flag: str | None = None) -> None:
    """Upsert ``df`` on ``keys``; rows with ``delete_flag`` true delete the target row instead."""
    if not delta.table_exists(spec, settings):
        body = df.where(~F.col(delete_flag)).drop(delete_flag) if delete_flag else df
        delta.overwrite(body, spec, settings)
        return
    view = delta.temp_view(df, "identity_merge")
    cols = [c for c in df.columns if c != delete_flag]
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    sets = ", ".join(f"`{c}` = s.`{c}`" for c in cols)
    ins_cols = ", ".join(f"`{c}`" for c in cols)
    ins_vals = ", ".join(f"s.`{c}`" for c in cols)
    delete = f"WHEN MATCHED AND s.`{delete_flag}` THEN DELETE " if delete_flag else ""
    guard = f"AND NOT s.`{delete_flag}` " if delete_flag else ""
    spark.sql(
        f"MERGE INTO {sql_ref(spec, settings)} t USING {view} s ON {on} {delete}"
        f"WHEN MATCHED {guard}THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED {guard}THEN INSERT ({ins_cols}) VALUES ({ins_vals})"
    )
    spark.catalog.dropTempView(view)


def _effective_ts(day: dt.date | str | None) -> dt.datetime:
    if day is None:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    d = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
    return dt.datetime(d.year, d.month, d.day)


def resolve_customers(
    settings: Settings,
    *,
    day: dt.date | str | None = None,
    full_rebuild: bool = False,
    run_id: str | None = None,
    config: IdentityConfig | None = None,
    customers: DataFrame | None = None,
) -> dict[str, object]:
    """Resolve silver customers into golden identities (incrementally unless ``full_rebuild``); return counts.

    ``day`` is the effective date of the SCD2 versions written (default: now). ``customers`` replaces the
    ``silver.customers`` table as input (tests and benchmarks).
    """
    t0 = time.perf_counter()
    cfg = config or load_identity_config()
    run_id = run_id or new_run_id("identity")
    spark = get_spark(settings)
    effective = _effective_ts(day)
    stage = Stager(spark, settings, run_id)
    try:
        if customers is None:
            if not delta.table_exists(SILVER_CUSTOMERS, settings):
                raise IdentityResolutionError(
                    f"{SILVER_CUSTOMERS.qualified} does not exist at {SILVER_CUSTOMERS.location(settings)}; run refine first"
                )
            customers = delta.read_table(spark, SILVER_CUSTOMERS, settings)
        records = stage(prepare_records(customers, config=cfg, stage=stage), "records")
        counts = _resolve(spark, settings, cfg, records, stage, run_id=run_id, effective=effective, full_rebuild=full_rebuild)
    finally:
        stage.cleanup()
    counts["run_id"] = run_id
    counts["duration_s"] = round(time.perf_counter() - t0, 3)
    return counts


def _resolve(spark, settings, cfg, records, stage, *, run_id, effective, full_rebuild) -> dict[str, object]:
    has_state = delta.table_exists(IDENTITY_RECORDS, settings)
    old_records = _read(spark, IDENTITY_RECORDS, settings, RECORDS_SCHEMA)
    old_links = _read(spark, IDENTITY_LINKS, settings, LINKS_SCHEMA)
    old_candidates = _read(spark, IDENTITY_CANDIDATES, settings, CANDIDATES_SCHEMA)
    old_xref = _read(spark, CUSTOMER_XREF, settings, XREF_SCHEMA)
    # a state written before best matches kept no candidates: resolve everyone once
    incremental = has_state and delta.table_exists(IDENTITY_CANDIDATES, settings) and not full_rebuild

    current = records.select("record_key", "record_hash")
    removed = stage(old_records.select("record_key").join(current, "record_key", "left_anti"), "removed")
    if incremental:
        affected = current.join(old_records.select("record_key", F.col("record_hash").alias("_old")), "record_key", "left").where(
            F.col("_old").isNull() | (F.col("_old") != F.col("record_hash"))
        ).select("record_key")
    else:
        affected = current.select("record_key")
    affected = stage(affected, "affected")
    n_records = records.count()
    n_affected = affected.count()
    n_removed = removed.count()
    counts: dict[str, object] = {
        "records": n_records, "affected": n_affected, "removed": n_removed, "mode": "incremental" if incremental else "full",
    }
    if incremental and n_affected == 0 and n_removed == 0:
        counts.update(scope=0, new_links=0, clusters=0, merges=0, splits=0, new_ids=0, retired_ids=0)
        return counts

    touched = affected.unionByName(removed)

    def untouched(frame: DataFrame) -> DataFrame:
        return frame.join(touched.withColumnRenamed("record_key", "left_key"), "left_key", "left_anti").join(
            touched.withColumnRenamed("record_key", "right_key"), "right_key", "left_anti"
        )

    if incremental:
        kept = untouched(old_candidates.select(*CANDIDATE_COLUMNS))
        pairs = candidate_pairs(records, targets=affected)
    else:
        kept = spark.createDataFrame([], CANDIDATES_SCHEMA)
        pairs = candidate_pairs(records)
    # The scored pairs of this run's records, and those kept from the last run: accepted links and the near misses
    # that decide best matches per system, which are recomputed over all of them (so incremental = full rebuild).
    scored = stage(score_candidates(pairs, records, config=cfg), "scored")
    candidates = stage(kept.unionByName(scored.select(*CANDIDATE_COLUMNS)), "candidates")
    direct = candidates.where(F.col("match_rule").isNotNull()).select(*LINK_COLUMNS)
    links = stage(direct.unionByName(best_match_links(candidates, config=cfg)), "links")
    new_links = links.join(scored.select("left_key", "right_key"), ["left_key", "right_key"], "left_semi")

    # Scope: whole old link components touched by a change, plus the changed records and their new partners.
    if incremental:
        ends = lambda lk: lk.select(F.col("left_key").alias("record_key")).unionByName(lk.select(F.col("right_key").alias("record_key")))  # noqa: E731
        # links that appeared or went away: scored again, or a best match won or lost by someone else's change
        keys = ["left_key", "right_key"]
        dropped = old_links.join(links.select(*keys), keys, "left_anti")
        added = links.join(old_links.select(*keys), keys, "left_anti")
        seeds = touched.unionByName(ends(new_links)).unionByName(ends(added)).unionByName(ends(dropped)).distinct()
        comps = old_records.join(seeds, "record_key").select("component_id").distinct()
        scope = old_records.join(comps, "component_id").select("record_key").unionByName(seeds)
        scope = scope.join(current.select("record_key"), "record_key").distinct()
    else:
        scope = current.select("record_key")
    scope = stage(scope, "scope")
    in_scope_links = links.join(scope.withColumnRenamed("record_key", "left_key"), "left_key", "left_semi").join(
        scope.withColumnRenamed("record_key", "right_key"), "right_key", "left_semi"
    )
    in_scope_links = stage(in_scope_links, "scope_links")
    raw, clusters = _cluster(scope, in_scope_links, cfg, stage)
    best = C.best_link_per_record(clusters, in_scope_links)

    # Golden ids.
    members = clusters.join(
        records.select("record_key", F.coalesce("created_at", "updated_at").alias("first_ts")), "record_key"
    )
    members = stage(members, "members")
    previous = old_xref.select("record_key", "golden_id").join(
        scope.unionByName(removed), "record_key", "left_semi"
    )
    previous = stage(previous, "previous")
    prev_golden = _read(spark, GOLDEN_CUSTOMERS, settings, "golden_id string, first_seen timestamp").select("golden_id", "first_seen")
    used = prev_golden.select("golden_id").unionByName(
        _read(spark, IDENTITY_CHANGES, settings, CHANGES_SCHEMA).select(F.col("old_golden_id").alias("golden_id"))
    ).unionByName(old_xref.select("golden_id")).distinct()
    cluster_ids = stage(_assign_ids(members, previous, prev_golden, used, stage), "cluster_ids")
    assigned = stage(
        members.join(cluster_ids, "cluster_key").join(best, "record_key").select(
            "record_key", "cluster_key", "golden_id", "match_score", "match_rule"
        ),
        "assigned",
    )
    surviving = cluster_ids.select("golden_id")
    retired = stage(previous.select("golden_id").distinct().join(surviving, "golden_id", "left_anti"), "retired")
    changes = stage(
        I.identity_changes(previous, assigned, surviving, survivor_rule=I.SURVIVOR_RULES).select(
            F.lit(run_id).alias("run_id"), F.lit(effective).cast("timestamp").alias("changed_at"), "*"
        ),
        "changes",
    )

    # Output rows.
    src = records.select("record_key", *SILVER_CUSTOMER_COLUMNS)
    now = F.lit(effective).cast("timestamp")
    xref_rows = assigned.join(src.select("record_key", "source_system", "source_customer_id"), "record_key").select(
        "source_system", "source_customer_id", "record_key", "golden_id", "match_score", "match_rule",
        F.lit(run_id).alias("run_id"), now.alias("resolved_at"), F.lit(False).alias("_delete"),
    )
    gone = old_xref.join(removed, "record_key", "left_semi").select(
        "source_system", "source_customer_id", "record_key", "golden_id", "match_score", "match_rule",
        F.lit(run_id).alias("run_id"), now.alias("resolved_at"), F.lit(True).alias("_delete"),
    )
    golden = stage(
        build_golden(assigned.select("record_key", "golden_id").join(src, "record_key"), config=cfg).withColumn(
            "run_id", F.lit(run_id)
        ),
        "golden",
    )
    golden_rows = golden.withColumn("_delete", F.lit(False))
    types = dict(golden.dtypes)
    retired_rows = retired.select(
        *[F.col(c) if c == "golden_id" else F.lit(None).cast(types[c]).alias(c) for c in golden.columns],
        F.lit(True).alias("_delete"),
    )
    dim_current = _read(
        spark, DIM_CUSTOMER, settings, "golden_id string, attribute_hash string, is_current boolean"
    ).where(F.col("is_current")).select("golden_id", "attribute_hash")
    dim_stage = stage(stage_dim_changes(golden, dim_current, retired, valid_from=effective, run_id=run_id), "dim_stage")

    counts.update(
        scope=scope.count(),
        new_links=new_links.count(),
        clusters=cluster_ids.count(),
        merges=changes.where(F.col("change_type") == "merge").count(),
        splits=changes.where(F.col("change_type") == "split").count(),
        retired_ids=retired.count(),
        guard_splits=clusters.where(F.col("guard").isNotNull()).count(),
    )

    # Writes: change log, xref, golden, dim, then the internal state.
    if counts["merges"] or counts["splits"]:
        delta.append(changes, IDENTITY_CHANGES, settings)
    _merge(spark, xref_rows.unionByName(gone), CUSTOMER_XREF, settings, keys=("source_system", "source_customer_id"), delete_flag="_delete")
    _merge(spark, golden_rows.unionByName(retired_rows), GOLDEN_CUSTOMERS, settings, keys=("golden_id",), delete_flag="_delete")
    _write_dim(spark, settings, dim_stage)
    raw_comp = scope.join(raw.select(F.col("node").alias("record_key"), F.col("label").alias("_new_comp")), "record_key", "left")
    new_state = (
        current.join(old_records.select("record_key", "component_id"), "record_key", "left")
        .join(raw_comp.withColumn("_in_scope", F.lit(True)), "record_key", "left")
        .select(
            "record_key", "record_hash",
            F.when(F.col("_in_scope"), F.coalesce("_new_comp", "record_key")).otherwise(F.col("component_id")).alias("component_id"),
        )
    )
    # The record hashes last: until they are written, a rerun sees this run's records as changed and redoes them.
    delta.overwrite(links, IDENTITY_LINKS, settings)
    delta.overwrite(candidates, IDENTITY_CANDIDATES, settings)
    delta.overwrite(stage(new_state, "state_records"), IDENTITY_RECORDS, settings)
    return counts


def _write_dim(spark, settings: Settings, staged: DataFrame) -> None:
    """Apply staged SCD2 rows to gold.dim_customer with MERGE (creating the table on first use)."""
    if not delta.table_exists(DIM_CUSTOMER, settings):
        delta.overwrite(staged.where(F.col("merge_key").isNull()).drop("merge_key"), DIM_CUSTOMER, settings)
        return
    view = delta.temp_view(staged, "dim_stage")
    spark.sql(merge_dim_sql(sql_ref(DIM_CUSTOMER, settings), view))
    spark.catalog.dropTempView(view)
