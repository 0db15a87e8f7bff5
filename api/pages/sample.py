"""Synthetic tables for page tests and ``bench/pages.py`` (written with deltalake; never used by the service).

Adds to :func:`api.sample_gold.write_sample_gold` (golden customers, xref, metrics, loyalty, vouchers) what the pages
read besides: ``gold.fact_sales`` with order times and quantities, the marts ``gold.daily_sales_summary``,
``gold.conversion_funnel`` and ``gold.product_performance``, ``gold.identity_links`` and ``gold.identity_changes``,
and the system tables ``system.pipeline_runs`` and ``system.quarantine`` (with personal data in quarantined rows, to
test masking).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api.sample_gold import CATEGORIES, SALES_CHANNELS, PublishedTable, golden_id, sample_customer
from lakehouse.catalog import PIPELINE_RUNS, QUARANTINE
from lakehouse.settings import Settings

FIRST_DAY = dt.date(2026, 1, 1)
MONEY = pa.decimal128(18, 2)
TS = pa.timestamp("us", tz="UTC")
PRODUCTS = 5000
TIER_CUTS = ((0.10, "Top 10%"), (0.25, "Top 25%"), (0.50, "Top 50%"), (1.01, "Bottom 50%"))


def _money(cents: np.ndarray) -> pa.Array:
    """Cents (integers) -> decimal(18,2), exact: the unscaled 128-bit values are the cents themselves."""
    cents = np.asarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)  # two's-complement sign extension of the high word
    return pa.Array.from_buffers(MONEY, len(cents), [None, pa.py_buffer(words.tobytes())])


def _write(settings: Settings, location: str, table: pa.Table) -> PublishedTable:
    from deltalake import DeltaTable, write_deltalake

    opts = settings.delta_storage_options() or None
    write_deltalake(location, table, mode="overwrite", schema_mode="overwrite", storage_options=opts)
    return PublishedTable(location, DeltaTable(location, storage_options=opts).version(), table.num_rows)


def _gold(settings: Settings, name: str) -> str:
    return f"{str(settings.warehouse_root).rstrip('/')}/gold/{name}"


def fact_sales(customers: int, *, days: int, lines_per_customer: int = 4, seed: int = 7) -> pa.Table:
    """Sale and return lines with times: customer ``i`` has orders of two lines; the last line is a return."""
    rng = np.random.default_rng(seed)
    n, m = customers, lines_per_customer
    idx = np.arange(n)
    f_idx = np.repeat(idx, m)
    f_line = np.tile(np.arange(m), n)
    order_no = f_line // 2
    cents = (500 + rng.integers(0, 5000, len(f_idx))).astype(np.int64)
    line_type = np.where(f_line == m - 1, "return", "sale") if m > 2 else np.full(len(f_idx), "sale")
    cents = np.where(line_type == "return", -cents, cents)
    quantity = np.where(line_type == "return", -1, 1 + (f_idx + f_line) % 3)
    channel = np.array(SALES_CHANNELS, dtype=object)[(f_idx + order_no) % 3]
    day = (f_idx * 7 + order_no * 3) % days
    ts = (np.datetime64(FIRST_DAY.isoformat(), "us") + day.astype("timedelta64[D]")
          + ((f_idx * 37 + order_no * 11) % 720).astype("timedelta64[m]") + np.timedelta64(8, "h"))
    ids = np.array([golden_id(i) for i in range(n)], dtype=object)
    order_ids = np.array([f"O{i}-{j}" for i, j in zip(f_idx.tolist(), order_no.tolist())], dtype=object)
    return pa.table({
        "sales_key": pa.array(np.arange(len(f_idx)), pa.int64()),
        "source_system": pa.array(np.where(channel == "store", "pos", "online"), pa.string()),
        "order_id": pa.array(order_ids, pa.string()),
        "line_number": pa.array(f_line + 1, pa.int32()),
        "golden_id": pa.array(ids[f_idx], pa.string()),
        "sku": pa.array([f"SKU-{(i * 31 + j) % PRODUCTS:05d}" for i, j in zip(f_idx.tolist(), f_line.tolist())], pa.string()),
        "channel": pa.array(channel, pa.string()),
        "order_date": pa.array(np.datetime64(FIRST_DAY.isoformat()) + day.astype("timedelta64[D]"), pa.date32()),
        "order_ts": pa.array(ts, TS),
        "quantity": pa.array(quantity, pa.int32()),
        "net_amount": _money(cents),
        "revenue_amount": _money(np.where(line_type == "cancelled", 0, cents)),
        "line_type": pa.array(line_type, pa.string()),
        "category_l1": pa.array(np.array(CATEGORIES, dtype=object)[(f_idx + f_line) % len(CATEGORIES)], pa.string()),
    })


def daily_sales_summary(fact: pa.Table) -> pa.Table:
    """Per day and channel (and 'all'): revenue, orders, gross sales, AOV, the 7-day average and day-on-day change."""
    sale = pc.equal(fact.column("line_type"), "sale")
    t = pa.table({
        "day": fact.column("order_date"), "channel": fact.column("channel"), "rev": fact.column("revenue_amount"),
        "gross": pc.if_else(sale, fact.column("net_amount"), pa.scalar(Decimal("0.00"), MONEY)),
        "order": pc.if_else(sale, pc.binary_join_element_wise(fact.column("source_system"), fact.column("order_id"), "|"),
                            pa.scalar(None, pa.string())),
    })
    aggs = [("rev", "sum"), ("gross", "sum"), ("order", "count_distinct")]
    per = t.group_by(["day", "channel"]).aggregate(aggs).to_pylist()
    per += [{**r, "channel": "all"} for r in t.group_by(["day"]).aggregate(aggs).to_pylist()]
    days = sorted({r["day"] for r in per})
    channels = sorted({r["channel"] for r in per} - {"all"}) + ["all"]
    acc = {(d, c): {"rev": Decimal(0), "gross": Decimal(0), "orders": 0} for d in days for c in channels}
    for r in per:
        acc[(r["day"], r["channel"])] = {"rev": r["rev_sum"], "gross": r["gross_sum"], "orders": r["order_count_distinct"]}
    out = []
    for c in channels:
        history: list[Decimal] = []
        for d in days:
            a = acc[(d, c)]
            history.append(a["rev"])
            window = history[-7:]
            orders = int(a["orders"])
            prev = history[-2] if len(history) > 1 else None
            out.append({
                "event_date": d, "channel": c, "total_revenue": a["rev"], "gross_sales": a["gross"], "total_orders": orders,
                "avg_order_value": (a["gross"] / orders).quantize(Decimal("0.01")) if orders else None,
                "revenue_7d_avg": (sum(window, Decimal(0)) / len(window)).quantize(Decimal("0.01")),
                "revenue_dod_change": float((a["rev"] - prev) / prev * 100) if prev else None,
            })
    return pa.Table.from_pylist(out, schema=pa.schema([
        ("event_date", pa.date32()), ("channel", pa.string()), ("total_revenue", MONEY), ("gross_sales", MONEY),
        ("total_orders", pa.int64()), ("avg_order_value", MONEY), ("revenue_7d_avg", MONEY),
        ("revenue_dod_change", pa.float64())]))


def conversion_funnel(*, days: int, scale: int, seed: int = 7) -> pa.Table:
    """Sessions per day and category with view, cart and purchase counts (each stage <= the one before)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        for k, cat in enumerate((*CATEGORIES, "all")):
            sessions = int(scale * (len(CATEGORIES) if cat == "all" else 1 + k % 3) + rng.integers(0, 10))
            view = int(sessions * 0.9)
            cart = int(view * 0.3)
            rows.append({"event_date": FIRST_DAY + dt.timedelta(days=d), "category_l1": cat, "total_sessions": sessions,
                         "sessions_with_view": view, "sessions_with_cart": cart, "sessions_with_purchase": int(cart * 0.4)})
    return pa.Table.from_pylist(rows)


def product_performance(fact: pa.Table) -> pa.Table:
    """Per SKU: revenue and units from the sale lines, revenue rank and performance tier."""
    sales = fact.filter(pc.equal(fact.column("line_type"), "sale"))
    agg = sales.group_by("sku").aggregate([("revenue_amount", "sum"), ("quantity", "sum")])
    agg = agg.sort_by([("revenue_amount_sum", "descending"), ("sku", "ascending")])
    n = agg.num_rows
    rank = np.arange(1, n + 1)
    tier = np.array([next(name for cut, name in TIER_CUTS if r / max(n, 1) <= cut) for r in rank], dtype=object)
    skus = agg.column("sku").to_pylist()
    return pa.table({
        "sku": agg.column("sku"),
        "product_name": pa.array([f"Product {s[4:].lstrip('0') or '0'}" for s in skus], pa.string()),
        "category_l1": pa.array([CATEGORIES[int(s[4:]) % len(CATEGORIES)] for s in skus], pa.string()),
        "total_revenue": agg.column("revenue_amount_sum"),
        "units_sold": agg.column("quantity_sum").cast(pa.int64()),
        "revenue_rank_global": pa.array(rank, pa.int32()),
        "performance_tier": pa.array(tier, pa.string()),
    })


def identity_links(customers: int) -> pa.Table:
    """One accepted link per customer with both an online and a POS record (as api.sample_gold's xref has)."""
    idx = np.arange(customers)
    pos = idx[(idx % 5) < 3]
    rules = np.array(["exact_email", "exact_phone", "fellegi_sunter"], dtype=object)[pos % 3]
    return pa.table({
        "left_key": pa.array([f"online:C{i:07d}" for i in pos.tolist()], pa.string()),
        "right_key": pa.array([f"pos:M{i:07d}" for i in pos.tolist()], pa.string()),
        "match_rule": pa.array(rules, pa.string()),
        "match_score": pa.array(np.where(rules == "fellegi_sunter", 0.9 + (pos % 10) / 100.0, 1.0)),
    })


def identity_changes(customers: int, *, changes: int = 60) -> pa.Table:
    """A few merges and splits over the first days."""
    k = np.arange(min(changes, max(customers // 2, 1)))
    return pa.table({
        "run_id": pa.array([f"publish-2026010{1 + i % 5}" for i in k.tolist()], pa.string()),
        "changed_at": pa.array(np.datetime64("2026-01-01T00:00:00", "us") + (k % 5).astype("timedelta64[D]"), TS),
        "change_type": pa.array(np.where(k % 3 == 0, "split", "merge"), pa.string()),
        "old_golden_id": pa.array([golden_id(customers + int(i)) for i in k], pa.string()),
        "new_golden_id": pa.array([golden_id(int(i) * 2 % max(customers, 1)) for i in k], pa.string()),
        "records_moved": pa.array(1 + k % 3, pa.int64()),
        "match_rules": pa.array(np.where(k % 2 == 0, "exact_email", "exact_phone,fellegi_sunter"), pa.string()),
        "rule": pa.array(np.where(k % 3 == 0, "split: the part with most records keeps the id",
                                  "merge: the oldest identity keeps its id"), pa.string()),
    })


def write_page_gold(settings: Settings, *, customers: int, days: int = 14, seed: int = 7) -> dict[str, PublishedTable]:
    """Write the page tables (consistent with ``write_sample_gold(customers=...)``); return them for a manifest."""
    fact = fact_sales(customers, days=days, seed=seed)
    out = {"gold.fact_sales": _write(settings, _gold(settings, "fact_sales"), fact)}
    out["gold.daily_sales_summary"] = _write(settings, _gold(settings, "daily_sales_summary"), daily_sales_summary(fact))
    out["gold.product_performance"] = _write(settings, _gold(settings, "product_performance"), product_performance(fact))
    del fact
    out["gold.conversion_funnel"] = _write(settings, _gold(settings, "conversion_funnel"),
                                           conversion_funnel(days=days, scale=max(customers // 50, 5), seed=seed))
    out["gold.identity_links"] = _write(settings, _gold(settings, "identity_links"), identity_links(customers))
    out["gold.identity_changes"] = _write(settings, _gold(settings, "identity_changes"), identity_changes(customers))
    return out


def write_system_tables(settings: Settings, *, days: int = 14, tables: int = 30, quarantined: int = 40,
                        unbalanced: bool = False) -> None:
    """``system.pipeline_runs`` (one run per layer per day, ``tables`` tables) and ``system.quarantine`` rows whose
    stored JSON holds the email and phone of sample customers (the pages must mask them for keys without pii)."""
    from deltalake import write_deltalake

    opts = settings.delta_storage_options() or None
    layers = ("bronze", "silver", "publish")
    runs = []
    for d in range(days):
        day = FIRST_DAY + dt.timedelta(days=d)
        for li, layer in enumerate(layers):
            run_id = f"{layer}-{day:%Y%m%d}-run"
            for t in range(tables):
                rows_in = 1000 + 10 * t + d
                quarantined_rows = (t + d) % 4 if layer == "silver" else 0
                dedup = 1 if layer == "silver" and t % 5 == 0 else 0
                rows_out = rows_in - quarantined_rows - dedup
                if unbalanced and d == days - 1 and layer == "silver" and t == 0:
                    rows_out -= 3  # three rows unaccounted for
                gates = [{"name": "key_present", "severity": "quarantine", "success": quarantined_rows == 0,
                          "unexpected_count": quarantined_rows, "description": "A row has its key."},
                         {"name": "few_inferred", "severity": "warn", "success": t % 7 != 3, "unexpected_count": t % 7,
                          "description": "Inferred members are rare."}]
                runs.append({
                    "run_id": run_id, "flow_run_id": None, "layer": layer, "table_name": f"{layer}.table_{t:02d}",
                    "run_date": day, "rows_in": rows_in, "rows_out": rows_out, "rows_quarantined": quarantined_rows,
                    "rows_deduplicated": dedup, "rows_rejected": 0, "files_loaded": 1, "files_skipped": 0,
                    "files_rejected": 0, "gate_results": json.dumps(gates), "balanced": rows_out + quarantined_rows + dedup == rows_in,
                    "status": "ok", "message": "", "duration_s": 0.5 + t / 10,
                    "started_at": dt.datetime.combine(day, dt.time(6, li * 10 + t % 10), tzinfo=dt.timezone.utc),
                })
    write_deltalake(PIPELINE_RUNS.location(settings), pa.Table.from_pylist(runs), mode="overwrite",
                    schema_mode="overwrite", storage_options=opts)
    rules = ("email_valid", "phone_valid", "quantity_present", "price_not_negative")
    q = []
    for k in range(quarantined):
        c = sample_customer(k)
        rule = rules[k % len(rules)]
        row = {"source_customer_id": f"C{k:07d}", "email": c["email"].replace("@", "@@") if rule == "email_valid"
               else c["email"], "phone": "07" + c["phone_e164"][4:], "full_name": c["full_name"],
               "notes": f"call {c['phone_e164']} or write to {c['email']}", "_line_number": k + 1}
        q.append({
            "source_table": "silver.customers" if k % 2 == 0 else "silver.order_lines",
            "business_key": json.dumps({"source_system": "online", "source_customer_id": f"C{k:07d}"}),
            "index_key": json.dumps({"_source_file": "landing/online/customers.csv", "_line_number": k + 1}),
            "row_json": json.dumps(row), "failed_rules": [rule] + (["values_parse"] if k % 3 == 0 else []),
            "reasons": f'{rule}: the value is not valid (email="{row["email"]}", phone="{row["phone"]}")',
            "run_id": f"silver-{k % days}", "ingest_date": FIRST_DAY + dt.timedelta(days=k % days),
            "quarantined_at": dt.datetime.combine(FIRST_DAY + dt.timedelta(days=k % days), dt.time(7, k % 60),
                                                  tzinfo=dt.timezone.utc),
            "released_run_id": "replay-1" if k % 10 == 9 else None,
        })
    schema = pa.schema([("source_table", pa.string()), ("business_key", pa.string()), ("index_key", pa.string()),
                        ("row_json", pa.string()), ("failed_rules", pa.list_(pa.string())), ("reasons", pa.string()),
                        ("run_id", pa.string()), ("ingest_date", pa.date32()), ("quarantined_at", TS),
                        ("released_run_id", pa.string())])
    write_deltalake(QUARANTINE.location(settings), pa.Table.from_pylist(q, schema=schema), mode="overwrite",
                    schema_mode="overwrite", storage_options=opts)
