"""Refine (bronze -> silver) end to end on tiny bronze tables written inline: gate and quarantine, latest-wins dedupe,
MERGE idempotency, late corrections, the unified order lines, accounting and quarantine replay."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from lakehouse import delta
from lakehouse.catalog import (
    PIPELINE_RUNS, QUARANTINE, SILVER_CUSTOMERS, SILVER_EVENTS, SILVER_INVENTORY_MOVEMENTS, SILVER_ORDER_LINES,
    SILVER_ORDERS, SILVER_PAYMENTS, SILVER_PRODUCTS, SILVER_STORES, bronze_table,
)
from lakehouse.errors import AccountingError, QualityGateFailed
from silver_helpers import rows_of, write_bronze

pytestmark = pytest.mark.flow

D1 = dt.date(2026, 1, 3)
D2 = dt.date(2026, 1, 4)
LATER = dt.datetime(2026, 1, 4, 6, 0, 0)


def _quarantine(spark, settings, table):
    """{line number: failed rules} of a silver table's unreleased quarantine rows."""
    out = {}
    for r in rows_of(spark, QUARANTINE, settings, where=f"source_table = '{table}' AND released_run_id IS NULL"):
        key = json.loads(r["index_key"])
        out[(key["_source_file"].rsplit("/", 3)[1], int(key["_line_number"]))] = r["failed_rules"]
    return out


def _by_key(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


# ---------------------------------------------------------------------------------------------------------------
# Customers: typing, standardization, quarantine, dedupe, accounting
# ---------------------------------------------------------------------------------------------------------------
def _write_customers(spark, settings):
    write_bronze(spark, settings, "online", "customers", [
        {"customer_id": "C1", "email": " Jane@X.com ", "first_name": "jane", "last_name": "DOE", "phone": "07700 900123",
         "date_of_birth": "1990-02-03", "country": "uk", "postcode": "sw1a1aa", "marketing_opt_in": "true",
         "created_at": "2025-01-01T00:00:00Z", "updated_at": "2026-01-02T10:00:00Z"},
        # a newer version of C1 in the same batch: wins (updated_at)
        {"customer_id": "C1", "email": "jane.new@x.com", "first_name": "Jane", "last_name": "Doe", "country": "GB",
         "created_at": "2025-01-01T00:00:00Z", "updated_at": "2026-01-02T11:00:00Z"},
        {"customer_id": "C2", "date_of_birth": "31/02/1990", "created_at": "2025-01-01T00:00:00Z"},  # impossible date
        {"_parse_error": "3 of 13 fields", "_raw_line": "C3,a,b"},  # malformed line
        {"customer_id": "C4", "email": "not-an-email", "marketing_opt_in": "maybe",
         "created_at": "2025-01-01T00:00:00Z"},  # bad email and unknown boolean
    ], day=D1)
    write_bronze(spark, settings, "pos", "members", [
        {"member_id": "M1", "loyalty_card": "lc 001", "full_name": "Doe, Jane", "email": "JANE@X.COM",
         "phone": "+44 (0)7700 900123", "birth_date": "03/02/1990", "opt_in": "Y", "joined_at": "2024-05-01 10:00:00",
         "post_code": "SW1A 1AA", "country": "United Kingdom", "street": " 1  High  St ", "town": "london"},
    ], day=D1)


def test_customers_refine_types_standardizes_quarantines_and_balances(spark, settings):
    from flows.refine import refine_day

    _write_customers(spark, settings)
    [run] = refine_day(settings, D1, tables=["customers"])
    assert (run.rows_in, run.rows_out, run.rows_quarantined, run.rows_deduplicated) == (6, 2, 3, 1)
    assert run.balanced and run.status == "ok"

    silver = _by_key(rows_of(spark, SILVER_CUSTOMERS, settings), "source_system", "source_customer_id")
    assert set(silver) == {("online", "C1"), ("pos", "M1")}
    c1 = silver[("online", "C1")]
    assert (c1["email"], c1["updated_at"], c1["_line_number"]) == ("jane.new@x.com", dt.datetime(2026, 1, 2, 11), 2)
    m1 = silver[("pos", "M1")]
    assert (m1["first_name"], m1["last_name"], m1["full_name"]) == ("Jane", "Doe", "Jane Doe")
    assert (m1["email"], m1["phone_e164"], m1["postcode"], m1["country"]) == ("jane@x.com", "+447700900123", "SW1A 1AA", "GB")
    assert (m1["date_of_birth"], m1["marketing_opt_in"], m1["loyalty_card"]) == (dt.date(1990, 2, 3), True, "LC001")
    assert (m1["address_line1"], m1["city"], m1["created_at"]) == ("1 High St", "London", dt.datetime(2024, 5, 1, 10))
    assert len(m1["row_hash"]) == 32 and m1["_run_id"] == run.run_id

    assert _quarantine(spark, settings, "silver.customers") == {
        ("customers", 3): ["values_parse"],
        ("customers", 4): ["customer_id_present", "no_parse_error"],
        ("customers", 5): ["email_well_formed", "values_parse"],
    }
    [q] = rows_of(spark, QUARANTINE, settings, where="index_key LIKE '%\"_line_number\":\"3\"%'")
    assert "date_of_birth" in q["reasons"] and json.loads(q["row_json"])["date_of_birth"] == "31/02/1990"
    assert json.loads(q["business_key"]) == {"source_system": "online", "source_customer_id": "C2"}
    assert q["ingest_date"] == D1
    # Each quarantined row keeps its own original bronze row (serialized only once the gate quarantined it).
    bronze = {(b["_source_file"], b["_line_number"]): b for b in rows_of(spark, bronze_table("online", "customers"), settings)}
    for q in rows_of(spark, QUARANTINE, settings):
        key, original = json.loads(q["index_key"]), json.loads(q["row_json"])
        b = bronze[(key["_source_file"], int(key["_line_number"]))]
        # bronze's columns in bronze's order (nulls omitted), as refine always wrote them: the JSON is part of the
        # quarantine's MERGE key, so a rerun must produce it byte for byte
        assert list(original) == [*(c for c, v in b.items() if v is not None), "_bronze_table"]
        assert original["_bronze_table"] == "bronze.online_customers"
        assert (original["_source_file"], original["_line_number"]) == (b["_source_file"], b["_line_number"])
        assert {c: original.get(c) for c, v in b.items() if isinstance(v, str)} == {c: v for c, v in b.items()
                                                                                   if isinstance(v, str)}

    [recorded] = rows_of(spark, PIPELINE_RUNS, settings, where="layer = 'silver'")
    assert (recorded["rows_in"], recorded["rows_out"], recorded["rows_quarantined"], recorded["rows_deduplicated"]) == (6, 2, 3, 1)
    assert recorded["balanced"] is True


def test_late_correction_updates_and_older_record_changes_nothing(spark, settings):
    from flows.refine import refine_day

    _write_customers(spark, settings)
    refine_day(settings, D1, tables=["customers"])
    write_bronze(spark, settings, "online", "customers", [
        # corrected later: a newer version replaces the stored row
        {"customer_id": "C1", "email": "jane.corrected@x.com", "first_name": "Jane", "last_name": "Doe",
         "created_at": "2025-01-01T00:00:00Z", "updated_at": "2026-01-03T09:00:00Z"},
        # an older version arriving late: silver keeps the newer one
        {"customer_id": "C1", "email": "jane.old@x.com", "created_at": "2025-01-01T00:00:00Z",
         "updated_at": "2025-06-01T00:00:00Z"},
    ], day=D2, file="f-0002.csv", ingested_at=LATER)
    write_bronze(spark, settings, "pos", "members", [
        # same version (no updated_at, same joined_at) with different content from a later file: replaces
        {"member_id": "M1", "full_name": "Doe, Janet", "joined_at": "2024-05-01 10:00:00"},
    ], day=D2, file="f-0002.csv", ingested_at=LATER)
    [run] = refine_day(settings, D2, tables=["customers"])
    assert (run.rows_in, run.rows_out, run.rows_quarantined, run.rows_deduplicated) == (3, 2, 0, 1)
    silver = _by_key(rows_of(spark, SILVER_CUSTOMERS, settings), "source_system", "source_customer_id")
    assert silver[("online", "C1")]["email"] == "jane.corrected@x.com"
    assert silver[("online", "C1")]["ingest_date"] == D2
    assert silver[("pos", "M1")]["first_name"] == "Janet"

    # rerunning the older day now changes nothing: its records are older than what silver holds
    before = rows_of(spark, SILVER_CUSTOMERS, settings)
    [rerun] = refine_day(settings, D1, tables=["customers"])
    assert (rerun.rows_out, rerun.rows_deduplicated, rerun.rows_quarantined) == (0, 3, 3)
    assert rows_of(spark, SILVER_CUSTOMERS, settings) == before


# ---------------------------------------------------------------------------------------------------------------
# Sales: orders + payments + both systems' lines in one silver.order_lines
# ---------------------------------------------------------------------------------------------------------------
SALES_TABLES = ["payments", "orders", "order_lines"]


def _order(oid, status="placed", channel="web", customer="C1", ts="2026-01-03T09:00:00Z", device="desktop", **kw):
    return {"order_id": oid, "customer_id": customer, "order_ts": ts, "status": status, "channel": channel,
            "device_type": device, "currency": "gbp", "updated_at": ts, **kw}


def _line(oid, n, qty, price, total, discount="0.00", updated="2026-01-03T09:00:00Z", sku="SKU-1"):
    return {"order_id": oid, "line_number": str(n), "sku": sku, "quantity": qty, "unit_price": price,
            "discount_amount": discount, "line_total": total, "updated_at": updated}


def _write_sales_day1(spark, settings):
    write_bronze(spark, settings, "online", "orders", [
        _order("O1"), _order("O2", status="Canceled", channel="APP", device="Mobile"), _order("O3", status="returned"),
        _order("O4", status="lost"),
    ], day=D1)
    write_bronze(spark, settings, "online", "order_lines", [
        _line("O1", 1, "2", "10.00", "19.00", discount="1.00"),        # 1
        _line("O1", 2, "1", "5.00", "5.00"),                            # 2
        _line("O2", 1, "1", "3.00", "3.00"),                            # 3 cancelled order
        _line("O3", 1, "-1", "10.00", "-10.00"),                        # 4 return
        _line("O4", 1, "1", "1.00", "1.00"),                            # 5 header quarantined -> orphan
        _line("O9", 1, "1", "2.00", "2.00"),                            # 6 header not arrived yet -> orphan
        _line("O1", 3, "abc", "2.00", "2.00"),                          # 7 quantity does not parse
        _line("O1", 4, "2", "10.00", "25.00"),                          # 8 total inconsistent
        {**_line("O1", 1, "2", "10.00", "19.00", discount="1.00")},     # 9 exact duplicate of line 1
    ], day=D1)
    write_bronze(spark, settings, "online", "payments", [
        {"payment_id": "P1", "order_id": "O1", "payment_ts": "2026-01-03T09:01:00Z", "payment_method": "Credit Card",
         "amount": "24.00", "status": "captured"},
        {"payment_id": "P2", "order_id": "O2", "payment_ts": "2026-01-03T09:02:00Z", "payment_method": "paypal",
         "amount": "3.00", "status": "captured"},
    ], day=D1)
    write_bronze(spark, settings, "pos", "transactions", [
        {"transaction_id": "T1", "store_id": "S1", "member_id": "M1", "transaction_ts": "2026-01-03 10:00:00",
         "transaction_type": "sale", "payment_method": "card", "total_amount": "7.50"},
        {"transaction_id": "T2", "store_id": "S1", "member_id": None, "transaction_ts": "2026-01-03 11:00:00",
         "transaction_type": "Return", "payment_method": "cash", "total_amount": "-4.00"},
    ], day=D1)
    write_bronze(spark, settings, "pos", "transaction_lines", [
        {"transaction_id": "T1", "line_number": "1", "item_code": "SKU-1", "quantity": "3", "unit_price": "2.50",
         "discount": "0", "line_total": "7.50"},
        {"transaction_id": "T2", "line_number": "1", "item_code": "SKU-2", "quantity": "-1", "unit_price": "4.00",
         "discount": "0", "line_total": "-4.00"},
    ], day=D1)


def test_sales_unify_both_systems_in_order_lines(spark, settings):
    from flows.refine import refine_day

    _write_sales_day1(spark, settings)
    runs = {r.table_name: r for r in refine_day(settings, D1, tables=SALES_TABLES)}
    assert all(r.balanced and r.status == "ok" for r in runs.values())
    lines_run = runs["silver.order_lines"]
    assert (lines_run.rows_in, lines_run.rows_out, lines_run.rows_quarantined, lines_run.rows_deduplicated) == (11, 6, 4, 1)

    orders = _by_key(rows_of(spark, SILVER_ORDERS, settings), "source_system", "order_id")
    assert set(orders) == {("online", "O1"), ("online", "O2"), ("online", "O3"), ("pos", "T1"), ("pos", "T2")}
    o1, o2, t2 = orders[("online", "O1")], orders[("online", "O2")], orders[("pos", "T2")]
    assert (o1["order_total"], o1["payment_method"], o1["currency"], o1["order_date"]) == (Decimal("24.00"), "card", "GBP", D1)
    assert (o2["status"], o2["channel"], o2["device_type"], o2["payment_method"]) == ("cancelled", "app", "mobile", "paypal")
    assert (t2["channel"], t2["status"], t2["order_total"], t2["store_id"]) == ("store", "returned", Decimal("-4.00"), "S1")

    lines = _by_key(rows_of(spark, SILVER_ORDER_LINES, settings), "source_system", "order_id", "line_number")
    got = {k: (r["channel"], r["source_customer_id"], r["store_id"], r["line_type"], r["payment_method"], r["currency"],
               r["quantity"], r["line_total"]) for k, r in lines.items()}
    assert got == {
        ("online", "O1", 1): ("web", "C1", None, "sale", "card", "GBP", 2, Decimal("19.00")),
        ("online", "O1", 2): ("web", "C1", None, "sale", "card", "GBP", 1, Decimal("5.00")),
        ("online", "O2", 1): ("app", "C1", None, "cancelled", "paypal", "GBP", 1, Decimal("3.00")),
        ("online", "O3", 1): ("web", "C1", None, "return", None, "GBP", -1, Decimal("-10.00")),
        ("pos", "T1", 1): ("store", "M1", "S1", "sale", "card", "GBP", 3, Decimal("7.50")),
        ("pos", "T2", 1): ("store", None, "S1", "return", "cash", "GBP", -1, Decimal("-4.00")),
    }
    assert all(r["order_ts"] is not None and r["order_date"] == D1 for r in lines.values())
    assert {r["source_kind"] for r in lines.values()} == {"online", "pos"}

    assert _quarantine(spark, settings, "silver.orders") == {("orders", 4): ["status_known"]}
    assert _quarantine(spark, settings, "silver.order_lines") == {
        ("order_lines", 5): ["order_header_found"],
        ("order_lines", 6): ["order_header_found"],
        ("order_lines", 7): ["quantity_present", "values_parse"],
        ("order_lines", 8): ["line_total_consistent"],
    }


def _snapshot(spark, settings, specs):
    return {s.qualified: rows_of(spark, s, settings) for s in specs}


def test_rerunning_a_day_three_times_leaves_silver_and_quarantine_identical(spark, settings):
    from flows.refine import refine_day

    _write_sales_day1(spark, settings)
    specs = [SILVER_PAYMENTS, SILVER_ORDERS, SILVER_ORDER_LINES, QUARANTINE]
    refine_day(settings, D1, tables=SALES_TABLES)
    first = _snapshot(spark, settings, specs)
    assert sum(len(v) for v in first.values()) > 10
    for _ in range(2):
        runs = refine_day(settings, D1, tables=SALES_TABLES)
        assert all(r.rows_out == 0 and r.balanced for r in runs)
        assert _snapshot(spark, settings, specs) == first


def test_a_line_corrected_within_the_batch_gives_its_order_the_latest_total(spark, settings):
    """Two versions of one line with different totals, and a resent copy of another, in one batch: the order's total
    is the sum of the latest version of each line (set by the lines step), and reruns change nothing."""
    from flows.refine import refine_day

    write_bronze(spark, settings, "online", "orders", [_order("O5")], day=D1)
    write_bronze(spark, settings, "online", "order_lines", [
        _line("O5", 1, "1", "5.00", "5.00", updated="2026-01-03T09:00:00Z"),
        _line("O5", 1, "1", "7.00", "7.00", updated="2026-01-03T10:00:00Z"),  # the correction wins
        _line("O5", 2, "2", "1.50", "3.00"),
        _line("O5", 2, "2", "1.50", "3.00"),  # a resent copy
    ], day=D1)
    runs = {r.table_name: r for r in refine_day(settings, D1, tables=SALES_TABLES)}
    assert (runs["silver.order_lines"].rows_out, runs["silver.order_lines"].rows_deduplicated) == (2, 2)
    lines = _by_key(rows_of(spark, SILVER_ORDER_LINES, settings), "order_id", "line_number")
    assert (lines[("O5", 1)]["line_total"], lines[("O5", 2)]["line_total"]) == (Decimal("7.00"), Decimal("3.00"))
    [o5] = rows_of(spark, SILVER_ORDERS, settings)
    assert o5["order_total"] == Decimal("10.00")

    first = _snapshot(spark, settings, [SILVER_ORDERS, SILVER_ORDER_LINES])
    runs = refine_day(settings, D1, tables=SALES_TABLES)
    assert all(r.rows_out == 0 and r.balanced for r in runs)
    assert _snapshot(spark, settings, [SILVER_ORDERS, SILVER_ORDER_LINES]) == first


def test_an_online_order_total_is_the_sum_of_its_silver_lines_only(spark, settings):
    """An online order whose only line is quarantined has no total (its bronze line is not in silver); when a
    corrected line arrives on a later day, the order's total becomes that line's total."""
    from flows.refine import refine_day

    write_bronze(spark, settings, "online", "orders", [_order("O6")], day=D1)
    write_bronze(spark, settings, "online", "order_lines", [_line("O6", 1, "2", "10.00", "25.00")], day=D1)
    runs = refine_day(settings, D1, tables=SALES_TABLES)
    assert all(r.balanced for r in runs)
    assert list(_quarantine(spark, settings, "silver.order_lines").values()) == [["line_total_consistent"]]
    [o6] = rows_of(spark, SILVER_ORDERS, settings)
    assert o6["order_total"] is None

    write_bronze(spark, settings, "online", "order_lines",
                 [_line("O6", 1, "2", "10.00", "20.00", updated="2026-01-04T09:00:00Z")], day=D2, file="f-0002.csv",
                 ingested_at=LATER)
    refine_day(settings, D2, tables=SALES_TABLES)
    [o6] = rows_of(spark, SILVER_ORDERS, settings)
    assert o6["order_total"] == Decimal("20.00")
    assert [r["line_total"] for r in rows_of(spark, SILVER_ORDER_LINES, settings)] == [Decimal("20.00")]


def test_lines_held_on_several_days_are_released_by_one_replay(spark, settings):
    """Lines of one order held on two ingest days (its header is late) are released together, by one replay run
    dated by the first held day, and silver ends as if the header had come first."""
    from flows.refine import refine_day

    d3 = D2 + dt.timedelta(days=1)
    write_bronze(spark, settings, "online", "orders", [_order("O1")], day=D1)
    write_bronze(spark, settings, "online", "order_lines", [_line("O1", 1, "1", "5.00", "5.00"),
                                                            _line("O7", 1, "2", "3.00", "6.00")], day=D1)
    refine_day(settings, D1, tables=SALES_TABLES)
    write_bronze(spark, settings, "online", "order_lines", [_line("O7", 2, "1", "4.00", "4.00")], day=D2,
                 file="f-0002.csv", ingested_at=LATER)
    refine_day(settings, D2, tables=SALES_TABLES)
    assert list(_quarantine(spark, settings, "silver.order_lines").values()) == [["order_header_found"]] * 2

    write_bronze(spark, settings, "online", "orders", [_order("O7", customer="C7")], day=d3, file="f-0003.csv",
                 ingested_at=LATER + dt.timedelta(days=1))
    runs = refine_day(settings, d3, tables=SALES_TABLES)
    [release] = [r for r in runs if r.message.startswith("order lines whose header arrived later")]
    assert (release.run_date, release.rows_in, release.rows_out, release.rows_quarantined) == (D1, 2, 2, 0)
    assert release.balanced and f"held from {D1.isoformat()}, {D2.isoformat()}" in release.message
    assert _quarantine(spark, settings, "silver.order_lines") == {}
    released = rows_of(spark, QUARANTINE, settings, where="released_run_id IS NOT NULL")
    assert {r["released_run_id"] for r in released} == {release.run_id} and len(released) == 2
    lines = _by_key(rows_of(spark, SILVER_ORDER_LINES, settings), "order_id", "line_number")
    assert {(k, lines[k]["source_customer_id"], lines[k]["ingest_date"]) for k in lines if k[0] == "O7"} == {
        (("O7", 1), "C7", D1), (("O7", 2), "C7", D2)}
    [o7] = [r for r in rows_of(spark, SILVER_ORDERS, settings) if r["order_id"] == "O7"]
    assert o7["order_total"] == Decimal("10.00")  # the sum of both released lines


def test_late_headers_release_their_lines_and_replay_after_a_rule_fix(spark, settings, tmp_path, monkeypatch):
    import shutil

    import expectations.rules as rules
    from flows.refine import refine_day, replay_quarantine

    _write_sales_day1(spark, settings)
    refine_day(settings, D1, tables=SALES_TABLES)
    write_bronze(spark, settings, "online", "orders", [
        _order("O9", customer="C9"),  # the header of line 6, a day late
        # O1 is cancelled a day later: its stored lines follow their header
        {**_order("O1", status="cancelled"), "updated_at": "2026-01-04T08:00:00Z"},
    ], day=D2, file="f-0002.csv", ingested_at=LATER)
    runs = refine_day(settings, D2, tables=SALES_TABLES)
    o1_lines = [r for r in rows_of(spark, SILVER_ORDER_LINES, settings) if r["order_id"] == "O1"]
    assert {(r["line_number"], r["line_type"], r["order_status"]) for r in o1_lines} == {
        (1, "cancelled", "cancelled"), (2, "cancelled", "cancelled")}
    [o1] = [r for r in rows_of(spark, SILVER_ORDERS, settings) if r["order_id"] == "O1"]
    assert (o1["status"], o1["order_total"]) == ("cancelled", Decimal("24.00"))

    # The line that waited for its header was released by the refine of the day the header came.
    [waiting] = [r for r in runs if r.message.startswith("order lines whose header arrived later")]
    assert (waiting.run_date, waiting.rows_in, waiting.rows_out, waiting.rows_quarantined) == (D1, 1, 1, 0)
    line = _by_key(rows_of(spark, SILVER_ORDER_LINES, settings), "order_id", "line_number")[("O9", 1)]
    assert (line["source_customer_id"], line["line_type"], line["_line_number"]) == ("C9", "sale", 6)
    [released] = rows_of(spark, QUARANTINE, settings, where="released_run_id IS NOT NULL")
    assert released["released_run_id"] == waiting.run_id and json.loads(released["index_key"])["_line_number"] == "6"
    assert set(_quarantine(spark, settings, "silver.order_lines")) == {("order_lines", 5), ("order_lines", 7),
                                                                      ("order_lines", 8)}

    # After a rule fix (line totals only warned about), a replay lets line 8 through; the others stay.
    fixed = tmp_path / "rules"
    shutil.copytree(rules.RULES_DIR, fixed, ignore=shutil.ignore_patterns("*.py", "_*"))
    path = fixed / "silver.order_lines.yaml"
    text = path.read_text()
    start = text.index("- name: line_total_consistent")
    path.write_text(text[:start] + text[start:].replace("severity: quarantine", "severity: warn", 1))
    monkeypatch.setattr(rules, "RULES_DIR", fixed)
    [run] = replay_quarantine(settings, tables=["order_lines"])
    assert (run.rows_in, run.rows_out, run.rows_quarantined, run.rows_deduplicated) == (3, 1, 2, 0) and run.balanced
    assert _by_key(rows_of(spark, SILVER_ORDER_LINES, settings), "order_id", "line_number")[("O1", 4)]["line_total"] == Decimal("25.00")
    assert _quarantine(spark, settings, "silver.order_lines") == {
        ("order_lines", 5): ["order_header_found"],
        ("order_lines", 7): ["quantity_present", "values_parse"],
    }
    # a second replay finds nothing new to release and writes nothing
    [again] = replay_quarantine(settings, tables=["order_lines"])
    assert (again.rows_in, again.rows_out, again.rows_quarantined) == (2, 0, 2)


def test_accounting_that_does_not_balance_fails_the_run(spark, settings, monkeypatch):
    from flows import refine
    from transforms.silver import entities as E

    _write_sales_day1(spark, settings)
    refine.refine_day(settings, D1, tables=["payments", "orders"])
    original = E.attach_order_headers
    monkeypatch.setattr(E, "attach_order_headers", lambda lines, *, headers: original(lines, headers=headers).unionByName(
        original(lines, headers=headers).limit(1)))  # a join that silently adds a row
    with pytest.raises(AccountingError, match="accounting does not balance for silver.order_lines"):
        refine.refine_day(settings, D1, tables=["order_lines"])
    [failed] = rows_of(spark, PIPELINE_RUNS, settings, where="table_name = 'silver.order_lines'")
    assert failed["status"] == "failed" and "read 11 rows" in failed["message"]


def test_a_quarantined_row_without_its_original_fails_the_run_before_writing(spark, settings, monkeypatch):
    from flows import refine

    _write_customers(spark, settings)
    # bronze rows that cannot be found again (e.g. rewritten between the read and the quarantine)
    monkeypatch.setattr(refine, "_with_original_rows", lambda spark, settings, feeds, days, quarantined: quarantined)
    with pytest.raises(AccountingError, match="3 of the 3 rows quarantined from silver.customers .* have no original row"):
        refine.refine_day(settings, D1, tables=["customers"])
    assert not delta.table_exists(QUARANTINE, settings) and not delta.table_exists(SILVER_CUSTOMERS, settings)
    [failed] = rows_of(spark, PIPELINE_RUNS, settings, where="table_name = 'silver.customers'")
    assert failed["status"] == "failed"


def test_fail_rule_on_the_merged_table_stops_the_flow(spark, settings):
    from flows.refine import refine_day

    _write_customers(spark, settings)
    refine_day(settings, D1, tables=["customers"])
    dup = delta.read_table(spark, SILVER_CUSTOMERS, settings).where("source_customer_id = 'M1'")
    delta.append(dup, SILVER_CUSTOMERS, settings)  # someone wrote a duplicate key behind the pipeline's back
    with pytest.raises(QualityGateFailed, match="key_unique"):
        refine_day(settings, D1, tables=["customers"])


# ---------------------------------------------------------------------------------------------------------------
# Products, stores, events, inventory
# ---------------------------------------------------------------------------------------------------------------
def test_other_tables_refine(spark, settings):
    from flows.refine import refine_day

    write_bronze(spark, settings, "online", "products", [
        {"sku": "SKU-1", "product_name": " Quiet  Headphones ", "brand": " SONY ", "category_code": "electronics.audio.headphones",
         "unit_price": "59.99", "unit_cost": "30.00", "currency": "gbp", "updated_at": "2026-01-01T00:00:00Z"},
        {"sku": "SKU-2", "product_name": "Mystery", "unit_price": "-1.00", "updated_at": "2026-01-01T00:00:00Z"},
    ], day=D1)
    write_bronze(spark, settings, "pos", "products", [
        {"item_code": "SKU-1", "description": "SONY HEADPHONES", "brand": "Sony", "department": "Electronics > Audio",
         "price": "59.99", "cost": "30", "updated_at": "2026-01-01 00:00:00"},
    ], day=D1)
    write_bronze(spark, settings, "pos", "stores", [
        {"store_id": "S1", "store_name": "Leeds", "location_type": "Store", "city": "Leeds", "postcode": "ls11ub",
         "country": "uk", "opened_at": "2015-03-01"},
        {"store_id": "W1", "store_name": "DC", "location_type": "spaceport", "country": "GB"},
    ], day=D1)
    write_bronze(spark, settings, "clickstream", "events", [
        {"event_time": "2026-01-03 10:15:00 UTC", "event_type": "VIEW", "product_id": "SKU-1", "category_id": "2053013552326770905",
         "category_code": None, "brand": None, "price": "59.99", "user_id": "C1", "user_session": "s1", "device_type": "mobile"},
        {"event_time": "2026-01-03 10:15:00 UTC", "event_type": "VIEW", "product_id": "SKU-1", "category_id": "2053013552326770905",
         "category_code": None, "brand": None, "price": "59.99", "user_id": "C1", "user_session": "s1", "device_type": "mobile"},
        {"event_time": "2026-01-03 10:16:00 UTC", "event_type": "zoom", "product_id": "SKU-1", "user_session": "s1"},
    ], day=D1, file="e-0001.jsonl")
    write_bronze(spark, settings, "inventory", "movements", [
        {"movement_id": "MV1", "movement_ts": "2026-01-03T08:00:00Z", "location_id": "W1", "sku": "SKU-1",
         "movement_type": "Inbound", "quantity": "100", "unit_cost": "30.00", "reference": "PO-1"},
        {"movement_id": "MV2", "movement_ts": "2026-01-03T08:00:00Z", "location_id": "W1", "sku": "SKU-1",
         "movement_type": "inbound", "quantity": "abc", "unit_cost": "30.00"},
    ], day=D1, file="m-0001.parquet")
    runs = {r.table_name: r for r in refine_day(settings, D1, tables=["products", "stores", "events", "inventory_movements"])}
    assert all(r.balanced for r in runs.values())
    assert [(runs[t].rows_in, runs[t].rows_out, runs[t].rows_quarantined, runs[t].rows_deduplicated) for t in
            ("silver.products", "silver.stores", "silver.events", "silver.inventory_movements")] == [
        (3, 2, 1, 0), (2, 1, 1, 0), (3, 1, 1, 1), (2, 1, 1, 0)]

    products = _by_key(rows_of(spark, SILVER_PRODUCTS, settings), "source_system", "sku")
    on, pos = products[("online", "SKU-1")], products[("pos", "SKU-1")]
    assert (on["product_name"], on["brand"], on["currency"], on["unit_price"]) == ("Quiet Headphones", "sony", "GBP", Decimal("59.99"))
    assert (on["category_l1"], on["category_l2"], on["category_l3"]) == ("electronics", "audio", "headphones")
    assert (pos["category_code"], pos["category_l3"], pos["unit_cost"], pos["currency"]) == ("electronics.audio", "unknown", Decimal("30.00"), "GBP")

    [store] = rows_of(spark, SILVER_STORES, settings)
    assert (store["location_type"], store["postcode"], store["country"], store["opened_at"]) == ("store", "LS1 1UB", "GB", dt.date(2015, 3, 1))

    [event] = rows_of(spark, SILVER_EVENTS, settings)
    assert (event["event_type"], event["brand"], event["category_code"], event["category_l1"]) == ("view", "unknown", "unknown", "unknown")
    assert (event["event_date"], event["event_hour"], event["event_day_of_week"]) == (D1, 10, 6)
    assert (event["category_id"], event["price"], event["device_type"]) == (2053013552326770905, Decimal("59.99"), "mobile")
    import hashlib

    assert event["event_id"] == hashlib.sha256(b"2026-01-03 10:15:00|C1|SKU-1|s1|view").hexdigest()

    [move] = rows_of(spark, SILVER_INVENTORY_MOVEMENTS, settings)
    assert (move["movement_type"], move["quantity"], move["movement_date"]) == ("inbound", 100, D1)
    assert _quarantine(spark, settings, "silver.events") == {("events", 3): ["event_type_known"]}
    assert _quarantine(spark, settings, "silver.stores") == {("stores", 2): ["location_type_known"]}


@pytest.mark.s3
def test_refine_on_s3(spark, s3_settings):
    """The same refine on an object store (moto S3): staging, Delta MERGE, quarantine and run records."""
    from flows.refine import refine_day

    _write_customers(spark, s3_settings)
    [run] = refine_day(s3_settings, D1, tables=["customers"])
    assert (run.rows_in, run.rows_out, run.rows_quarantined, run.rows_deduplicated) == (6, 2, 3, 1) and run.balanced
    assert s3_settings.warehouse_root.startswith("s3://")
    assert {r["source_customer_id"] for r in rows_of(spark, SILVER_CUSTOMERS, s3_settings)} == {"C1", "M1"}
    assert len(_quarantine(spark, s3_settings, "silver.customers")) == 3
    from lakehouse.storage import Storage

    assert Storage(s3_settings).list_files(Storage(s3_settings).staging_dir(run.run_id, "refine"), recursive=True) == []


def test_cli_refine_and_replay_commands(tmp_path):
    """``lakehouse refine`` and ``lakehouse quarantine replay`` run from the command line; bad input is a sentence."""
    import subprocess
    import sys

    from conftest import cli_env

    env = cli_env(tmp_path / "lh")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    ok = run("refine", "--start", "2026-01-03", "--end", "2026-01-04", "--table", "stores")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("silver.stores") == 2 and "no bronze table feeds it yet" in ok.stdout
    replay = run("quarantine", "replay", "--table", "customers")
    assert replay.returncode == 0 and "nothing held in quarantine" in replay.stdout
    bad = run("refine", "--date", "2026-01-03", "--table", "nonsense")
    assert bad.returncode == 2 and "unknown silver table 'nonsense'" in bad.stderr and "Traceback" not in bad.stderr


def test_setting_columns_by_rewriting_partitions_matches_the_merge(spark, settings):
    """The order totals are set by rewriting the partitions that hold the changed orders (replaceWhere), not by a
    MERGE: the table must end exactly as the MERGE leaves it (matched rows take the columns, a null included; keys
    match null-safe; rows of a null partition too), and partitions without a changed row are not rewritten."""
    from deltalake import DeltaTable

    from lakehouse.catalog import TableSpec
    from flows.refine import _merge_columns, _set_columns_in_partitions

    d1, d2, d3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
    schema = "k string, n int, d date, total decimal(12,2), note string, other string"
    rows = [("a", 1, d1, Decimal("1.00"), "x", "keep"), ("b", 1, d1, Decimal("2.00"), "x", "keep"),
            ("c", 1, d2, Decimal("3.00"), "x", "keep"), ("d", None, d2, Decimal("4.00"), "x", "keep"),
            ("e", 1, None, Decimal("5.00"), "x", "keep"), ("f", 1, d3, Decimal("6.00"), "x", "keep")]
    # a, d (null key part, matched null-safe) and e (null partition) change; b, c, f do not; d's note becomes null.
    changes = spark.createDataFrame(
        [("a", 1, d1, Decimal("10.00"), "y", "ignored"), ("d", None, d2, Decimal("40.00"), None, "ignored"),
         ("e", 1, None, Decimal("50.00"), "y", "ignored")], schema)
    specs = [TableSpec("silver", name, keys=("k", "n"), partition_by=("d",)) for name in ("by_merge", "by_rewrite")]
    for spec in specs:
        delta.overwrite(spark.createDataFrame(rows, schema), spec, settings)
    before = {f for f in DeltaTable(specs[1].location(settings)).file_uris() if "d=2026-01-03" in f}
    assert before, "the test table is not partitioned as expected"

    _merge_columns(spark, settings, specs[0], changes, ["k", "n"], ["total", "note"])
    _set_columns_in_partitions(spark, settings, specs[1], changes, ["k", "n"], ["total", "note"])

    merged, rewritten = (sorted(tuple(r) for r in delta.read_table(spark, s, settings).select(
        "k", "n", "d", "total", "note", "other").collect()) for s in specs)
    assert rewritten == merged
    assert {r[0]: (r[3], r[4]) for r in rewritten} == {
        "a": (Decimal("10.00"), "y"), "b": (Decimal("2.00"), "x"), "c": (Decimal("3.00"), "x"),
        "d": (Decimal("40.00"), None), "e": (Decimal("50.00"), "y"), "f": (Decimal("6.00"), "x")}
    assert {f for f in DeltaTable(specs[1].location(settings)).file_uris() if "d=2026-01-03" in f} == before
    assert len(rewritten) == len(rows)


def test_rewriting_partitions_needs_one_date_partition_column(spark, settings):
    from lakehouse.catalog import TableSpec
    from lakehouse.errors import LakehouseError
    from flows.refine import _set_columns_in_partitions

    df = spark.createDataFrame([("a", 1)], "k string, v int")
    with pytest.raises(LakehouseError, match="one partition column"):
        _set_columns_in_partitions(spark, settings, TableSpec("silver", "t", keys=("k",)), df, ["k"], ["v"])
    with pytest.raises(LakehouseError, match="not a date column"):
        _set_columns_in_partitions(spark, settings, TableSpec("silver", "t", keys=("k",), partition_by=("v",)), df,
                                   ["k"], ["v"])
