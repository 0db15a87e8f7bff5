"""Row hashes and latest-wins deduplication on a business key.

Order of "latest" (the same in a batch and against silver): ``_version_ts`` (null = oldest), then ``_ingested_at``,
then ``_source_file``, then ``_line_number``; the greatest wins.
"""

from __future__ import annotations

from typing import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

LATEST_ORDER = ("_version_ts", "_ingested_at", "_source_file", "_line_number")
_EPOCH = "TIMESTAMP '1900-01-01 00:00:00'"
_MASK_BITS = 62  # null flags per BIGINT of the null mask


def row_hash(columns: Sequence[str]) -> Column:
    """32 hex digits: two ``xxhash64`` (seeded apart by a leading literal) of the columns' typed values and of which
    of them are null. Only ever compared with the hash of another version of the same key, to tell whether a row
    changed; stable across runs, and the same on Sail and Apache Spark (tests/test_silver_dedupe.py pins a value).

    ``xxhash64`` skips nulls, so ``(null, 'x')`` and ``('x', null)`` would hash alike: the null mask (one bit per
    column) tells them apart, and tells null from the empty string. It replaced sha2-256 of the columns' string forms,
    which cost 2.7x the engine CPU (1.8M silver events: 4.6 s against 1.7 s), most of it in turning every value into
    text and joining the texts. A table written before the change is not wrong: a row whose stored hash has the old
    form looks changed once, when its key is next refined, and is rewritten with the same values.
    """
    cols = [F.col(f"`{c}`") for c in columns]
    masks = []
    for start in range(0, len(cols), _MASK_BITS):
        bits = [F.when(c.isNull(), F.lit(1 << i).cast("bigint")).otherwise(F.lit(0).cast("bigint"))
                for i, c in enumerate(cols[start:start + _MASK_BITS])]
        mask = bits[0]
        for bit in bits[1:]:
            mask = mask + bit
        masks.append(mask)
    halves = [F.lpad(F.hex(F.xxhash64(F.lit(seed), *masks, *cols)), 16, "0")
              for seed in ("row_hash/1", "row_hash/2")]
    return F.concat(*halves)


def add_row_hash(df: DataFrame, *, columns: Sequence[str], output: str = "row_hash") -> DataFrame:
    """Add ``output`` = :func:`row_hash` of ``columns``."""
    return df.withColumn(output, row_hash(columns))


def rank_latest(df: DataFrame, *, keys: Sequence[str], order: Sequence[str] = LATEST_ORDER, output: str = "_rank") -> DataFrame:
    """Add ``output``: 1 for the latest record of each key (see module doc), 2.. for the older duplicates."""
    w = Window.partitionBy(*keys).orderBy(*[F.col(c).desc_nulls_last() for c in order])
    return df.withColumn(output, F.row_number().over(w))


#: At most this many repeated key hashes are picked by an IN list; more are flagged by a join.
MAX_LISTED_REPEATS = 50_000


def rank_latest_sparse(df: DataFrame, *, keys: Sequence[str], order: Sequence[str] = LATEST_ORDER,
                       output: str = "_rank") -> DataFrame:
    """:func:`rank_latest`, with the window sorting only the rows whose key repeats.

    Most keys of a batch occur once; their rows get rank 1 without being sorted. One aggregate (run here) finds the
    key hashes (``xxhash64``) that occur more than once. When there are at most ``MAX_LISTED_REPEATS`` of them (the
    usual case), the rows to rank are picked by an IN list of those hashes, without joining the batch; else by a
    join with the repeated keys. A hash collision only sends a few more rows through the window, which ranks them by
    their real key, and a key with a null part always goes through the window: the ranks are exactly the window's.
    The input is read more than once, so give it a stored or staged frame, not an expensive plan.
    """
    columns = [F.col(f"`{c}`") for c in df.columns]
    key_hash = F.xxhash64(*[F.col(f"`{k}`") for k in keys])
    repeated_hashes = (df.groupBy(key_hash.alias("_rank_key_hash")).agg(F.count(F.lit(1)).alias("_n"))
                       .where("_n > 1").select("_rank_key_hash").limit(MAX_LISTED_REPEATS + 1).collect())
    if len(repeated_hashes) <= MAX_LISTED_REPEATS:
        flagged = df
        windowed = key_hash.isin([r[0] for r in repeated_hashes]) if repeated_hashes else F.lit(False)
    else:
        repeats = "_rank_key_repeats"
        repeated = (df.groupBy(*[F.col(f"`{k}`") for k in keys]).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1")
                    .select(*[F.col(f"`{k}`") for k in keys], F.lit(True).alias(repeats)))
        flagged = df.join(repeated, on=list(keys), how="left").select(*columns, repeats)
        windowed = F.col(repeats).isNotNull()
    for k in keys:
        windowed = windowed | F.col(f"`{k}`").isNull()
    single = flagged.where(~windowed).select(*columns, F.lit(1).alias(output))
    many = rank_latest(flagged.where(windowed).select(*columns), keys=keys, order=order, output=output)
    return single.unionByName(many)


def dedupe_latest(df: DataFrame, *, keys: Sequence[str], order: Sequence[str] = LATEST_ORDER) -> DataFrame:
    """Keep one record per key: the latest by ``order`` (greatest first, nulls oldest)."""
    return rank_latest(df, keys=keys, order=order, output="_dedupe_rank").filter("_dedupe_rank = 1").drop("_dedupe_rank")


def supersedes_sql(new: str = "s.", old: str = "t.") -> str:
    """SQL condition: the ``new`` record replaces the stored ``old`` one (newer version, or the same version with
    different content from a later file). A rerun of the same bronze rows is never newer, so it changes nothing.

    ``new`` and ``old`` are prefixes of the column names (a table alias with its dot, or a renaming prefix).
    """
    n = lambda c: f"{new}{c}"  # noqa: E731
    o = lambda c: f"{old}{c}"  # noqa: E731
    v_new = f"coalesce({n('_version_ts')}, {_EPOCH})"
    v_old = f"coalesce({o('_version_ts')}, {_EPOCH})"
    later_file = (
        f"({n('_ingested_at')} > {o('_ingested_at')} OR ({n('_ingested_at')} = {o('_ingested_at')} AND "
        f"({n('_source_file')} > {o('_source_file')} OR ({n('_source_file')} = {o('_source_file')} AND "
        f"{n('_line_number')} > {o('_line_number')}))))"
    )
    return f"({v_new} > {v_old} OR ({v_new} = {v_old} AND {n('row_hash')} <> {o('row_hash')} AND {later_file}))"


def _same_key(keys: Sequence[str], prefix: str) -> Column:
    """Every key column equals (null-safe) the other side's copy of it, named ``prefix + key``."""
    cond = None
    for k in keys:
        c = F.col(f"`{k}`").eqNullSafe(F.col(f"`{prefix}{k}`"))
        cond = c if cond is None else cond & c
    return cond


def mark_changes(batch: DataFrame, *, current: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Add ``_applies``: true when a (deduplicated) batch record is new to ``current`` or supersedes its row there."""
    compared = ("_version_ts", "_ingested_at", "_source_file", "_line_number", "row_hash")
    # Only the stored rows whose key is in the batch matter: a daily batch touches a small part of the table.
    batch_keys = batch.select(*[F.col(f"`{k}`").alias(f"_batch_{k}") for k in keys]).distinct()
    touched = current.join(batch_keys, _same_key(keys, "_batch_"), "left_semi")
    # One stored row per key (a table that broke its key is caught by the table-scope rules, not multiplied here).
    touched = dedupe_latest(touched, keys=keys)
    cur = touched.select(*[F.col(f"`{c}`").alias(f"_cur_{c}") for c in dict.fromkeys((*keys, *compared))],
                         F.lit(True).alias("_cur_found"))
    joined = batch.join(cur, _same_key(keys, "_cur_"), "left")
    # new to silver (no stored row, whatever its key holds: a null key part matches a stored null), or newer
    applies = F.col("_cur_found").isNull() | F.coalesce(F.expr(supersedes_sql("", "_cur_")), F.lit(False))
    return joined.withColumn("_applies", applies).drop(*[c for c in cur.columns])
