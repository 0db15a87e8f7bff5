"""Page data: aggregates over one publication (built once per publication), and pipeline health from system tables.

Gold tables are read through ``deltalake`` at exactly the versions of the publication manifest the repository's
snapshot was built from (:func:`api.repository.read_published_table`), so a page never mixes publications. The
system tables ``system.pipeline_runs``, ``system.quarantine`` and ``system.file_ledger`` are not published: they are
read read-only at their latest Delta version, and the pipeline page says so and shows which versions it read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api.repository import TIERS, Columns, GoldSnapshot, HashIndex, read_published_table
from lakehouse.catalog import FILE_LEDGER, PIPELINE_RUNS, QUARANTINE
from lakehouse.manifest import Manifest, read_manifest
from lakehouse.normalize import name_tokens
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api.pages")

CHANNEL_ORDER = ("web", "app", "store")
RISK_ORDER = ("High", "Medium", "Low", "N/A")
LAYER_ORDER = ("ingest", "bronze", "refine", "silver", "identity", "publish", "gold")
DISTRIBUTION_BUCKETS = ("1", "2", "3", "4", "5+")
TOP_PRODUCTS = 10
FUNNEL_CATEGORIES = 10
RECENT_CHANGES = 50
EXAMPLES_PER_RULE = 20
TOP_CUSTOMERS = 10


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------
def dec(value: Any) -> Decimal | None:
    """A money value as Decimal (exact for Arrow decimals), None stays None."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _read(settings: Settings, manifest: Manifest, name: str, columns: list[str]) -> pa.Table | None:
    """A published table at its manifest version (present columns only), or None when not in the publication."""
    ref = manifest.tables.get(name)
    if ref is None:
        return None
    return read_published_table(settings, ref.location, int(ref.delta_version), columns)


def _value_counts(column: pa.ChunkedArray) -> dict[Any, int]:
    counts = pc.value_counts(column)
    return {v: int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())}


def _ordered(counts: dict[Any, int], order: tuple[str, ...], *, lower: bool = False) -> list[tuple[str, int]]:
    """Counts in a preferred order, then any other value alphabetically (null as 'unknown')."""
    folded: dict[str, int] = {}
    for k, v in counts.items():
        key = "unknown" if k is None else (str(k).lower() if lower else str(k))
        folded[key] = folded.get(key, 0) + v
    head = [(k, folded.pop(k)) for k in order if k in folded]
    return head + sorted(folded.items())


def _col(table: pa.Table, name: str, default: Any = None) -> pa.ChunkedArray:
    if name in table.column_names:
        return table.column(name)
    return pa.chunked_array([pa.nulls(table.num_rows)])


# ---------------------------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DailyRow:
    """One day of ``gold.daily_sales_summary``: revenue per channel and the 'all' row's figures."""

    day: dt.date
    by_channel: dict[str, Decimal]
    revenue: Decimal
    revenue_7d_avg: Decimal | None
    orders: int
    avg_order_value: Decimal | None


@dataclass(frozen=True)
class FunnelRow:
    """Sessions per funnel stage of one category, summed over the days of ``gold.conversion_funnel``."""

    category: str
    sessions: int
    view: int
    cart: int
    purchase: int

    @property
    def view_to_cart(self) -> float | None:
        return self.cart / self.view if self.view else None

    @property
    def cart_to_purchase(self) -> float | None:
        return self.purchase / self.cart if self.cart else None

    @property
    def conversion(self) -> float | None:
        return self.purchase / self.sessions if self.sessions else None


@dataclass
class Overview:
    """Everything the overview page shows, from the publication's marts and customer tables."""

    missing: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    days: list[DailyRow] = field(default_factory=list)
    revenue_total: Decimal = Decimal("0")
    gross_total: Decimal = Decimal("0")
    orders_total: int = 0
    aov: Decimal | None = None
    funnel: list[FunnelRow] = field(default_factory=list)
    tiers: list[tuple[str, int]] = field(default_factory=list)
    churn: list[tuple[str, int]] = field(default_factory=list)
    top_products: list[dict[str, Any]] = field(default_factory=list)
    performance_tiers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latest(self) -> DailyRow | None:
        return self.days[-1] if self.days else None


def build_overview(settings: Settings, manifest: Manifest) -> Overview:
    """Aggregate the overview's marts (a few rows per day, category and product; customers counted by column)."""
    out = Overview()
    daily = _read(settings, manifest, "gold.daily_sales_summary",
                  ["event_date", "channel", "total_revenue", "gross_sales", "total_orders", "avg_order_value",
                   "revenue_7d_avg"])
    if daily is None:
        out.missing.append("gold.daily_sales_summary")
    else:
        rows = daily.to_pylist()
        channels = {r["channel"] for r in rows if r["channel"] and r["channel"] != "all"}
        out.channels = [c for c in CHANNEL_ORDER if c in channels] + sorted(channels - set(CHANNEL_ORDER))
        by_day: dict[dt.date, dict[str, dict]] = {}
        for r in rows:
            by_day.setdefault(r["event_date"], {})[r["channel"]] = r
        for day in sorted(d for d in by_day if d is not None):
            chans = by_day[day]
            total = chans.get("all")
            by_channel = {c: dec(chans[c]["total_revenue"]) or Decimal("0") for c in out.channels if c in chans}
            if total is None:  # a builder without the 'all' row: add the channels up
                revenue = sum(by_channel.values(), Decimal("0"))
                orders = sum(int(chans[c]["total_orders"] or 0) for c in chans)
                gross = sum((dec(chans[c]["gross_sales"]) or Decimal("0") for c in chans), Decimal("0"))
                aov, avg7 = (gross / orders).quantize(Decimal("0.01")) if orders else None, None
            else:
                revenue = dec(total["total_revenue"]) or Decimal("0")
                orders = int(total["total_orders"] or 0)
                gross = dec(total["gross_sales"]) or Decimal("0")
                aov, avg7 = dec(total["avg_order_value"]), dec(total["revenue_7d_avg"])
            out.days.append(DailyRow(day, by_channel, revenue, avg7, orders, aov))
            out.revenue_total += revenue
            out.gross_total += gross
            out.orders_total += orders
        out.aov = (out.gross_total / out.orders_total).quantize(Decimal("0.01")) if out.orders_total else None

    funnel = _read(settings, manifest, "gold.conversion_funnel",
                   ["category_l1", "total_sessions", "sessions_with_view", "sessions_with_cart", "sessions_with_purchase"])
    if funnel is None:
        out.missing.append("gold.conversion_funnel")
    elif funnel.num_rows:
        cols = ["total_sessions", "sessions_with_view", "sessions_with_cart", "sessions_with_purchase"]
        funnel = pa.table({"category_l1": pc.fill_null(_col(funnel, "category_l1").cast(pa.string()), "unknown"),
                           **{c: pc.fill_null(_col(funnel, c).cast(pa.int64()), 0) for c in cols}})
        agg = funnel.group_by("category_l1").aggregate([(c, "sum") for c in cols]).to_pylist()
        out.funnel = sorted(
            (FunnelRow(r["category_l1"], r["total_sessions_sum"], r["sessions_with_view_sum"], r["sessions_with_cart_sum"],
                       r["sessions_with_purchase_sum"]) for r in agg),
            key=lambda f: (-f.sessions, f.category))

    loyalty = _read(settings, manifest, "gold.loyalty_scores", ["loyalty_tier"])
    if loyalty is None:
        out.missing.append("gold.loyalty_scores")
    else:
        out.tiers = _ordered(_value_counts(loyalty.column("loyalty_tier")), TIERS, lower=True)
    metrics = _read(settings, manifest, "gold.customer_metrics", ["churn_risk"])
    if metrics is None:
        out.missing.append("gold.customer_metrics")
    else:
        out.churn = _ordered(_value_counts(metrics.column("churn_risk")), RISK_ORDER)

    products = _read(settings, manifest, "gold.product_performance",
                     ["sku", "product_name", "category_l1", "total_revenue", "units_sold", "revenue_rank_global",
                      "performance_tier"])
    if products is None:
        out.missing.append("gold.product_performance")
    elif products.num_rows:
        products = pa.table({
            "sku": _col(products, "sku").cast(pa.string()),
            "product_name": _col(products, "product_name").cast(pa.string()),
            "category_l1": _col(products, "category_l1").cast(pa.string()),
            "total_revenue": pc.fill_null(_col(products, "total_revenue").cast(pa.decimal128(18, 2)), Decimal("0")),
            "units_sold": _col(products, "units_sold").cast(pa.int64()),
            "performance_tier": pc.fill_null(_col(products, "performance_tier").cast(pa.string()), "unknown"),
        })
        ranked = products.sort_by([("total_revenue", "descending"), ("sku", "ascending")])
        out.top_products = ranked.slice(0, TOP_PRODUCTS).to_pylist()
        agg = ranked.group_by("performance_tier").aggregate([([], "count_all"), ("total_revenue", "sum")]).to_pylist()
        per_tier = []
        for r in agg:
            tier = r["performance_tier"]
            top = ranked.filter(pc.equal(ranked.column("performance_tier"), tier)).slice(0, 3).to_pylist()
            per_tier.append({"tier": tier, "products": int(r["count_all"]), "revenue": dec(r["total_revenue_sum"]),
                             "top": top})
        out.performance_tiers = sorted(per_tier, key=lambda t: (-(t["revenue"] or 0), t["tier"]))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class IdentityData:
    """How source records resolve into golden identities in this publication."""

    identities: int = 0
    records: int = 0
    multi_record_identities: int = 0
    distribution: list[tuple[str, int]] = field(default_factory=list)
    by_source: list[dict[str, Any]] = field(default_factory=list)
    by_rule: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] | None = None
    changes: list[dict[str, Any]] | None = None
    change_counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def build_identity(settings: Settings, manifest: Manifest, identities: int) -> IdentityData:
    """Records per identity, link rules per source pair, and the latest merges and splits."""
    out = IdentityData(identities=identities)
    xref = _read(settings, manifest, "gold.customer_xref", ["golden_id", "source_system", "match_rule", "match_score"])
    if xref is None or xref.num_rows == 0:
        out.missing.append("gold.customer_xref")
    else:
        xref = xref.filter(pc.is_valid(xref.column("golden_id")))
        out.records = xref.num_rows
        counts = pc.value_counts(xref.column("golden_id"))
        per_identity = counts.field("counts").to_numpy(zero_copy_only=False)
        bucket = np.bincount(np.minimum(per_identity, 5), minlength=6)
        unlinked = max(identities - len(per_identity), 0)
        out.distribution = ([("0", unlinked)] if unlinked else []) + \
            [(label, int(bucket[i + 1])) for i, label in enumerate(DISTRIBUTION_BUCKETS)]
        out.multi_record_identities = int((per_identity > 1).sum())
        # Each record's identity size, to count records that share their identity with another record.
        pos = pc.index_in(xref.column("golden_id"), value_set=counts.field("values"))
        size = pa.array(per_identity[pc.fill_null(pos, 0).to_numpy(zero_copy_only=False)])
        systems = pc.fill_null(xref.column("source_system"), "unknown")
        shared = pa.table({"source_system": systems, "linked": pc.cast(pc.greater(size, 1), pa.int64())})
        for r in sorted(shared.group_by("source_system").aggregate([("linked", "sum"), ("linked", "count")]).to_pylist(),
                        key=lambda r: r["source_system"]):
            n = int(r["linked_count"])
            out.by_source.append({"source": r["source_system"], "records": n, "linked": int(r["linked_sum"]),
                                  "rate": r["linked_sum"] / n if n else None})
        rules = pa.table({"match_rule": pc.fill_null(xref.column("match_rule"), "unknown"),
                          "match_score": _col(xref, "match_score").cast(pa.float64())})
        agg = rules.group_by("match_rule").aggregate([("match_rule", "count"), ("match_score", "mean")]).to_pylist()
        out.by_rule = sorted(({"rule": r["match_rule"], "records": int(r["match_rule_count"]),
                               "share": r["match_rule_count"] / out.records, "mean_score": r["match_score_mean"]}
                              for r in agg), key=lambda r: (-r["records"], r["rule"]))

    links = _read(settings, manifest, "gold.identity_links", ["left_key", "right_key", "match_rule", "match_score"])
    if links is not None:
        left = pc.list_element(pc.split_pattern(pc.fill_null(links.column("left_key"), "?"), ":", max_splits=1), 0)
        right = pc.list_element(pc.split_pattern(pc.fill_null(links.column("right_key"), "?"), ":", max_splits=1), 0)
        lo = pc.if_else(pc.less_equal(left, right), left, right)
        hi = pc.if_else(pc.less_equal(left, right), right, left)
        pairs = pa.table({"pair": pc.binary_join_element_wise(lo, hi, " ↔ "),
                          "match_rule": pc.fill_null(links.column("match_rule"), "unknown"),
                          "match_score": _col(links, "match_score").cast(pa.float64())})
        agg = pairs.group_by(["pair", "match_rule"]).aggregate(
            [("match_rule", "count"), ("match_score", "mean"), ("match_score", "min")]).to_pylist()
        per_pair: dict[str, int] = {}
        for r in agg:
            per_pair[r["pair"]] = per_pair.get(r["pair"], 0) + int(r["match_rule_count"])
        out.pairs = sorted(({"pair": r["pair"], "rule": r["match_rule"], "links": int(r["match_rule_count"]),
                             "share": r["match_rule_count"] / per_pair[r["pair"]], "mean_score": r["match_score_mean"],
                             "min_score": r["match_score_min"]} for r in agg),
                           key=lambda r: (r["pair"], -r["links"], r["rule"]))

    changes = _read(settings, manifest, "gold.identity_changes",
                    ["run_id", "changed_at", "change_type", "old_golden_id", "new_golden_id", "records_moved",
                     "match_rules", "rule"])
    if changes is not None:
        out.change_counts = dict(_ordered(_value_counts(changes.column("change_type")), ("merge", "split")))
        if "changed_at" in changes.column_names:
            changes = changes.sort_by([("changed_at", "descending")])
        out.changes = changes.slice(0, RECENT_CHANGES).to_pylist()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Customer 360 extras: purchase timeline and name search
# ---------------------------------------------------------------------------------------------------------------
class OrderTimeline:
    """Orders (grouped from ``gold.fact_sales`` lines) per golden id, sorted by time: one slice per customer."""

    def __init__(self, sales: pa.Table | None) -> None:
        self.available = sales is not None
        if sales is None or sales.num_rows == 0:
            self._ids = pa.array([], pa.string())
            self._index = HashIndex(self._ids)
            self.offsets = np.zeros(1, dtype=np.int64)
            self.orders = Columns(pa.table({"order_id": pa.array([], pa.string())}))
            return
        sales = sales.filter(pc.is_valid(sales.column("golden_id")))
        net = _col(sales, "net_amount").cast(pa.decimal128(18, 2))
        quantity = _col(sales, "quantity").cast(pa.int64())
        line_type = pc.fill_null(_col(sales, "line_type").cast(pa.string()), "sale")
        lines = pa.table({
            "golden_id": sales.column("golden_id"),
            "source_system": pc.fill_null(_col(sales, "source_system").cast(pa.string()), "unknown"),
            "order_id": pc.fill_null(_col(sales, "order_id").cast(pa.string()), ""),
            "channel": pc.fill_null(_col(sales, "channel").cast(pa.string()), "unknown"),
            "order_ts": _col(sales, "order_ts").cast(pa.timestamp("us", tz="UTC")),
            "net_amount": pc.fill_null(net, Decimal("0")),
            "units": pc.fill_null(pc.if_else(pc.equal(line_type, "sale"), quantity, 0), 0),
            "is_return": pc.cast(pc.equal(line_type, "return"), pa.int64()),
            "is_cancelled": pc.cast(pc.equal(line_type, "cancelled"), pa.int64()),
        })
        orders = lines.group_by(["golden_id", "source_system", "order_id"]).aggregate([
            ("channel", "min"), ("order_ts", "min"), ("net_amount", "sum"), ("units", "sum"),
            ("order_id", "count"), ("is_return", "sum"), ("is_cancelled", "sum"),
        ])
        kind = pc.if_else(pc.greater(orders.column("is_return_sum"), 0), "return",
                          pc.if_else(pc.equal(orders.column("is_cancelled_sum"), orders.column("order_id_count")),
                                     "cancelled", "sale"))
        orders = pa.table({
            "golden_id": orders.column("golden_id"),
            "order_ts": orders.column("order_ts_min"),
            "source_system": orders.column("source_system"),
            "order_id": orders.column("order_id"),
            "channel": orders.column("channel_min"),
            "lines": orders.column("order_id_count"),
            "units": orders.column("units_sum"),
            "net_amount": orders.column("net_amount_sum").cast(pa.float64()),
            "net_exact": orders.column("net_amount_sum").cast(pa.string()),
            "kind": kind,
        }).sort_by([("golden_id", "ascending"), ("order_ts", "ascending"), ("order_id", "ascending")])
        gid = orders.column("golden_id").combine_chunks()
        starts = np.flatnonzero(np.concatenate(([True], pc.not_equal(gid.slice(1), gid.slice(0, len(gid) - 1))
                                                .to_numpy(zero_copy_only=False)))) if len(gid) else np.zeros(0, np.int64)
        self._ids = gid.take(pa.array(starts))
        self._index = HashIndex(self._ids)
        self.offsets = np.append(starts, len(gid)).astype(np.int64)
        self.orders = Columns(orders.drop_columns(["golden_id"]).combine_chunks())

    def for_customer(self, golden_id: str) -> list[dict[str, Any]]:
        """The customer's orders, oldest first (empty when none)."""
        for k in self._index.get(golden_id):
            k = int(k)
            if self._ids[k].as_py() == golden_id:
                return self.orders.rows(int(self.offsets[k]), int(self.offsets[k + 1]))
        return []

    @property
    def nbytes(self) -> int:
        return int(self.orders.nbytes + self._index.nbytes + self.offsets.nbytes + self._ids.nbytes)


class NameIndex:
    """Name token -> golden customers (every 2+ character token, accent-free), for a name search without postcode."""

    def __init__(self, customers: pa.Table | None) -> None:
        if customers is None or customers.num_rows == 0:
            self._ids = pa.array([], pa.string())
            self._index = HashIndex(pa.array([], pa.string()))
            return
        customers = customers.filter(pc.is_valid(customers.column("golden_id"))).sort_by("golden_id")
        self._ids = customers.column("golden_id").combine_chunks()
        first_last = pc.binary_join_element_wise(pc.fill_null(_col(customers, "first_name").cast(pa.string()), ""),
                                                 pc.fill_null(_col(customers, "last_name").cast(pa.string()), ""), " ")
        names = pc.binary_join_element_wise(pc.fill_null(_col(customers, "full_name").cast(pa.string()), ""),
                                            first_last, " ")
        folded = pc.replace_substring_regex(pc.utf8_lower(pc.utf8_normalize(names, "NFKD")), r"\p{Mn}", "")
        folded = pc.utf8_trim(pc.replace_substring_regex(folded, r"[^0-9a-z]+", " "), " ")
        tokens = pc.split_pattern(folded, " ").combine_chunks()
        parent = pc.list_parent_indices(tokens)
        flat = pc.list_flatten(tokens)
        ok = pc.greater_equal(pc.utf8_length(flat), 2)
        # One key per (token, customer): drop a token repeated within the same name.
        keys = pa.table({"t": flat.filter(ok), "r": parent.filter(ok)}).group_by(["r", "t"]).aggregate([])
        keys = keys.sort_by([("r", "ascending")])
        self._index = HashIndex(keys.column("t"), keys.column("r").to_numpy())

    def candidates(self, query: str) -> np.ndarray:
        """Ascending row numbers (golden id order) whose name has every token of ``query`` (hash hits; verify)."""
        tokens = name_tokens(query)
        if not tokens:
            return np.zeros(0, dtype=np.int32)
        found = sorted((self._index.get(t) for t in tokens), key=len)  # each ascending (a stable index)
        rows = found[0]
        for other in found[1:]:  # intersect by binary search: O(k log n), no sort
            if rows.size == 0 or other.size == 0:
                return np.zeros(0, dtype=np.int32)
            at = np.minimum(np.searchsorted(other, rows), other.size - 1)
            rows = rows[other[at] == rows]
        return rows[np.concatenate(([True], np.diff(rows) != 0))] if rows.size else rows

    def golden_id(self, row: int) -> str:
        return self._ids[row].as_py()

    @property
    def nbytes(self) -> int:
        return int(self._index.nbytes + self._ids.nbytes)


def top_customers(settings: Settings, manifest: Manifest, limit: int = TOP_CUSTOMERS) -> list[dict[str, Any]]:
    """The customers with the highest loyalty score (a starting point on the search page)."""
    loyalty = _read(settings, manifest, "gold.loyalty_scores", ["golden_id", "loyalty_score", "loyalty_tier"])
    if loyalty is None or loyalty.num_rows == 0:
        return []
    loyalty = loyalty.filter(pc.is_valid(loyalty.column("loyalty_score")))
    idx = pc.select_k_unstable(loyalty, limit, [("loyalty_score", "descending"), ("golden_id", "ascending")])
    return loyalty.take(idx).sort_by([("loyalty_score", "descending"), ("golden_id", "ascending")]).to_pylist()


# ---------------------------------------------------------------------------------------------------------------
# Everything for one publication
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PageData:
    """Aggregates of one publication, built once when the repository serves it; never changes afterwards."""

    manifest: Manifest
    overview: Overview
    identity: IdentityData
    timeline: OrderTimeline
    names: NameIndex
    top_customers: list[dict[str, Any]]
    built_at: dt.datetime
    build_seconds: float
    charts: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return int(self.manifest.version)


def build_page_data(settings: Settings, snapshot: GoldSnapshot) -> PageData:
    """Read and aggregate every table the pages need, at the versions of ``snapshot``'s publication."""
    t0 = time.perf_counter()
    manifest = read_manifest(settings, snapshot.version)
    overview = build_overview(settings, manifest)
    identity = build_identity(settings, manifest, snapshot.n)
    sales = _read(settings, manifest, "gold.fact_sales",
                  ["golden_id", "source_system", "order_id", "channel", "order_ts", "quantity", "net_amount", "line_type"])
    timeline = OrderTimeline(sales)
    del sales
    names = NameIndex(_read(settings, manifest, "gold.golden_customers",
                            ["golden_id", "full_name", "first_name", "last_name"]))
    data = PageData(manifest, overview, identity, timeline, names, top_customers(settings, manifest),
                    dt.datetime.now(dt.timezone.utc), 0.0)
    data.build_seconds = round(time.perf_counter() - t0, 3)
    pa.default_memory_pool().release_unused()
    return data


# ---------------------------------------------------------------------------------------------------------------
# Pipeline health (system tables, latest versions, read-only)
# ---------------------------------------------------------------------------------------------------------------
SYSTEM_SPECS = {"system.pipeline_runs": PIPELINE_RUNS, "system.quarantine": QUARANTINE, "system.file_ledger": FILE_LEDGER}


def system_versions(settings: Settings) -> dict[str, int | None]:
    """The latest Delta version of each system table (None: the table does not exist yet)."""
    from deltalake import DeltaTable

    opts = settings.delta_storage_options() or None
    out: dict[str, int | None] = {}
    for name, spec in SYSTEM_SPECS.items():
        location = spec.location(settings)
        try:
            out[name] = DeltaTable(location, storage_options=opts).version() \
                if DeltaTable.is_deltatable(location, storage_options=opts) else None
        except Exception as exc:  # noqa: BLE001 - a table being written or unreadable counts as absent
            log.warning("pages: cannot read the version of %s: %s", name, exc.__class__.__name__)
            out[name] = None
    return out


def _read_system(settings: Settings, name: str, version: int | None, columns: list[str]) -> pa.Table | None:
    from deltalake import DeltaTable

    if version is None:
        return None
    table = DeltaTable(SYSTEM_SPECS[name].location(settings), version=version,
                       storage_options=settings.delta_storage_options() or None)
    dataset = table.to_pyarrow_dataset()
    return dataset.to_table(columns=[c for c in columns if c in dataset.schema.names])


@dataclass
class PipelineData:
    """Pipeline health from the system tables at the versions in ``versions`` (read at ``read_at``)."""

    versions: dict[str, int | None]
    read_at: dt.datetime
    layers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    layer_dates: dict[str, dt.date] = field(default_factory=dict)
    gate_rules: list[dict[str, Any]] = field(default_factory=list)
    quarantine_days: list[dt.date] = field(default_factory=list)
    quarantine_series: dict[str, list[int]] = field(default_factory=dict)
    quarantine_rules: list[dict[str, Any]] = field(default_factory=list)
    quarantine_total: int = 0
    quarantine_released: int = 0
    examples: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    build_seconds: float = 0.0
    charts: dict[str, Any] = field(default_factory=dict)

    @property
    def accounting_failures(self) -> int:
        return sum(1 for _, rows in self.layers for r in rows if not r["accounted"])


def _layer_rank(layer: str) -> tuple[int, str]:
    return (LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER), layer)


def build_pipeline(settings: Settings, versions: dict[str, int | None] | None = None) -> PipelineData:
    """Latest run of every table per layer with its accounting, gate results, quarantine by rule and day, files."""
    t0 = time.perf_counter()
    versions = versions if versions is not None else system_versions(settings)
    out = PipelineData(versions, dt.datetime.now(dt.timezone.utc))
    runs = _read_system(settings, "system.pipeline_runs", versions.get("system.pipeline_runs"),
                        ["run_id", "flow_run_id", "layer", "table_name", "run_date", "rows_in", "rows_out",
                         "rows_quarantined", "rows_deduplicated", "rows_rejected", "gate_results", "balanced", "status",
                         "message", "started_at", "duration_s"])
    if runs is not None and runs.num_rows:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        order = runs.sort_by([("started_at", "ascending")]) if "started_at" in runs.column_names else runs
        for r in order.to_pylist():  # one row per table per run: small (a year of days x 40 tables ~ 15k rows)
            latest[(r.get("layer") or "unknown", r.get("table_name") or "unknown")] = r
        by_layer: dict[str, list[dict[str, Any]]] = {}
        for (layer, _), r in latest.items():
            counts = [int(r.get(k) or 0) for k in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated",
                                                   "rows_rejected")]
            r["accounted"] = counts[0] == sum(counts[1:]) and r.get("balanced") is not False
            r["accounted_out"] = sum(counts[1:])
            try:
                r["gates"] = json.loads(r.get("gate_results") or "[]")
            except ValueError:
                r["gates"] = []
            by_layer.setdefault(layer, []).append(r)
            for g in r["gates"]:
                if isinstance(g, dict):
                    out.gate_rules.append({"table": r.get("table_name"), "layer": layer, "run_id": r.get("run_id"),
                                           "run_date": r.get("run_date"), **g})
        out.layers = [(layer, sorted(rows, key=lambda r: r.get("table_name") or ""))
                      for layer, rows in sorted(by_layer.items(), key=lambda kv: _layer_rank(kv[0]))]
        out.layer_dates = {layer: max(dates) for layer, rows in by_layer.items()
                           if (dates := [r["run_date"] for r in rows if r.get("run_date") is not None])}
        out.gate_rules.sort(key=lambda g: (g.get("success") is not False, {"fail": 0, "quarantine": 1, "warn": 2}.get(
            str(g.get("severity")), 3), str(g.get("table")), str(g.get("name"))))

    quarantine = _read_system(settings, "system.quarantine", versions.get("system.quarantine"),
                              ["source_table", "business_key", "row_json", "failed_rules", "reasons", "run_id",
                               "ingest_date", "quarantined_at", "released_run_id"])
    if quarantine is not None and quarantine.num_rows:
        _quarantine_aggregates(out, quarantine)

    ledger = _read_system(settings, "system.file_ledger", versions.get("system.file_ledger"),
                          ["source", "entity", "status", "rows", "malformed_rows", "loaded_at"])
    if ledger is not None and ledger.num_rows:
        agg = ledger.group_by(["source", "status"]).aggregate(
            [("status", "count"), ("rows", "sum"), ("malformed_rows", "sum"), ("loaded_at", "max")]).to_pylist()
        per_source: dict[str, dict[str, Any]] = {}
        for r in agg:
            s = per_source.setdefault(r["source"] or "unknown", {"source": r["source"] or "unknown", "files": {},
                                                                 "rows": 0, "malformed": 0, "last_loaded_at": None})
            s["files"][r["status"] or "unknown"] = int(r["status_count"])
            s["rows"] += int(r["rows_sum"] or 0)
            s["malformed"] += int(r["malformed_rows_sum"] or 0)
            if r["loaded_at_max"] is not None and (s["last_loaded_at"] is None or r["loaded_at_max"] > s["last_loaded_at"]):
                s["last_loaded_at"] = r["loaded_at_max"]
        out.ledger = [per_source[k] for k in sorted(per_source)]
    out.build_seconds = round(time.perf_counter() - t0, 3)
    return out


def _quarantine_aggregates(out: PipelineData, q: pa.Table) -> None:
    """Counts per rule and ingest day (one count per failed rule of a row) and a few example rows per rule."""
    out.quarantine_total = q.num_rows
    released = pc.is_valid(_col(q, "released_run_id"))
    out.quarantine_released = int(pc.sum(pc.cast(released, pa.int64())).as_py() or 0)
    rules = pc.fill_null(_col(q, "failed_rules"), pa.scalar([], pa.list_(pa.string())))
    parent = pc.list_parent_indices(rules)
    flat = pa.table({
        "source_table": pc.take(pc.fill_null(_col(q, "source_table"), "unknown"), parent),
        "rule": pc.list_flatten(rules),
        "ingest_date": pc.take(_col(q, "ingest_date").cast(pa.date32()), parent),
        "released": pc.cast(pc.take(released, parent), pa.int64()),
    })
    per_rule = flat.group_by(["source_table", "rule"]).aggregate(
        [("rule", "count"), ("released", "sum"), ("ingest_date", "max")]).to_pylist()
    out.quarantine_rules = sorted(({"table": r["source_table"], "rule": r["rule"], "rows": int(r["rule_count"]),
                                    "released": int(r["released_sum"]), "last_day": r["ingest_date_max"]}
                                   for r in per_rule), key=lambda r: (-r["rows"], r["table"], r["rule"]))
    per_day = flat.group_by(["ingest_date", "rule"]).aggregate([("rule", "count")]).to_pylist()
    days = sorted({r["ingest_date"] for r in per_day if r["ingest_date"] is not None})
    out.quarantine_days = days
    at = {d: i for i, d in enumerate(days)}
    totals: dict[str, int] = {}
    for r in per_day:
        totals[r["rule"]] = totals.get(r["rule"], 0) + int(r["rule_count"])
    named = [k for k, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    keep, rest = named[:8], set(named[8:])
    series: dict[str, list[int]] = {k: [0] * len(days) for k in keep + (["other rules"] if rest else [])}
    for r in per_day:
        if r["ingest_date"] is None:
            continue
        key = "other rules" if r["rule"] in rest else r["rule"]
        series[key][at[r["ingest_date"]]] += int(r["rule_count"])
    out.quarantine_series = series
    # Example rows per (table, rule): the most recent first.
    order = q.sort_by([("quarantined_at", "descending")]) if "quarantined_at" in q.column_names else q
    wanted = {(r["table"], r["rule"]) for r in out.quarantine_rules}
    examples: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in wanted}
    full = 0
    for batch in order.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            for rule in row.get("failed_rules") or []:
                bucket = examples.get((row.get("source_table") or "unknown", rule))
                if bucket is not None and len(bucket) < EXAMPLES_PER_RULE:
                    bucket.append(row)
                    if len(bucket) == EXAMPLES_PER_RULE:
                        full += 1
        if full >= len(examples):
            break
    out.examples = examples


def parse_row_json(text: str | None) -> dict[str, Any]:
    """A quarantined row's stored JSON as a dict (text that is not a JSON object is kept as ``_raw_line``)."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {"_raw_line": text}
    return doc if isinstance(doc, dict) else {"value": doc}
