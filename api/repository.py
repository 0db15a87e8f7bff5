"""The gold repository: the published gold tables loaded into an immutable in-memory index, swapped atomically.

A :class:`GoldSnapshot` is built from exactly the table versions of one publication manifest (read through
``deltalake``, never Spark) and never changes afterwards. :class:`GoldRepository` holds the current snapshot; a
background thread polls the manifest folder and, when a newer publication appears, builds the next snapshot off to
the side and replaces the reference in one assignment. A request takes the snapshot once, at its start, so every
response reflects one publication and in-flight requests finish on the snapshot they began with.

Index layout (memory stays columnar; no Python object per row):
- customers: one Arrow table, row ``r``; lookups by golden id, source id, email, phone and name token + postcode go
  through :class:`HashIndex` (sorted 64-bit hashes + row numbers, verified against the row on a hit).
- child tables (xref, metrics, loyalty, vouchers, subscriptions, favourite categories from sales): sorted by
  customer row with an offsets array, so a customer's rows are one slice.
- retired ids (from ``gold.identity_changes``, when the publication lists it): a dict retired golden id ->
  :class:`RetiredId` (one small object per merge, not per customer), see :func:`retired_ids`.
"""

from __future__ import annotations

import bisect
import ctypes
import datetime as dt
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.errors import LakehouseError
from lakehouse.normalize import name_tokens, normalize_email, normalize_phone, normalize_postcode
from lakehouse.settings import Settings

from lakehouse.manifest import latest_manifest

log = logging.getLogger("lakehouse.api")

TIERS = ("bronze", "silver", "gold", "platinum")
SEGMENTS = ("Champion", "Loyal", "Potential Loyalist", "New Customer", "Cart Abandoner", "Visitor")

_TS = pa.timestamp("us", tz="UTC")
_LIST = pa.list_(pa.string())

# Columns the API reads from each published table, with the type the index holds them in (builders may add more
# columns; missing optional columns read as null).
CUSTOMER_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "first_name": pa.string(), "last_name": pa.string(), "full_name": pa.string(),
    "email": pa.string(), "phone_e164": pa.string(), "date_of_birth": pa.date32(), "address_line1": pa.string(),
    "city": pa.string(), "postcode": pa.string(), "country": pa.string(), "marketing_opt_in": pa.bool_(),
    "source_record_count": pa.int64(), "source_systems": _LIST, "first_seen": _TS, "last_seen": _TS,
}
XREF_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "source_system": pa.string(), "source_customer_id": pa.string(),
    "match_score": pa.float64(), "match_rule": pa.string(),
}
METRIC_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "total_sessions": pa.int64(), "total_views": pa.int64(), "total_cart_adds": pa.int64(),
    "total_purchases": pa.int64(), "total_revenue": pa.float64(), "avg_order_value": pa.float64(),
    "first_activity_date": pa.date32(), "last_activity_date": pa.date32(), "recency_days": pa.int64(),
    "r_score": pa.int64(), "f_score": pa.int64(), "m_score": pa.int64(), "rfm_score": pa.int64(),
    "customer_segment": pa.string(), "churn_risk": pa.string(), "online_orders": pa.int64(),
    "store_orders": pa.int64(), "online_revenue": pa.float64(), "store_revenue": pa.float64(),
}
LOYALTY_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "loyalty_score": pa.float64(), "loyalty_tier": pa.string(),
    **{f"{c}_{k}": pa.float64() for c in ("rfm", "tenure", "channel", "value") for k in ("component", "weight")},
    "expected_future_value": pa.float64(), "tenure_days": pa.int64(), "as_of_date": pa.date32(),
}
VOUCHER_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "rank": pa.int64(), "sku": pa.string(), "product_name": pa.string(),
    "category_l1": pa.string(), "reason": pa.string(), "score": pa.float64(), "voucher_pct": pa.float64(),
    "voucher_value": pa.float64(), "valid_from": pa.date32(), "valid_to": pa.date32(),
}
SUBSCRIPTION_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "sku": pa.string(), "product_name": pa.string(), "purchase_count": pa.int64(),
    "mean_interval_days": pa.float64(), "interval_cv": pa.float64(), "last_purchase_date": pa.date32(),
    "next_expected_date": pa.date32(),
}
SALES_COLUMNS: dict[str, pa.DataType] = {
    "golden_id": pa.string(), "net_amount": pa.float64(), "line_type": pa.string(), "category_l1": pa.string(),
}
CHANGE_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.string(), "changed_at": _TS, "change_type": pa.string(), "old_golden_id": pa.string(),
    "new_golden_id": pa.string(),
}
REQUIRED_TABLES = ("gold.golden_customers", "gold.customer_xref")
FAVOURITE_CATEGORIES = 3


class GoldUnavailable(LakehouseError):
    """No publication can be served (none yet, or the published tables cannot be read)."""


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------
def _single(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous Arrow array of a column."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type)
    return col


class HashIndex:
    """String key -> row numbers, as sorted 64-bit hashes; callers verify a hit against the row (collisions)."""

    __slots__ = ("_hashes", "_rows")

    def __init__(self, keys: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None) -> None:
        valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
        rows = np.arange(len(keys), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        values = keys.filter(pa.array(valid)).to_pylist()
        hashes = np.fromiter(map(hash, values), dtype=np.int64, count=len(values))
        del values
        rows = rows[valid]
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._rows = rows[order].astype(np.int32)

    def get(self, key: str) -> np.ndarray:
        """Candidate rows of ``key`` (possibly empty)."""
        h = hash(key)
        lo = int(np.searchsorted(self._hashes, h, "left"))
        hi = int(np.searchsorted(self._hashes, h, "right"))
        return self._rows[lo:hi]

    @property
    def nbytes(self) -> int:
        return int(self._hashes.nbytes + self._rows.nbytes)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _getter(arr: pa.Array) -> tuple[Callable[[int], Any], Callable[[int, int], list[Any]], int]:
    """Fast cell and slice readers for one column (dates, timestamps and numbers via numpy), and its bytes."""
    typ = arr.type
    valid = None if arr.null_count == 0 else pc.is_valid(arr).to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(typ):
        values = arr.dictionary.to_pylist() + [None]
        codes = pc.fill_null(arr.indices, len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int32)
        code = codes.item
        return (lambda i: values[code(i)]), (lambda lo, hi: [values[c] for c in codes[lo:hi].tolist()]), codes.nbytes
    if pa.types.is_date32(typ) or pa.types.is_timestamp(typ):
        if pa.types.is_date32(typ):
            raw = pc.fill_null(arr.cast(pa.int32()), 0).to_numpy(zero_copy_only=False)

            def convert(x: Any) -> Any:
                return dt.date.fromordinal(_EPOCH_ORDINAL + int(x))
        else:
            raw = pc.fill_null(arr.cast(pa.timestamp("us", tz=typ.tz)).cast(pa.int64()), 0).to_numpy(zero_copy_only=False)

            def convert(x: Any) -> Any:
                return _EPOCH_UTC + dt.timedelta(microseconds=int(x))
        at = raw.item
        if valid is None:
            return (lambda i: convert(at(i))), (lambda lo, hi: [convert(x) for x in raw[lo:hi].tolist()]), raw.nbytes
        ok_at = valid.item
        return ((lambda i: convert(at(i)) if ok_at(i) else None),
                (lambda lo, hi: [convert(x) if ok else None for x, ok in zip(raw[lo:hi].tolist(), valid[lo:hi].tolist())]),
                raw.nbytes + valid.nbytes)
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
        raw = pc.fill_null(arr, False if pa.types.is_boolean(typ) else 0).to_numpy(zero_copy_only=False)
        at = raw.item
        if valid is None:
            return at, (lambda lo, hi: raw[lo:hi].tolist()), raw.nbytes
        ok_at = valid.item
        return ((lambda i: at(i) if ok_at(i) else None),
                (lambda lo, hi: [x if ok else None for x, ok in zip(raw[lo:hi].tolist(), valid[lo:hi].tolist())]),
                raw.nbytes + valid.nbytes)
    if (pa.types.is_string(typ) or pa.types.is_large_string(typ)) and len(arr):
        # Decode straight from the Arrow buffers: about twice as fast as Scalar.as_py() for one cell.
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_string(typ) else np.int32)
        offsets = offsets[arr.offset: arr.offset + len(arr) + 1]
        data = memoryview(arr.buffers()[2]) if arr.buffers()[2] is not None else memoryview(b"")
        item = offsets.item

        ok_at = valid.item if valid is not None else None

        def cell(i: int) -> str | None:
            if ok_at is not None and not ok_at(i):
                return None
            return str(data[item(i):item(i + 1)], "utf-8")

        return cell, (lambda lo, hi: [cell(i) for i in range(lo, hi)]), arr.nbytes
    return (lambda i: arr[i].as_py()), (lambda lo, hi: arr.slice(lo, hi - lo).to_pylist()), arr.nbytes


class Columns:
    """Fast row access to an Arrow table: numbers, dates and codes through numpy, strings through Arrow."""

    __slots__ = ("names", "_cell", "_slice", "_by_name", "nbytes")

    def __init__(self, table: pa.Table) -> None:
        self.names = tuple(table.column_names)
        readers = [_getter(_single(table.column(name))) for name in self.names]
        self._cell = [r[0] for r in readers]
        self._slice = [r[1] for r in readers]
        self._by_name = dict(zip(self.names, self._cell))
        self.nbytes = int(sum(r[2] for r in readers))

    def value(self, name: str, i: int) -> Any:
        """One cell."""
        return self._by_name[name](i)

    def cell(self, name: str) -> Callable[[int], Any]:
        """The reader of one column's cells."""
        return self._by_name[name]

    def row(self, i: int) -> dict[str, Any]:
        """One row as a dict."""
        return {name: get(i) for name, get in zip(self.names, self._cell)}

    def rows(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Rows ``lo:hi`` as dicts."""
        cols = [read(lo, hi) for read in self._slice]
        return [dict(zip(self.names, vals)) for vals in zip(*cols)]


class Groups:
    """Rows of a child table grouped by customer row: rows of customer ``r`` are ``offsets[r]:offsets[r+1]``."""

    __slots__ = ("cols", "offsets")

    def __init__(self, table: pa.Table, offsets: np.ndarray) -> None:
        self.cols = Columns(table)
        self.offsets = offsets

    def rows(self, crow: int) -> list[dict[str, Any]]:
        """Every row of a customer, in the group's order."""
        lo, hi = int(self.offsets[crow]), int(self.offsets[crow + 1])
        return self.cols.rows(lo, hi) if hi > lo else []

    def first(self, crow: int) -> dict[str, Any] | None:
        """The customer's first row, or None."""
        lo, hi = int(self.offsets[crow]), int(self.offsets[crow + 1])
        return self.cols.row(lo) if hi > lo else None

    def first_value(self, crow: int, column: str) -> Any:
        """One column of the customer's first row, or None."""
        lo, hi = int(self.offsets[crow]), int(self.offsets[crow + 1])
        return self.cols.value(column, lo) if hi > lo else None

    @property
    def nbytes(self) -> int:
        return int(self.cols.nbytes + self.offsets.nbytes)


def _cast(column: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """Cast a column to the index type, tolerating the usual builder variations (decimal, date vs timestamp, csv lists)."""
    if column.type == target:
        return column
    if pa.types.is_list(target) and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return pc.cast(pc.split_pattern(column, ","), target)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is None:
        return pc.cast(pc.assume_timezone(column, "UTC"), target, safe=False)
    if pa.types.is_timestamp(target) and pa.types.is_date(column.type):
        return pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC")
    return pc.cast(column, target, safe=False)


def conform(table: pa.Table, columns: dict[str, pa.DataType], *, name: str) -> pa.Table:
    """The table reduced to ``columns`` in the index types (absent columns null); one chunk per column."""
    arrays = []
    for col, typ in columns.items():
        if col in table.column_names:
            try:
                arrays.append(_single(_cast(table.column(col), typ)))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise GoldUnavailable(
                    f"{name}.{col} has type {table.column(col).type}, which the API cannot read as {typ}: {exc}"
                ) from None
        else:
            arrays.append(pa.nulls(table.num_rows, typ))
    return pa.table(arrays, names=list(columns))


def _encode(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """Dictionary-encode low-cardinality string columns (values read back unchanged, memory shrinks)."""
    for col in columns:
        if col in table.column_names and not pa.types.is_dictionary(table.column(col).type):
            idx = table.column_names.index(col)
            table = table.set_column(idx, col, pc.dictionary_encode(_single(table.column(col))))
    return table


def _sort_key(table: pa.Table, column: str, *, descending: bool = False) -> np.ndarray:
    """A numeric numpy sort key of a numeric, date or timestamp column (nulls last)."""
    arr = _single(table.column(column))
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.int32())
    elif pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    values = pc.fill_null(arr.cast(pa.float64()), np.inf).to_numpy(zero_copy_only=False)
    return -values if descending else values


def _group_by_customer(table: pa.Table, crow: np.ndarray, n_customers: int, *,
                       then_by: tuple[np.ndarray, ...] = (), encode: tuple[str, ...] = ()) -> tuple[pa.Table, np.ndarray]:
    """Sort a child table by customer row (then by ``then_by`` keys), drop rows of unknown customers (crow -1).

    Returns the sorted table (``golden_id`` dropped, ``encode`` columns dictionary-encoded) and the offsets array.
    """
    table = _encode(table, encode)  # before the take: taking dictionary indices is cheap
    keep = np.flatnonzero(crow >= 0)
    keys = tuple(k[keep] for k in reversed(then_by)) + (crow[keep],)
    order = keep[np.lexsort(keys)] if keep.size else keep
    table = table.take(pa.array(order, pa.int64()))
    if "golden_id" in table.column_names:
        table = table.drop_columns(["golden_id"])
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    if keep.size:
        np.cumsum(np.bincount(crow[keep], minlength=n_customers), out=offsets[1:])
    return table.combine_chunks(), offsets


def _codes(table: pa.Table, offsets: np.ndarray, column: str, values: tuple[str, ...], *, lower: bool = False) -> np.ndarray:
    """Per customer row: index in ``values`` of the column's value in the customer's first row (-1: none or other)."""
    n = offsets.size - 1
    codes = np.full(n, -1, dtype=np.int8)
    has = np.flatnonzero(np.diff(offsets) > 0)
    if has.size == 0:
        return codes
    col = _single(table.column(column)).cast(pa.string())
    if lower:
        col = pc.utf8_lower(col)
    per_row = pc.fill_null(pc.index_in(col, value_set=pa.array([v.lower() if lower else v for v in values])), -1)
    codes[has] = per_row.to_numpy(zero_copy_only=False).astype(np.int8)[offsets[:-1][has]]
    return codes


# ---------------------------------------------------------------------------------------------------------------
# Retired golden ids (merges recorded in gold.identity_changes)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetiredId:
    """A golden id retired by a merge: the run that retired it, the ids it merged into, the current survivors.

    ``survivors`` are the golden ids of the publication reached by following later merges from ``merged_into``
    (sorted): exactly one means the API redirects; none means the chain ends outside the publication; several mean
    the old identity's records now belong to several customers and the API does not pick one.
    """

    golden_id: str
    run_id: str | None
    merged_into: tuple[str, ...]
    survivors: tuple[str, ...]


def retired_ids(changes: pa.Table, is_current: Callable[[str], bool]) -> dict[str, RetiredId]:
    """Retired golden id -> :class:`RetiredId`, from ``gold.identity_changes`` rows (``CHANGE_COLUMNS``).

    Only ``merge`` rows redirect: a split keeps the old id on one part (transforms/gold/identity/ids.py), so the id
    stays current. For an id merged in several runs, the latest run's rows count (``changed_at``, then ``run_id``).
    Chains are followed (A->B, B->C: A->C) with a visited set, so a cycle ends instead of looping; an id that is
    current in the publication is never redirected, and a chain stops at the first current id it reaches.
    """
    if changes.num_rows == 0:
        return {}
    changes = conform(changes, CHANGE_COLUMNS, name="gold.identity_changes")
    merge = pc.equal(pc.utf8_lower(pc.fill_null(changes.column("change_type"), "")), "merge")
    ok = pc.and_(pc.and_(merge, pc.is_valid(changes.column("old_golden_id"))), pc.is_valid(changes.column("new_golden_id")))
    rows = changes.filter(ok)
    # Latest run per old id by (changed_at, run_id); times as integers (null: the oldest), no datetime per row.
    micros = pc.fill_null(rows.column("changed_at").cast(pa.int64()), -(2**63)).to_pylist()
    columns = (rows.column(c).to_pylist() for c in ("old_golden_id", "new_golden_id", "run_id"))
    latest: dict[str, tuple[tuple[int, str], str | None, set[str]]] = {}
    for (old, new, run), at in zip(zip(*columns), micros):
        if old == new:
            continue
        when = (at, run or "")
        seen = latest.get(old)
        if seen is None or when > seen[0]:
            latest[old] = (when, run, {new})
        elif when == seen[0]:
            seen[2].add(new)
    edges = {old: tuple(sorted(targets)) for old, (_, _, targets) in latest.items()}
    out: dict[str, RetiredId] = {}
    for old, (_, run, _) in latest.items():
        if is_current(old):
            continue  # current again: answered as itself
        survivors: set[str] = set()
        visited = {old}
        frontier = list(edges[old])
        while frontier:
            gid = frontier.pop()
            if gid in visited:
                continue
            visited.add(gid)
            if is_current(gid):
                survivors.add(gid)
            else:
                frontier.extend(edges.get(gid, ()))
        out[old] = RetiredId(old, run, edges[old], tuple(sorted(survivors)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The snapshot
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestInfo:
    """What the snapshot was built from."""

    version: int
    published_at: str
    run_id: str
    run_date: str


class GoldSnapshot:
    """One publication's gold, indexed for point lookups; immutable once built."""

    def __init__(self, manifest: ManifestInfo, tables: Mapping[str, pa.Table] | Callable[[str], pa.Table | None]) -> None:
        """Index ``tables`` (by qualified name), given as a mapping or as a reader called once per table.

        With a reader, each table is read when its turn comes and its raw form is dropped once indexed, which keeps
        the peak memory of a build near one raw table plus the index.
        """
        t0 = time.perf_counter()
        self.manifest = manifest
        self.version = manifest.version
        self.loaded_at = dt.datetime.now(dt.timezone.utc)
        self.phase_seconds: dict[str, float] = {"read": 0.0}
        source = tables.get if isinstance(tables, Mapping) else tables

        def read(name: str) -> pa.Table:
            started = time.perf_counter()
            table = source(name)
            self.phase_seconds["read"] = round(self.phase_seconds["read"] + time.perf_counter() - started, 3)
            return table if table is not None else pa.table({})

        def lap(phase: str, since: list[float] = [t0]) -> None:  # noqa: B006 - a tiny stopwatch
            pa.default_memory_pool().release_unused()  # drop the phase's raw table before the next one is read
            now = time.perf_counter()
            self.phase_seconds[phase] = round(now - since[0], 3)
            since[0] = now

        customers = conform(read("gold.golden_customers"), CUSTOMER_COLUMNS, name="gold.golden_customers")
        customers = customers.filter(pc.is_valid(customers.column("golden_id"))).combine_chunks()
        self.n = customers.num_rows
        self.customers = Columns(customers)
        ids = _single(customers.column("golden_id"))
        self._id_at: Callable[[int], str] = self.customers.cell("golden_id")
        self._by_id = HashIndex(ids)
        self._order = pc.sort_indices(ids).to_numpy().astype(np.int32)  # rows in golden id order
        self._rank = np.empty(self.n, dtype=np.int32)  # row -> position in golden id order
        self._rank[self._order] = np.arange(self.n, dtype=np.int32)
        lap("customers")

        def crow_of(table: pa.Table) -> np.ndarray:
            if table.num_rows == 0:
                return np.zeros(0, dtype=np.int64)
            found = pc.index_in(table.column("golden_id"), value_set=ids)
            return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)

        # Cross-reference: source id -> xref row -> customer; customer -> its source records.
        xref = conform(read("gold.customer_xref"), XREF_COLUMNS, name="gold.customer_xref")
        xref = xref.append_column("_key", pc.binary_join_element_wise(xref.column("source_system"),
                                                                      xref.column("source_customer_id"), "\x1f"))
        xref, offsets = _group_by_customer(xref, crow_of(xref), self.n, encode=("source_system", "match_rule"))
        self._by_source = HashIndex(xref.column("_key"))
        xref = xref.drop_columns(["_key"])
        self.xref = Groups(xref, offsets)
        self._xref_crow = np.repeat(np.arange(self.n, dtype=np.int32), np.diff(offsets))
        lap("xref")

        # Contact indexes (values as gold stores them, canonicalised the way the normalizers do).
        email = _single(pc.utf8_lower(pc.utf8_trim_whitespace(customers.column("email"))))
        self._by_email = HashIndex(email)
        self._email_at, _, email_bytes = _getter(email)
        self._by_phone = HashIndex(customers.column("phone_e164"))
        postcode = _single(pc.replace_substring_regex(
            pc.utf8_upper(pc.utf8_trim_whitespace(customers.column("postcode"))), r"\s+", " "))
        self._by_name_postcode = self._name_index(customers, postcode)
        self._postcode_at, _, postcode_bytes = _getter(postcode)
        self._contact_bytes = email_bytes + postcode_bytes
        lap("contacts")

        # One row per customer.
        metrics = conform(read("gold.customer_metrics"), METRIC_COLUMNS, name="gold.customer_metrics")
        metrics, offsets = _group_by_customer(metrics, crow_of(metrics), self.n, encode=("customer_segment", "churn_risk"))
        self.metrics = Groups(metrics, offsets)
        self._segment_code = _codes(metrics, offsets, "customer_segment", SEGMENTS)
        loyalty = conform(read("gold.loyalty_scores"), LOYALTY_COLUMNS, name="gold.loyalty_scores")
        loyalty, offsets = _group_by_customer(loyalty, crow_of(loyalty), self.n, encode=("loyalty_tier",))
        self.loyalty = Groups(loyalty, offsets)
        self._tier_code = _codes(loyalty, offsets, "loyalty_tier", TIERS, lower=True)
        lap("metrics_loyalty")

        # Many rows per customer.
        vouchers = conform(read("gold.voucher_recommendations"), VOUCHER_COLUMNS,
                           name="gold.voucher_recommendations")
        self.vouchers = Groups(*_group_by_customer(
            vouchers, crow_of(vouchers), self.n, then_by=(_sort_key(vouchers, "rank"),),
            encode=("sku", "product_name", "category_l1", "reason")))
        subs = conform(read("gold.subscription_candidates"), SUBSCRIPTION_COLUMNS,
                       name="gold.subscription_candidates")
        self.subscriptions = Groups(*_group_by_customer(
            subs, crow_of(subs), self.n, then_by=(_sort_key(subs, "next_expected_date"),), encode=("sku", "product_name")))
        lap("vouchers_subscriptions")
        self.categories = self._favourite_categories(read("gold.fact_sales"), crow_of)
        lap("categories")

        # Listing filters: tier and segment code per customer row, and per value the positions in golden id order.
        self._tier_positions = {i: np.flatnonzero(self._tier_code[self._order] == i).astype(np.int32)
                                for i in range(len(TIERS))}
        self._segment_positions = {i: np.flatnonzero(self._segment_code[self._order] == i).astype(np.int32)
                                   for i in range(len(SEGMENTS))}
        lap("listing")

        # Retired ids -> survivors (optional table: older publications without it serve no redirects).
        self.retired = retired_ids(read("gold.identity_changes"), lambda gid: self.customer_row(gid) is not None)
        self._retired_bytes = sum(sys.getsizeof(k) + sys.getsizeof(v) + sum(map(sys.getsizeof, v.survivors))
                                  for k, v in self.retired.items()) + sys.getsizeof(self.retired)
        lap("retired")
        self.load_seconds = round(time.perf_counter() - t0, 3)

    # -- building ------------------------------------------------------------------------------------------------
    def _name_index(self, customers: pa.Table, postcodes: pa.Array) -> HashIndex:
        """Index of ``token|postcode`` keys: every 2+ character token of the customer's name, with the postcode."""
        first_last = pc.binary_join_element_wise(pc.fill_null(customers.column("first_name"), ""),
                                                 pc.fill_null(customers.column("last_name"), ""), " ")
        names = pc.coalesce(customers.column("full_name"), first_last)
        folded = pc.replace_substring_regex(pc.utf8_lower(pc.utf8_normalize(names, "NFKD")), r"\p{Mn}", "")
        folded = pc.utf8_trim(pc.replace_substring_regex(folded, r"[^0-9a-z]+", " "), " ")
        tokens = _single(pc.split_pattern(folded, " "))
        parent = pc.list_parent_indices(tokens)
        flat = pc.list_flatten(tokens)
        pcs = pc.take(postcodes, parent)
        ok = pc.and_(pc.greater_equal(pc.utf8_length(flat), 2), pc.is_valid(pcs))
        keys = pc.binary_join_element_wise(flat.filter(ok), pcs.filter(ok), "|")
        return HashIndex(keys, parent.filter(ok).to_numpy())

    def _favourite_categories(self, sales: pa.Table | None, crow_of: Callable[[pa.Table], np.ndarray]) -> Groups:
        """Per customer: the top categories by net sales revenue, from the sale lines of ``gold.fact_sales``."""
        empty = pa.table({"category": pa.array([], pa.string()), "lines": pa.array([], pa.int64()),
                          "net_revenue": pa.array([], pa.float64())})
        if sales is None or sales.num_rows == 0:
            return Groups(empty, np.zeros(self.n + 1, dtype=np.int64))
        sales = conform(sales, SALES_COLUMNS, name="gold.fact_sales")
        sales = sales.filter(pc.equal(pc.fill_null(sales.column("line_type"), "sale"), "sale"))
        crow = crow_of(sales)
        cats = _single(pc.dictionary_encode(pc.fill_null(sales.column("category_l1"), "unknown")))
        names = cats.dictionary.to_pylist()
        code = cats.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        net = pc.fill_null(sales.column("net_amount"), 0.0).to_numpy(zero_copy_only=False)
        keep = crow >= 0
        k = max(len(names), 1)
        uniq, inverse = np.unique(crow[keep] * k + code[keep], return_inverse=True)
        sums = np.bincount(inverse, weights=net[keep], minlength=uniq.size)
        lines = np.bincount(inverse, minlength=uniq.size)
        ucrow, ucode = uniq // k, uniq % k
        name_rank = np.argsort(np.argsort(np.array(names, dtype=object))) if names else np.zeros(0, dtype=np.int64)
        order = np.lexsort((name_rank[ucode] if names else ucode, -np.round(sums, 2), ucrow))
        ucrow, ucode, sums, lines = ucrow[order], ucode[order], sums[order], lines[order]
        counts = np.bincount(ucrow, minlength=self.n)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        within = np.arange(ucrow.size) - np.repeat(starts, counts)
        top = within < FAVOURITE_CATEGORIES
        table = pa.table({
            "category": pa.DictionaryArray.from_arrays(pa.array(ucode[top].astype(np.int32)), pa.array(names, pa.string())),
            "lines": pa.array(lines[top].astype(np.int64)),
            "net_revenue": pa.array(np.round(sums[top], 2)),
        })
        offsets = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.minimum(counts, FAVOURITE_CATEGORIES), out=offsets[1:])
        return Groups(table, offsets)

    # -- reading -------------------------------------------------------------------------------------------------
    def customer_row(self, golden_id: str) -> int | None:
        """Row of a golden id, or None."""
        for r in self._by_id.get(golden_id):
            if self._id_at(int(r)) == golden_id:
                return int(r)
        return None

    def retired_id(self, golden_id: str) -> RetiredId | None:
        """The merge record of a golden id that is not current any more, or None."""
        return self.retired.get(golden_id)

    def customer(self, crow: int) -> dict[str, Any]:
        """The golden record of a row, unmasked."""
        return self.customers.row(crow)

    def golden_id(self, crow: int) -> str:
        return self._id_at(crow)

    def sources(self, crow: int) -> list[dict[str, Any]]:
        """The customer's source records from the cross-reference, by source system and id."""
        rows = self.xref.rows(crow)
        if len(rows) > 1:
            rows.sort(key=lambda r: (r["source_system"] or "", r["source_customer_id"] or ""))
        return rows

    def lookup_source(self, source: str, source_id: str) -> int | None:
        """Customer row of a source system's customer id, or None."""
        cols = self.xref.cols
        for r in self._by_source.get(f"{source}\x1f{source_id}"):
            r = int(r)
            if cols.value("source_customer_id", r) == source_id and cols.value("source_system", r) == source:
                return int(self._xref_crow[r])
        return None

    def search(self, *, email: str | None = None, phone: str | None = None, name: str | None = None,
               postcode: str | None = None, limit: int = 10) -> list[int]:
        """Customer rows matching every given criterion (normalized like the pipeline), in golden id order."""
        found: list[np.ndarray] = []
        if email is not None:
            key = normalize_email(email)
            rows = self._by_email.get(key) if key else np.zeros(0, np.int32)
            found.append(np.array([r for r in rows if self._email_at(int(r)) == key], dtype=np.int32))
        if phone is not None:
            key = normalize_phone(phone)
            rows = self._by_phone.get(key) if key else np.zeros(0, np.int32)
            found.append(np.array([r for r in rows if self.customers.value("phone_e164", int(r)) == key], dtype=np.int32))
        pc_key = normalize_postcode(postcode) if postcode is not None else None
        tokens: list[str] = []
        if name is not None:
            tokens = name_tokens(name)
            if not tokens or not pc_key:
                return []
            for token in tokens:
                found.append(self._by_name_postcode.get(f"{token}|{pc_key}"))  # ascending rows (stable index)
        if not found:
            return []
        found.sort(key=len)
        rows = found[0]
        for other in found[1:]:  # intersect ascending arrays by binary search
            if rows.size == 0 or other.size == 0:
                return []
            at = np.minimum(np.searchsorted(other, rows), other.size - 1)
            rows = rows[other[at] == rows]
        if rows.size == 0:
            return []
        rows = rows[np.concatenate(([True], np.diff(rows) != 0))]  # ascending: drop repeats
        rows = rows[np.argsort(self._rank[rows], kind="stable")]
        out: list[int] = []
        wanted = set(tokens)
        for r in rows:  # verify lazily, in golden id order, until the page is full
            r = int(r)
            if pc_key is not None and self._postcode_at(r) != pc_key:
                continue
            if wanted and not wanted <= set(name_tokens(*(self.customers.value(c, r)
                                                          for c in ("full_name", "first_name", "last_name")))):
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out

    def tier_of(self, crow: int) -> str | None:
        code = int(self._tier_code[crow])
        return TIERS[code] if code >= 0 else None

    def segment_of(self, crow: int) -> str | None:
        code = int(self._segment_code[crow])
        return SEGMENTS[code] if code >= 0 else None

    def page(self, *, tier: str | None, segment: str | None, after: str | None, limit: int) -> tuple[list[int], bool]:
        """Customer rows after golden id ``after`` (exclusive) in golden id order, filtered; and whether more follow."""
        start = 0 if after is None else bisect.bisect_right(_Sorted(self._order, self._id_at), after)
        if tier is None and segment is None:
            rows = self._order[start:start + limit + 1]
            out = [int(r) for r in rows]
        else:
            if tier is not None:
                positions = self._tier_positions[TIERS.index(tier)]
                other = (self._segment_code, SEGMENTS.index(segment)) if segment is not None else None
            else:
                positions = self._segment_positions[SEGMENTS.index(segment)]  # type: ignore[arg-type]
                other = None
            i = int(np.searchsorted(positions, start, "left"))
            chunk = max(4 * (limit + 1), 4096)
            out = []
            while i < positions.size and len(out) <= limit:
                rows = self._order[positions[i:i + chunk]]
                if other is not None:
                    rows = rows[other[0][rows] == other[1]]
                out.extend(int(r) for r in rows[: limit + 1 - len(out)])
                i += chunk
        return out[:limit], len(out) > limit

    def memory_bytes(self) -> int:
        """Bytes held by the index's Arrow tables and numpy arrays (and, estimated, the retired-id map)."""
        total = self.customers.nbytes + self._contact_bytes + self._retired_bytes
        for g in (self.xref, self.metrics, self.loyalty, self.vouchers, self.subscriptions, self.categories):
            total += g.nbytes
        for idx in (self._by_id, self._by_source, self._by_email, self._by_phone, self._by_name_postcode):
            total += idx.nbytes
        for arr in (self._order, self._rank, self._xref_crow, self._tier_code, self._segment_code,
                    *self._tier_positions.values(), *self._segment_positions.values()):
            total += arr.nbytes
        return int(total)


class _Sorted:
    """A read-only sequence view of golden ids in sorted order, for :func:`bisect.bisect_right`."""

    __slots__ = ("_order", "_id_at")

    def __init__(self, order: np.ndarray, id_at: Callable[[int], str]) -> None:
        self._order, self._id_at = order, id_at

    def __len__(self) -> int:
        return int(self._order.size)

    def __getitem__(self, i: int) -> str:
        return self._id_at(int(self._order[i]))


# ---------------------------------------------------------------------------------------------------------------
# Loading and the repository
# ---------------------------------------------------------------------------------------------------------------
_TABLE_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "gold.golden_customers": CUSTOMER_COLUMNS,
    "gold.customer_xref": XREF_COLUMNS,
    "gold.customer_metrics": METRIC_COLUMNS,
    "gold.loyalty_scores": LOYALTY_COLUMNS,
    "gold.voucher_recommendations": VOUCHER_COLUMNS,
    "gold.subscription_candidates": SUBSCRIPTION_COLUMNS,
    "gold.fact_sales": SALES_COLUMNS,
    "gold.identity_changes": CHANGE_COLUMNS,
}


def read_published_table(settings: Settings, location: str, delta_version: int, columns: list[str],
                         *, only_sales: bool = False) -> pa.Table:
    """One published table at its manifest version (only the columns the API uses), through deltalake."""
    import pyarrow.dataset as pads

    table = DeltaTable(location, version=delta_version, storage_options=settings.delta_storage_options() or None)
    dataset = table.to_pyarrow_dataset()
    present = [c for c in columns if c in dataset.schema.names]
    row_filter = pads.field("line_type") == "sale" if only_sales and "line_type" in present else None
    return dataset.to_table(columns=present, filter=row_filter)


def load_snapshot(settings: Settings, manifest: Any) -> GoldSnapshot:
    """Read every table the API serves at the manifest's versions (one at a time) and index them."""
    for name in REQUIRED_TABLES:
        if name not in manifest.tables:
            raise GoldUnavailable(f"publication v{manifest.version} does not include {name}; the API cannot serve it")

    def read(name: str) -> pa.Table | None:
        ref = manifest.tables.get(name)
        if ref is None:
            return None
        try:
            return read_published_table(settings, ref.location, int(ref.delta_version), list(_TABLE_COLUMNS[name]),
                                        only_sales=name == "gold.fact_sales")
        except Exception as exc:  # noqa: BLE001 - a storage or log error becomes one sentence
            raise GoldUnavailable(
                f"cannot read {name} at Delta version {ref.delta_version} from {ref.location} "
                f"(publication v{manifest.version}): {exc.__class__.__name__}: {exc}"
            ) from None

    info = ManifestInfo(int(manifest.version), str(manifest.published_at), str(manifest.run_id), str(manifest.run_date))
    return GoldSnapshot(info, read)


def _release_memory() -> None:
    """Hand memory freed by the build (read tables, temporary key lists) back to the OS."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class GoldRepository:
    """Holds the current :class:`GoldSnapshot` and swaps in newer publications (poll thread or :meth:`refresh`)."""

    def __init__(self, settings: Settings, *, poll_interval_s: float | None = None,
                 loader: Callable[[Settings, Any], GoldSnapshot] = load_snapshot) -> None:
        self.settings = settings
        self.poll_interval_s = poll_interval_s if poll_interval_s is not None else settings.api_poll_interval_s
        self._loader = loader
        self._snapshot: GoldSnapshot | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_check_at: float | None = None

    @property
    def snapshot(self) -> GoldSnapshot | None:
        """The snapshot in force (take it once per request)."""
        return self._snapshot

    @property
    def version(self) -> int | None:
        snap = self._snapshot
        return None if snap is None else snap.version

    def refresh(self) -> bool:
        """Load the latest publication if it is newer than the one in force; True when a new snapshot was swapped in.

        A failure (unreadable manifest or table) keeps the current snapshot and is remembered in ``last_error``.
        """
        with self._refresh_lock:
            self.last_check_at = time.time()
            try:
                manifest = latest_manifest(self.settings)
                current = self._snapshot
                if manifest is None or (current is not None and int(manifest.version) <= current.version):
                    if manifest is not None:
                        self.last_error = None
                    return False
                snapshot = self._loader(self.settings, manifest)
            except Exception as exc:  # noqa: BLE001 - keep serving the previous publication
                self.reloads_failed += 1
                self.last_error = str(exc) if isinstance(exc, LakehouseError) else f"{exc.__class__.__name__}: {exc}"
                log.error("gold reload failed, still serving v%s: %s", self.version, self.last_error)
                return False
            previous, self._snapshot = self._snapshot, snapshot  # the atomic swap: one reference assignment
            del previous  # freed when the last in-flight request that pinned it finishes
            _release_memory()
            self.reloads_ok += 1
            self.last_error = None
            log.info("serving gold publication v%s (%d customers, loaded in %.2fs)",
                     snapshot.version, snapshot.n, snapshot.load_seconds)
            return True

    def start(self) -> None:
        """Start the background poll of the manifest folder (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="gold-manifest-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poll thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.poll_interval_s)
