"""Latest-wins ranking: the sparse ranking (window over repeated keys only) gives exactly the plain window's ranks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from transforms.silver.dedupe import dedupe_latest, rank_latest, rank_latest_sparse, row_hash

SCHEMA = ("k1 string, k2 int, _version_ts timestamp, _ingested_at timestamp, _source_file string, "
          "_line_number bigint, value string")
T0 = dt.datetime(2026, 1, 1, 8, 0)
T1 = dt.datetime(2026, 1, 2, 8, 0)

ROWS = [
    # single keys
    ("a", 1, T0, T0, "f1", 1, "only a1"),
    ("b", 1, None, T0, "f1", 2, "only b1, no version"),
    # a repeated key: the newer version wins
    ("a", 2, T0, T0, "f1", 3, "old"),
    ("a", 2, T1, T0, "f1", 4, "new"),
    # the same version: the later ingest, then the later file, then the later line wins
    ("c", 1, T0, T0, "f1", 5, "first ingest"),
    ("c", 1, T0, T1, "f1", 6, "second ingest"),
    ("c", 1, T0, T1, "f2", 1, "second ingest, later file"),
    ("c", 1, T0, T1, "f2", 2, "second ingest, later file, later line"),
    # a null version is the oldest
    ("d", 1, None, T1, "f3", 1, "no version"),
    ("d", 1, T0, T0, "f1", 7, "versioned"),
    # null key parts: one row alone, and two rows sharing a null part (the window ranks them as one key)
    (None, 1, T0, T0, "f1", 8, "null k1, alone"),
    ("e", None, T0, T0, "f1", 9, "null k2, older"),
    ("e", None, T1, T0, "f1", 10, "null k2, newer"),
    (None, None, T0, T0, "f1", 11, "both null"),
]


def _ranks(df):
    return sorted((str(r["k1"]), str(r["k2"]), r["_source_file"], r["_line_number"], r["_rank"]) for r in df.collect())


@pytest.fixture(scope="module")
def rows(spark):
    return spark.createDataFrame(ROWS, SCHEMA)


@pytest.mark.parametrize("listed", [50_000, 1, 0], ids=["hash-list", "join-above-the-list-cap", "join-always"])
def test_sparse_ranks_equal_the_window_ranks(rows, monkeypatch, listed):
    # ROWS repeat 4 keys (a/2, c/1, d/1 and e/null): a cap of 1 or 0 repeated hashes takes the join path
    import transforms.silver.dedupe as D

    monkeypatch.setattr(D, "MAX_LISTED_REPEATS", listed)
    sparse = rank_latest_sparse(rows, keys=("k1", "k2"))
    assert sparse.columns == [*rows.columns, "_rank"]
    assert _ranks(sparse) == _ranks(rank_latest(rows, keys=("k1", "k2")))


def test_sparse_ranks_pick_the_latest_of_each_key(rows):
    winners = {(r["k1"], r["k2"]): r["value"] for r in rank_latest_sparse(rows, keys=("k1", "k2")).collect()
               if r["_rank"] == 1}
    assert winners == {
        ("a", 1): "only a1", ("b", 1): "only b1, no version", ("a", 2): "new",
        ("c", 1): "second ingest, later file, later line", ("d", 1): "versioned",
        (None, 1): "null k1, alone", ("e", None): "null k2, newer", (None, None): "both null",
    }
    ranks = sorted(r["_rank"] for r in rank_latest_sparse(rows, keys=("k1", "k2")).where("k1 = 'c'").collect())
    assert ranks == [1, 2, 3, 4]


def test_sparse_ranks_on_one_key_and_an_empty_frame(spark, rows):
    assert _ranks(rank_latest_sparse(rows, keys=("k1",))) == _ranks(rank_latest(rows, keys=("k1",)))
    empty = spark.createDataFrame([], SCHEMA)
    assert rank_latest_sparse(empty, keys=("k1", "k2")).count() == 0


def test_dedupe_latest_keeps_one_row_per_key(rows):
    kept = sorted(r["value"] for r in dedupe_latest(rows, keys=("k1", "k2")).collect())
    assert len(kept) == 8 and "new" in kept and "old" not in kept


def test_mark_changes_compares_each_batch_row_with_its_stored_row_only(spark):
    from transforms.silver.dedupe import mark_changes

    schema = SCHEMA + ", row_hash string"
    stored = spark.createDataFrame([
        ("a", 1, T0, T0, "f1", 1, "a stored", "h-a"),
        ("b", 1, T0, T0, "f1", 2, "b stored", "h-b"),
        ("b", 1, T1, T0, "f1", 3, "b stored again, newer", "h-b2"),  # a broken key: the latest stored row counts
        (None, 2, T0, T0, "f1", 4, "null key part stored", "h-n"),
        ("z", 9, T0, T0, "f1", 5, "not in the batch", "h-z"),
    ], schema)
    batch = spark.createDataFrame([
        ("a", 1, T1, T1, "f2", 1, "a newer", "h-a'"),          # newer version: applies
        ("b", 1, T0, T1, "f2", 2, "b older than stored", "h-b"),  # older than the latest stored row: does not apply
        (None, 2, T0, T0, "f1", 4, "null key part again", "h-n"),  # the very same stored row: does not apply
        ("c", 1, T0, T1, "f2", 3, "c new", "h-c"),              # new key: applies
    ], schema)
    marked = mark_changes(batch, current=stored, keys=("k1", "k2"))
    assert marked.columns == [*batch.columns, "_applies"]
    assert {r["value"]: r["_applies"] for r in marked.collect()} == {
        "a newer": True, "b older than stored": False, "null key part again": False, "c new": True}


HASHED_SCHEMA = ("s string, l long, i int, d decimal(12,2), t timestamp, dd date, b boolean, f double, u string")
HASHED_ROWS = [
    ("x", 1, 2, Decimal("12.50"), dt.datetime(2026, 1, 2, 3, 4, 5, 6), dt.date(2026, 1, 2), True, 1.5, "é"),
    (None, None, None, None, None, None, None, None, None),
    ("", -1, 0, Decimal("-0.01"), dt.datetime(1899, 12, 31), dt.date(1, 1, 1), False, -0.0, "日本"),
]


@pytest.mark.unit
def test_row_hash_is_pinned_so_both_engines_compute_the_same_hash(spark):
    """The stored row_hash decides whether a row changed: Sail and Apache Spark (the conformance run) must give
    these exact values, or moving a warehouse between engines would rewrite every row once."""
    df = spark.createDataFrame(HASHED_ROWS, HASHED_SCHEMA)
    hashes = [r["h"] for r in df.select(row_hash(df.columns).alias("h")).collect()]
    assert hashes == ["01C3A7A52EE3ACDA2B3939744F233226", "F20C6979FD4105C09920FE3638727792",
                      "C8B2333019F3DF1508FAC52CD6C60C3A"]


@pytest.mark.unit
def test_row_hash_tells_apart_nulls_empty_strings_and_every_single_change(spark):
    base = HASHED_ROWS[0]
    variants = [base, ("x", None, 2, *base[3:]), (None, 1, 2, *base[3:]), ("", 1, 2, *base[3:])]
    for i in range(len(base)):  # every column changed alone, to another non-null value of its type
        other = HASHED_ROWS[2][i] if HASHED_ROWS[2][i] != base[i] else None
        variants.append((*base[:i], other, *base[i + 1:]))
    variants = list(dict.fromkeys(variants))  # "" for s is already there
    df = spark.createDataFrame([*variants, base], HASHED_SCHEMA)  # the base row twice
    hashes = [r["h"] for r in df.select(row_hash(df.columns).alias("h")).collect()]
    assert hashes[0] == hashes[-1]
    assert len(set(hashes[:-1])) == len(variants), hashes
    swapped = spark.createDataFrame([(None, "x"), ("x", None)], "a string, b string")
    a, b = [r["h"] for r in swapped.select(row_hash(["a", "b"]).alias("h")).collect()]
    assert a != b  # xxhash64 alone skips nulls and would hash both as 'x'
