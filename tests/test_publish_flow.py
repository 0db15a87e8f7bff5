"""Write-audit-publish end to end on tiny silver tables: publish, republish, and a failed gold gate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from lakehouse import delta
from lakehouse.catalog import GOLD_PUBLISH_TABLES, table as catalog_table
from lakehouse.manifest import latest_manifest
from test_gold_frames import (
    EVENTS_SCHEMA, MOVEMENTS_SCHEMA, ORDER_LINES_SCHEMA, ORDERS_SCHEMA, PRODUCTS_SCHEMA, STORES_SCHEMA, D, event, line,
    money, product, ts,
)

pytestmark = [pytest.mark.flow, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]

CUSTOMERS_SCHEMA = (
    "source_system string, source_kind string, source_customer_id string, first_name string, last_name string, "
    "full_name string, email string, phone_e164 string, date_of_birth date, address_line1 string, city string, "
    "postcode string, country string, loyalty_card string, marketing_opt_in boolean, created_at timestamp, "
    "updated_at timestamp, _source_file string, _line_number long, _run_id string, ingest_date date, row_hash string"
)
DAY1, DAY2, DAY3 = D(2026, 1, 1), D(2026, 1, 2), D(2026, 1, 3)


def _customer(system, cid, first, last, email, phone, card=None, *, n=1):
    """A silver customer record; ``n`` keeps different people apart (birth date, address, postcode, city)."""
    kind = "pos" if system == "pos" else "online"
    cities = {1: ("Leeds", "LS1 1AA"), 2: ("Bristol", "BS1 4DJ"), 3: ("York", "YO1 7HH")}
    city, postcode = cities[n]
    return (system, kind, cid, first, last, f"{first} {last}", email, phone, D(1970 + 9 * n, n, 10 + n),
            f"{n * 11} {['High St', 'Mill Lane', 'Park Road'][n - 1]}", city, postcode, "GB", card, True,
            ts(D(2025, 6, 1)), ts(D(2025, 6, 1)), f"{system}-customers.csv", n, "r", D(2025, 6, 1), f"{system}{cid}")


def _lines(day):
    if day == DAY1:
        return [
            line("o1", 1, "A", 2, 10, day=DAY1, customer="c1", discount=1),
            line("o1", 2, "C", 1, 5, day=DAY1, customer="c1"),
            line("o2", 1, "B", 1, 20, day=DAY1, customer="c2", channel="app"),
            line("t1", 1, "A", 1, 11, day=DAY1, customer=None, system="pos", channel="store", store="S1", payment="cash"),
            line("t2", 1, "C", 3, 5, day=DAY1, customer="m1", system="pos", channel="store", store="S1"),
        ]
    return [
        line("o3", 1, "A", 1, 10, day=DAY2, customer="c1"),
        line("r1", 1, "C", -1, 5, day=DAY2, customer="c1"),
        line("o4", 1, "B", 1, 20, day=DAY2, customer="c2", channel="app", line_type="cancelled"),
    ]


def _write(spark, settings, name, rows, schema):
    df = spark.createDataFrame(rows, schema)
    delta.append(df, catalog_table(f"silver.{name}"), settings)


def _orders(lines):
    seen = {}
    for ln in lines:
        seen.setdefault((ln[0], ln[1]), (ln[0], ln[1], ln[5], ln[4], ln[13], ln[14], ln[12], ln[6],
                                         "desktop" if ln[0] == "online" else None, ln[15], "GBP", Decimal("0.00")))
    return list(seen.values())


def load_silver_day(spark, settings, day):
    """Write one day of tiny silver tables (catalogues and customers on the first day)."""
    if day == DAY1:
        _write(spark, settings, "customers", [
            _customer("online", "c1", "Ann", "Lee", "ann@example.com", "+447700900001"),
            _customer("online", "c2", "Bob", "Ray", "bob@example.com", "+447700900002", n=2),
            _customer("pos", "m1", "Cat", "Fox", "cat@example.com", "+447700900003", card="L1", n=3),
        ], CUSTOMERS_SCHEMA)
        _write(spark, settings, "products", [
            product("online", "A", "Alpha", "acme", "electronics", 10, 4),
            product("online", "B", "Beta", "acme", "electronics", 20, 12),
            product("online", "C", "Gamma", "zen", "home", 5, 1),
            product("pos", "A", "ALPHA", "Acme", "electronics", 11, 4),
        ], PRODUCTS_SCHEMA)
        _write(spark, settings, "stores", [
            ("pos", "S1", "Leeds", "store", "Leeds", "North", "LS1 1AA", "GB", D(2020, 1, 1)),
            ("pos", "W1", "Hub", "warehouse", "Derby", "Midlands", "DE1 1AA", "GB", D(2020, 1, 1)),
        ], STORES_SCHEMA)
    lines = _lines(day)
    _write(spark, settings, "order_lines", lines, ORDER_LINES_SCHEMA)
    _write(spark, settings, "orders", _orders(lines), ORDERS_SCHEMA)
    _write(spark, settings, "events", [
        event("view", "A", user="c1", session=f"s{day.day}", day=day),
        event("cart", "A", user="c1", session=f"s{day.day}", day=day, hour=11),
        event("purchase", "A", user="c1", session=f"s{day.day}", day=day, hour=12),
    ], EVENTS_SCHEMA)
    _write(spark, settings, "inventory_movements", [
        ("inventory", f"m{day.day}", ts(day), day, "W1", "A", "inbound", 10, money(4), None),
    ], MOVEMENTS_SCHEMA)


def _read_published(settings, manifest, name):
    from deltalake import DeltaTable

    ref = manifest.table(name)
    return DeltaTable(ref.location, version=ref.delta_version,
                      storage_options=settings.delta_storage_options() or None).to_pyarrow_table().to_pylist()


def _ensure_identity(spark, settings):
    """Until flows.identity is installed, write the provisional identity tables the identity step would own."""
    import importlib.util

    if importlib.util.find_spec("flows.identity") is not None:
        return
    from flows.publish import _identity_tables
    from lakehouse.catalog import TableSpec

    for name, df in _identity_tables(spark, settings).items():
        delta.overwrite(df, TableSpec("gold", name), settings)


def test_publish_republish_and_a_failed_gate(spark, settings):
    from flows.publish import PublishBlocked, publish_day

    # day 1: every gold table is written, gated and published as v1
    load_silver_day(spark, settings, DAY1)
    _ensure_identity(spark, settings)
    runs = publish_day(settings, DAY1, run_id="publish-test-1")
    gold_runs = {r.table_name: r for r in runs if r.layer == "publish"}
    assert {f"gold.{s.name}" for s in GOLD_PUBLISH_TABLES} <= set(gold_runs)
    assert all(r.status == "ok" for r in gold_runs.values())
    m1 = latest_manifest(settings)
    assert m1.version == 1 and m1.run_id == "publish-test-1" and m1.run_date == "2026-01-01"
    assert m1.gates["passed"] is True
    for spec in GOLD_PUBLISH_TABLES:
        assert spec.qualified in m1.tables
    fact = _read_published(settings, m1, "fact_sales")
    silver = [r for r in delta.read_table(spark, catalog_table("silver.order_lines"), settings).collect()]
    assert len(fact) == len(silver) == 5
    assert sum(r["net_amount"] for r in fact) == sum(r["line_total"] for r in silver)
    assert {r["customer_status"] for r in fact if r["order_id"] == "t1"} == {"anonymous"}
    daily = {(r["event_date"], r["channel"]): r for r in _read_published(settings, m1, "daily_sales_summary")}
    assert daily[(DAY1, "all")]["total_revenue"] == sum(r["revenue_amount"] for r in fact)
    assert len(_read_published(settings, m1, "customer_metrics")) >= 2

    # day 2: a new publication; the first is still readable at its own versions
    load_silver_day(spark, settings, DAY2)
    _ensure_identity(spark, settings)
    publish_day(settings, DAY2)
    m2 = latest_manifest(settings)
    assert m2.version == 2
    fact2 = _read_published(settings, m2, "fact_sales")
    assert len(fact2) == 8
    assert len(_read_published(settings, m1, "fact_sales")) == 5
    history = _read_published(settings, m2, "customer_score_history")
    assert {r["as_of_date"] for r in history} == {DAY1, DAY2}

    # day 3 carries a line that breaks the sign convention: the gold gate blocks, v2 stays in force
    bad = list(line("bad1", 1, "A", 2, 10, day=DAY3, customer="c1"))
    bad[12] = "return"                                            # a 'return' of +2 units
    _write(spark, settings, "order_lines", [tuple(bad)], ORDER_LINES_SCHEMA)
    with pytest.raises(PublishBlocked) as err:
        publish_day(settings, DAY3, run_id="publish-test-blocked")
    message = str(err.value)
    assert "gold.fact_sales" in message and "quantity_sign_follows_line_type" in message
    assert "publication v2 stays in force" in message
    after = latest_manifest(settings)
    assert after.version == 2 and after.as_dict() == m2.as_dict()
    assert _read_published(settings, after, "fact_sales") == fact2
    # the unpublished write exists (a newer Delta version) but no reader is pointed at it
    live = delta.read_table(spark, catalog_table("gold.fact_sales"), settings).count()
    assert live == len(fact2) + 1
    assert delta.table_version(catalog_table("gold.fact_sales"), settings) > m2.table("fact_sales").delta_version
    recorded = delta.read_table(spark, catalog_table("system.pipeline_runs"), settings).where(
        "run_id = 'publish-test-blocked'").collect()
    assert recorded and all(r["status"] == "failed" for r in recorded)
    assert any("quantity_sign_follows_line_type" in r["message"] for r in recorded if r["table_name"] == "gold.fact_sales")


def test_gold_tables_without_identity_are_built_while_identity_resolves(spark, settings, monkeypatch):
    """The dimensions, the funnel and the inventory marts are written while identity runs (identity here waits for
    them, so a publication that built them only afterwards would never get past it), and none of the tables that
    need identity is; the publication is complete and its runs follow the build order."""
    import time

    import flows.publish as P
    from lakehouse.catalog import TableSpec

    load_silver_day(spark, settings, DAY1)
    _ensure_identity(spark, settings)
    resolve = P._resolve_identity
    seen: dict[str, set] = {}

    def exists(names):
        return {n for n in names if delta.table_exists(TableSpec("gold", n), settings)}

    def slow_identity(*args, **kwargs):
        result = resolve(*args, **kwargs)
        deadline = time.monotonic() + 120
        while exists(P.WITHOUT_IDENTITY) != set(P.WITHOUT_IDENTITY):
            assert time.monotonic() < deadline, f"built beside identity: only {sorted(exists(P.WITHOUT_IDENTITY))}"
            time.sleep(0.05)
        seen["others"] = exists(set(P.BUILD_ORDER) - set(P.WITHOUT_IDENTITY))
        return result

    monkeypatch.setattr(P, "_resolve_identity", slow_identity)
    runs = P.publish_day(settings, DAY1, run_id="publish-beside")
    assert seen["others"] == set()
    gold = [r.table_name.removeprefix("gold.") for r in runs if r.layer == "publish" and r.table_name != "gold.golden_customers"]
    assert [n for n in gold if n in P.BUILD_ORDER] == list(P.BUILD_ORDER)
    assert latest_manifest(settings).gates["passed"] is True


@pytest.mark.unit
def test_beside_waits_for_both_and_raises_the_first_failure():
    import threading
    import time

    from flows.publish import _beside

    finished = threading.Event()

    def background(fail: bool):
        def run():
            time.sleep(0.2)
            finished.set()
            if fail:
                raise ValueError("background")
        return run

    def work_fails():
        raise KeyError("work")

    assert _beside(background(False), lambda: 42) == 42 and finished.is_set()
    finished.clear()
    with pytest.raises(ValueError, match="background"):
        _beside(background(True), lambda: 42)
    assert finished.is_set()
    finished.clear()
    with pytest.raises(KeyError, match="work"):
        _beside(background(True), work_fails)
    assert finished.is_set()  # the background work was not cut short by the other's failure
