"""Golden records: one row per golden id, attributes chosen by the survivorship rules declared in the config."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.identity_config import GOLDEN_ATTRIBUTES, IdentityConfig, SurvivorshipRule

_EPOCH_MIN = "0001-01-01 00:00:00"
_EPOCH_MAX = "9999-12-31 00:00:00"
SCD2_ATTRIBUTES: tuple[str, ...] = (*GOLDEN_ATTRIBUTES, "full_name", "marketing_opt_in")


def _ts() -> Column:
    """The record's recency: updated_at, else created_at, else the oldest possible time."""
    return F.coalesce(F.col("updated_at"), F.col("created_at"), F.lit(_EPOCH_MIN).cast("timestamp"))


def _rank_key(rule: SurvivorshipRule) -> Column:
    """A struct ordering records for a rule (the greatest wins); null when the rule's lead attribute is null."""
    lead = F.col(rule.attributes[0])
    if rule.strategy == "most_recent_non_null":
        key = F.struct(_ts().alias("a"), F.col("record_key").alias("b"))
    elif rule.strategy == "most_complete":
        key = F.struct(F.length(lead.cast("string")).alias("a"), _ts().alias("b"), F.col("record_key").alias("c"))
    else:  # source_priority: earlier in the list is better; unlisted sources come last
        prio = F.lit(0)
        for i, src in enumerate(reversed(rule.sources)):
            prio = F.when(F.col("source_system") == src, F.lit(i + 1)).otherwise(prio)
        key = F.struct(prio.alias("a"), _ts().alias("b"), F.col("record_key").alias("c"))
    return F.when(lead.isNotNull(), key)


def _consent() -> list[Column]:
    """Consent: opt-in only when strictly newer than every opt-out (an opt-out without a time counts as newest)."""
    opt = F.col("marketing_opt_in")
    ts = F.coalesce(F.col("updated_at"), F.col("created_at"))
    last_out = F.max(F.when(opt == F.lit(False), F.coalesce(ts, F.lit(_EPOCH_MAX).cast("timestamp"))))
    last_in = F.max(F.when(opt == F.lit(True), F.coalesce(ts, F.lit(_EPOCH_MIN).cast("timestamp"))))
    return [last_out.alias("_last_out"), last_in.alias("_last_in")]


def build_golden(members: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Records with ``golden_id`` (silver.customers columns + record_key) -> one golden row per id."""
    aggs: list[Column] = []
    picks: list[tuple[int, SurvivorshipRule]] = []
    for i, rule in enumerate(config.survivorship):
        value = F.struct(*[F.col(a).alias(a) for a in rule.attributes])
        aggs.append(F.max_by(value, _rank_key(rule)).alias(f"_pick{i}"))
        picks.append((i, rule))
    aggs += _consent()
    aggs += [
        F.count(F.lit(1)).alias("source_record_count"),
        F.array_sort(F.collect_set("source_system")).alias("source_systems"),
        F.min(F.coalesce(F.col("created_at"), F.col("updated_at"))).alias("first_seen"),
        F.max(F.greatest(F.col("updated_at"), F.col("created_at"))).alias("last_seen"),
    ]
    g = members.groupBy("golden_id").agg(*aggs)
    cols: list[Column] = [F.col("golden_id")]
    for i, rule in picks:
        cols += [F.col(f"_pick{i}.{a}").alias(a) for a in rule.attributes]
    consent = (
        F.when(F.col("_last_in").isNull() & F.col("_last_out").isNull(), F.lit(None).cast("boolean"))
        .when(F.col("_last_out").isNull(), F.lit(True))
        .when(F.col("_last_in").isNull(), F.lit(False))
        .otherwise(F.col("_last_in") > F.col("_last_out"))
    )
    consent_ts = F.when(consent, F.col("_last_in")).when(~consent, F.col("_last_out"))
    cols += [
        consent.alias("marketing_opt_in"),
        F.when(consent_ts.isin(F.lit(_EPOCH_MIN).cast("timestamp"), F.lit(_EPOCH_MAX).cast("timestamp")), F.lit(None))
        .otherwise(consent_ts).cast("timestamp").alias("consent_updated_at"),
        "source_record_count", "source_systems", "first_seen", "last_seen",
    ]
    out = g.select(*cols)
    out = out.withColumn("full_name", F.nullif(F.concat_ws(" ", F.col("first_name"), F.col("last_name")), F.lit("")))
    ordered = ["golden_id", *[a for a in SCD2_ATTRIBUTES if a != "marketing_opt_in"], "marketing_opt_in",
               "consent_updated_at", "source_record_count", "source_systems", "first_seen", "last_seen"]
    out = out.select(*ordered)
    payload = F.to_json(F.struct(*[F.col(a) for a in SCD2_ATTRIBUTES]))
    return out.withColumn("attribute_hash", F.sha2(payload, 256))
