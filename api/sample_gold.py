"""Synthetic published gold for API tests, demos and the benchmark (written with deltalake; not used by the service).

The tables follow gold_contract.md (the columns the API reads); ``variant`` shifts scores so that two publications
are told apart in tests. :func:`publish_manifest` writes the next ``v<version>.json`` exactly as the contract says
(temporary dot-file, then rename).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.settings import Settings

FIRST = ("Jane", "John", "Amelia", "Oliver", "Isla", "Harry", "Ava", "Jack", "Mia", "George", "Zoë", "Noah", "Seán",
         "Freya", "Leo", "Grace", "Arthur", "Lily", "Oscar", "Ella")
LAST = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
        "O'Brien", "Evans", "Walker", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood")
AREAS = (("SW1A", "London"), ("LS1", "Leeds"), ("BS1", "Bristol"), ("M1", "Manchester"), ("EC1A", "London"),
         ("B1", "Birmingham"), ("N1", "London"), ("G1", "Glasgow"), ("CF10", "Cardiff"), ("EH1", "Edinburgh"))
LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
SEGMENTS = ("Champion", "Loyal", "Potential Loyalist", "New Customer", "Cart Abandoner", "Visitor")
TIERS = ("bronze", "silver", "gold", "platinum")
CATEGORIES = ("electronics", "home", "beauty", "grocery", "fashion", "sports")
REASONS = ("buy_again", "frequently_bought_together", "category_affinity", "popular_in_segment")
SALES_CHANNELS = ("web", "app", "store")


@dataclass(frozen=True)
class PublishedTable:
    """A written table: location, Delta version and row count (what a manifest entry needs)."""

    location: str
    delta_version: int
    rows: int


def golden_id(i: int) -> str:
    """The sample golden id of customer number ``i``."""
    return f"G{i:09d}"


def sample_postcode(i: int) -> str:
    """Customers live 20 to a postcode: block ``i // 20`` gets a distinct UK postcode (for 1.6 million customers)."""
    block = i // 20
    area = AREAS[block % len(AREAS)][0]
    n = len(LETTERS)
    return f"{area} {block // len(AREAS) % 10}{LETTERS[block // 100 % n]}{LETTERS[block // (100 * n) % n]}"


def sample_customer(i: int) -> dict:
    """The sample golden record of customer ``i`` (what :func:`write_sample_gold` writes), for test expectations."""
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return {
        "golden_id": golden_id(i),
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}",
        "email": f"customer{i}@example.com",
        "phone_e164": f"+4477{i:08d}",
        "postcode": sample_postcode(i),
        "city": AREAS[(i // 20) % len(AREAS)][1],
        "address_line1": f"{i % 300 + 1} High Street",
    }


def loyalty_score(i: int, variant: int = 0) -> float:
    """The sample loyalty score of customer ``i`` in publication ``variant``."""
    return float((i * 7) % 90 + variant)


def _tier(score: np.ndarray) -> np.ndarray:
    return np.select([score >= 75, score >= 50, score >= 25], ["platinum", "gold", "silver"], "bronze")


def write_sample_gold(settings: Settings, *, customers: int, seed: int = 7, variant: int = 0,
                      vouchers_per_customer: int = 3, sales_per_customer: int = 4) -> dict[str, PublishedTable]:
    """Write (overwrite) the gold tables the API reads for ``customers`` golden customers; return their versions."""
    rng = np.random.default_rng(seed)
    n = customers
    idx = np.arange(n)
    ids = np.array([golden_id(i) for i in range(n)], dtype=object)
    first = np.array(FIRST, dtype=object)[idx % len(FIRST)]
    last = np.array(LAST, dtype=object)[(idx // len(FIRST)) % len(LAST)]
    full = first + " " + last
    first_seen = np.datetime64("2025-01-01T00:00:00") + (idx % 300).astype("timedelta64[D]")
    has_pos = (idx % 5) < 3
    tables: dict[str, pa.Table] = {}
    tables["gold.golden_customers"] = pa.table({
        "golden_id": pa.array(ids, pa.string()),
        "first_name": pa.array(first, pa.string()),
        "last_name": pa.array(last, pa.string()),
        "full_name": pa.array(full, pa.string()),
        "email": pa.array([f"customer{i}@example.com" for i in range(n)], pa.string()),
        "phone_e164": pa.array([f"+4477{i:08d}" for i in range(n)], pa.string()),
        "date_of_birth": pa.array(np.datetime64("1960-01-01") + (idx * 37 % 15000).astype("timedelta64[D]"), pa.date32()),
        "address_line1": pa.array([f"{i % 300 + 1} High Street" for i in range(n)], pa.string()),
        "city": pa.array(np.array([a[1] for a in AREAS], dtype=object)[(idx // 20) % len(AREAS)], pa.string()),
        "postcode": pa.array(np.array([sample_postcode(b * 20) for b in range(n // 20 + 1)], dtype=object)[idx // 20],
                             pa.string()),
        "country": pa.array(np.full(n, "GB"), pa.string()),
        "marketing_opt_in": pa.array(idx % 3 != 0),
        "source_record_count": pa.array(np.where(has_pos, 2, 1), pa.int32()),
        "source_systems": pa.array([["online", "pos"] if p else ["online"] for p in has_pos], pa.list_(pa.string())),
        "first_seen": pa.array(first_seen, pa.timestamp("us", tz="UTC")),
        "last_seen": pa.array(first_seen + np.timedelta64(30, "D"), pa.timestamp("us", tz="UTC")),
    })
    online = pa.table({
        "source_system": pa.array(["online"] * n, pa.string()),
        "source_customer_id": pa.array([f"C{i:07d}" for i in range(n)], pa.string()),
        "golden_id": pa.array(ids, pa.string()),
        "match_score": pa.array(np.ones(n)),
        "match_rule": pa.array(["seed"] * n, pa.string()),
    })
    pos_idx = idx[has_pos]
    pos = pa.table({
        "source_system": pa.array(["pos"] * len(pos_idx), pa.string()),
        "source_customer_id": pa.array([f"M{i:07d}" for i in pos_idx], pa.string()),
        "golden_id": pa.array(ids[pos_idx], pa.string()),
        "match_score": pa.array(np.round(0.8 + (pos_idx % 20) / 100.0, 2)),
        "match_rule": pa.array(["email_exact"] * len(pos_idx), pa.string()),
    })
    tables["gold.customer_xref"] = pa.concat_tables([online, pos])

    score = ((idx * 7) % 90 + variant).astype(float)  # == loyalty_score(i, variant)
    purchases = (idx % 12) + variant
    revenue = np.round(purchases * 23.5, 2)
    tables["gold.customer_metrics"] = pa.table({
        "golden_id": pa.array(ids, pa.string()),
        "total_sessions": pa.array(idx % 40, pa.int64()),
        "total_views": pa.array(idx % 200, pa.int64()),
        "total_cart_adds": pa.array(idx % 30, pa.int64()),
        "total_purchases": pa.array(purchases, pa.int64()),
        "total_revenue": pa.array(revenue),
        "avg_order_value": pa.array(np.where(purchases > 0, np.round(revenue / np.maximum(purchases, 1), 2), 0.0)),
        "first_activity_date": pa.array(first_seen.astype("datetime64[D]"), pa.date32()),
        "last_activity_date": pa.array((first_seen + np.timedelta64(30, "D")).astype("datetime64[D]"), pa.date32()),
        "recency_days": pa.array(idx % 120, pa.int64()),
        "r_score": pa.array(idx % 5 + 1, pa.int32()),
        "f_score": pa.array((idx // 5) % 5 + 1, pa.int32()),
        "m_score": pa.array((idx // 25) % 5 + 1, pa.int32()),
        "rfm_score": pa.array(idx % 5 + (idx // 5) % 5 + (idx // 25) % 5 + 3, pa.int32()),
        "customer_segment": pa.array(np.array(SEGMENTS, dtype=object)[idx % len(SEGMENTS)], pa.string()),
        "churn_risk": pa.array(np.array(("High", "Medium", "Low", "N/A"), dtype=object)[idx % 4], pa.string()),
        "online_orders": pa.array(purchases - purchases // 3, pa.int64()),
        "store_orders": pa.array(purchases // 3, pa.int64()),
        "online_revenue": pa.array(np.round(revenue * 0.6, 2)),
        "store_revenue": pa.array(np.round(revenue * 0.4, 2)),
    })
    tables["gold.loyalty_scores"] = pa.table({
        "golden_id": pa.array(ids, pa.string()),
        "loyalty_score": pa.array(score),
        "loyalty_tier": pa.array(_tier(score), pa.string()),
        "rfm_component": pa.array(np.round(score * 0.9, 2)),
        "tenure_component": pa.array(np.round((idx % 300) / 3.0, 2)),
        "channel_component": pa.array(np.where(has_pos, 100.0, 0.0)),
        "value_component": pa.array(np.round(np.minimum(revenue, 100.0), 2)),
        "rfm_weight": pa.array(np.full(n, 0.4)),
        "tenure_weight": pa.array(np.full(n, 0.2)),
        "channel_weight": pa.array(np.full(n, 0.2)),
        "value_weight": pa.array(np.full(n, 0.2)),
        "expected_future_value": pa.array(np.round(revenue * 1.5, 2)),
        "tenure_days": pa.array(idx % 300, pa.int32()),
        "as_of_date": pa.array(np.full(n, np.datetime64("2026-01-03")), pa.date32()),
    })
    k = vouchers_per_customer
    v_idx = np.repeat(idx, k)
    v_rank = np.tile(np.arange(1, k + 1), n)
    sku_num = (v_idx * 13 + v_rank * 101) % 5000
    tables["gold.voucher_recommendations"] = pa.table({
        "golden_id": pa.array(ids[v_idx], pa.string()),
        "rank": pa.array(v_rank, pa.int32()),
        "sku": pa.array([f"SKU-{s:05d}" for s in sku_num], pa.string()),
        "product_name": pa.array([f"Product {s}" for s in sku_num], pa.string()),
        "category_l1": pa.array(np.array(CATEGORIES, dtype=object)[sku_num % len(CATEGORIES)], pa.string()),
        "reason": pa.array(np.array(REASONS, dtype=object)[(v_idx + v_rank) % len(REASONS)], pa.string()),
        "score": pa.array(np.round(1.0 / v_rank + variant / 1000.0, 4)),
        "voucher_pct": pa.array(np.where(v_rank == 1, 15.0, 10.0)),
        "voucher_value": pa.array(np.where(v_rank == 1, 5.0, 2.5)),
        "valid_from": pa.array(np.full(len(v_idx), np.datetime64("2026-01-04")), pa.date32()),
        "valid_to": pa.array(np.full(len(v_idx), np.datetime64("2026-02-03")), pa.date32()),
    })
    s_idx = idx[idx % 3 == 0]
    tables["gold.subscription_candidates"] = pa.table({
        "golden_id": pa.array(ids[s_idx], pa.string()),
        "sku": pa.array([f"SKU-{(i * 17) % 5000:05d}" for i in s_idx], pa.string()),
        "product_name": pa.array([f"Product {(i * 17) % 5000}" for i in s_idx], pa.string()),
        "purchase_count": pa.array(s_idx % 5 + 3, pa.int64()),
        "mean_interval_days": pa.array(np.round(28.0 + s_idx % 7, 1)),
        "interval_cv": pa.array(np.round(0.1 + (s_idx % 10) / 100.0, 3)),
        "last_purchase_date": pa.array(np.full(len(s_idx), np.datetime64("2025-12-20")), pa.date32()),
        "next_expected_date": pa.array(np.full(len(s_idx), np.datetime64("2026-01-18")), pa.date32()),
    })
    m = sales_per_customer
    f_idx = np.repeat(idx, m)
    f_line = np.tile(np.arange(m), n)
    amount = np.round(5.0 + rng.random(len(f_idx)) * 50.0, 2)
    line_type = np.where(f_line == m - 1, "return", "sale") if m > 2 else np.full(len(f_idx), "sale")
    amount = np.where(line_type == "return", -amount, amount)
    channel = np.array(SALES_CHANNELS, dtype=object)[(f_idx + f_line // 2) % 3]
    tables["gold.fact_sales"] = pa.table({
        "sales_key": pa.array(np.arange(len(f_idx)), pa.int64()),
        "source_system": pa.array(np.where(channel == "store", "pos", "online"), pa.string()),
        "order_id": pa.array([f"O{i}-{j // 2}" for i, j in zip(f_idx, f_line)], pa.string()),
        "line_number": pa.array(f_line + 1, pa.int32()),
        "golden_id": pa.array(ids[f_idx], pa.string()),
        "sku": pa.array([f"SKU-{(i * 31 + j) % 5000:05d}" for i, j in zip(f_idx, f_line)], pa.string()),
        "channel": pa.array(channel, pa.string()),
        "net_amount": pa.array(amount),
        "line_type": pa.array(line_type, pa.string()),
        "category_l1": pa.array(np.array(CATEGORIES, dtype=object)[(f_idx + f_line) % len(CATEGORIES)], pa.string()),
    })

    return {name: _write_gold_table(settings, name, table) for name, table in tables.items()}


def _write_gold_table(settings: Settings, name: str, table: pa.Table) -> PublishedTable:
    """Write (overwrite) gold table ``name`` (e.g. ``gold.customer_xref``) with delta-rs; return what was written."""
    from deltalake import DeltaTable, write_deltalake

    opts = settings.delta_storage_options() or None
    location = f"{str(settings.warehouse_root).rstrip('/')}/gold/{name.split('.', 1)[1]}"
    write_deltalake(location, table, mode="overwrite", schema_mode="overwrite", storage_options=opts)
    return PublishedTable(location, DeltaTable(location, storage_options=opts).version(), table.num_rows)


def retired_golden_id(i: int) -> str:
    """A sample golden id that no current customer has (retired by a merge in :func:`sample_identity_changes`)."""
    return f"X{i:09d}"


def sample_identity_changes(*, survivor: int = 5) -> list[dict]:
    """``gold.identity_changes`` rows of a small merge history over the sample customers (for redirect tests).

    X1 merged into X2 (run identity-r1), then X2 into customer ``survivor`` (identity-r2): both redirect there.
    Customer 4 split off part of itself into customer 6 (no redirect: 4 stays current). X3 merged into customers 7 and
    8 in one run (ambiguous: no redirect). Customer 9 merged into 10 but is current again (served as itself). X4 and X5
    merged into each other (a cycle: no survivor). X6 merged into X99, which is nowhere (no survivor).
    """
    g, x = golden_id, retired_golden_id
    day = lambda d: dt.datetime(2026, 1, d, tzinfo=dt.timezone.utc)  # noqa: E731
    rows = [
        ("identity-r1", day(1), "merge", x(1), x(2)),
        ("identity-r2", day(2), "merge", x(2), g(survivor)),
        ("identity-r2", day(2), "split", g(4), g(6)),
        ("identity-r3", day(3), "merge", x(3), g(7)),
        ("identity-r3", day(3), "merge", x(3), g(8)),
        ("identity-r1", day(1), "merge", g(9), g(10)),
        ("identity-r3", day(3), "merge", x(4), x(5)),
        ("identity-r3", day(3), "merge", x(5), x(4)),
        ("identity-r3", day(3), "merge", x(6), x(99)),
    ]
    return [{"run_id": r, "changed_at": at, "change_type": t, "old_golden_id": o, "new_golden_id": n, "records_moved": 1,
             "match_rules": "exact_email", "rule": f"{t}: sample"} for r, at, t, o, n in rows]


def write_identity_changes(settings: Settings, rows: list[dict]) -> PublishedTable:
    """Write (overwrite) ``gold.identity_changes`` with the identity flow's columns; return its version."""
    schema = pa.schema([("run_id", pa.string()), ("changed_at", pa.timestamp("us", tz="UTC")),
                        ("change_type", pa.string()), ("old_golden_id", pa.string()), ("new_golden_id", pa.string()),
                        ("records_moved", pa.int64()), ("match_rules", pa.string()), ("rule", pa.string())])
    return _write_gold_table(settings, "gold.identity_changes", pa.Table.from_pylist(rows, schema=schema))


def publish_manifest(settings: Settings, tables: dict[str, PublishedTable], *, run_date: str = "2026-01-03",
                     run_id: str | None = None) -> int:
    """Publish the next manifest for ``tables`` with :func:`lakehouse.manifest.write_manifest`; return its version."""
    from lakehouse.manifest import TableRef, write_manifest

    refs = {name: TableRef(t.location, t.delta_version, t.rows) for name, t in tables.items()}
    return write_manifest(settings, refs, run_id or uuid.uuid4().hex, run_date, {"passed": True}).version
