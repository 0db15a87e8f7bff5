"""The retail source generator: determinism, canonical landing layout, identity ground truth, injected defects,
formats, S3, and the business rules that later layers rely on (returns, funnels, stock movements)."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from generator import defects as D
from generator import generate
from lakehouse.entities import ENTITIES, entity
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.storage import Storage

pytestmark = pytest.mark.unit

START = dt.date(2026, 1, 1)
DAYS = 3
SMALL = dict(start=START, days=DAYS, customers=400, orders_per_day=150, seed=7, progress=False)


def _settings(root: Path) -> Settings:
    return Settings(data_root=str(root), landing_root=str(root / "landing"), warehouse_root=str(root / "warehouse"),
                    truth_root=str(root / "truth"), spark_remote=None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small generation with a raised bad share, so that every defect kind shows up."""
    root = tmp_path_factory.mktemp("gen")
    summary = generate(_settings(root), bad_share=0.03, formats={}, **SMALL)
    return root, summary


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """The same world without injected defects: exact business-rule checks."""
    root = tmp_path_factory.mktemp("clean")
    summary = generate(_settings(root), bad_share=0.0, formats={}, **{**SMALL, "days": 4})
    return root, summary


# -- helpers ----------------------------------------------------------------------------------------------------------
def _files(root: Path, source: str, name: str, day: dt.date | None = None) -> list[Path]:
    base = root / "landing" / source / name
    pattern = f"ingest_date={day.isoformat()}/*" if day else "ingest_date=*/*"
    return sorted(base.glob(pattern))


def _bad(root: Path) -> list[dict]:
    with open(root / "truth" / "bad_records.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _good_dicts(root: Path, source: str, name: str, day: dt.date | None = None) -> list[dict]:
    """Records of an entity that are not listed as bad (malformed ones cannot be read anyway)."""
    listed = {(b["file"], int(b["line_number"])) for b in _bad(root)}
    out = []
    for path in _files(root, source, name, day):
        rel = path.relative_to(root / "landing").as_posix()
        if path.suffix == ".csv":
            header, rows = _csv_rows(path)
            records = [dict(zip(header, r)) for r in rows]
        elif path.suffix == ".jsonl":
            records = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    records.append(None)
        else:
            records = pq.read_table(path).to_pylist()
        for i, rec in enumerate(records, start=1):
            if (rel, i) not in listed and rec is not None:
                out.append({k: ("" if v is None else v) for k, v in rec.items()})
    return out


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- determinism ------------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes_and_another_seed_differs(run, tmp_path):
    root, _ = run
    again = tmp_path / "again"
    generate(_settings(again), bad_share=0.03, formats={}, **SMALL)
    first, second = _all_bytes(root), _all_bytes(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []

    other = tmp_path / "other"
    generate(_settings(other), bad_share=0.03, formats={}, **{**SMALL, "seed": 8})
    third = _all_bytes(other)
    for name in ("landing/online/orders/ingest_date=2026-01-01/orders-0001.csv", "truth/identity_map.csv",
                 "truth/persons.csv", "landing/clickstream/events/ingest_date=2026-01-02/events-0001.jsonl"):
        assert first[name] != third[name], name


# -- layout -----------------------------------------------------------------------------------------------------------
def test_every_entity_and_day_is_written_with_the_canonical_columns(run):
    root, summary = run
    for spec in ENTITIES:
        days = [START] if spec.entity == "stores" else [START + dt.timedelta(days=i) for i in range(DAYS)]
        for day in days:
            files = _files(root, spec.kind, spec.entity, day)
            assert files, f"no {spec.qualified} file for {day}"
            for path in files:
                assert path.name.startswith(f"{spec.entity}-") and path.stem.split("-")[-1].isdigit()
                if path.suffix == ".csv":
                    columns = _csv_rows(path)[0]
                elif path.suffix == ".jsonl":
                    columns = list(json.loads(path.read_text(encoding="utf-8").splitlines()[0]))
                else:
                    columns = pq.read_schema(path).names
                    assert all(str(t) == "string" for t in pq.read_schema(path).types)
                drift = ["coupon_code"] if spec.qualified == "online.orders" and day >= START + dt.timedelta(days=2) else []
                assert columns == list(spec.columns) + drift, (path, columns)
    # stores: ten stores and three warehouses, only on the first day
    assert not _files(root, "pos", "stores", START + dt.timedelta(days=1))
    stores = _good_dicts(root, "pos", "stores")
    assert collections.Counter(s["location_type"] for s in stores) == {"store": 10, "warehouse": 3}
    assert summary.rows[("pos", "stores")] == 13
    # default formats
    assert summary.formats == {"online": "csv", "pos": "csv", "clickstream": "jsonl", "inventory": "parquet"}


def test_schema_drift_adds_coupon_code_from_the_third_day(run):
    root, _ = run
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        for path in _files(root, "online", "orders", day):
            header = _csv_rows(path)[0]
            assert ("coupon_code" in header) == (i >= 2)
    drift = [b for b in _bad(root) if b["kind"] == D.SCHEMA_DRIFT]
    assert drift and {b["ingest_date"] for b in drift} == {"2026-01-03"}
    assert all(b["line_number"] == "0" and b["column"] == "coupon_code" for b in drift)
    coupons = [r["coupon_code"] for r in _good_dicts(root, "online", "orders", START + dt.timedelta(days=2))]
    assert any(coupons) and not all(coupons)


def test_catalogue_is_shared_by_both_systems_with_different_spellings(run):
    root, _ = run
    online = {r["sku"]: r for r in _good_dicts(root, "online", "products", START)}
    pos = {r["item_code"]: r for r in _good_dicts(root, "pos", "products", START)}
    assert 450 <= len(online) <= 550 and set(online) == set(pos)
    levels = {tuple(r["category_code"].split(".")) for r in online.values()}
    assert all(len(x) == 3 for x in levels) and len({x[0] for x in levels}) >= 6
    for sku, o in online.items():
        p = pos[sku]
        assert p["department"].count(" > ") == 2
        assert float(o["unit_cost"]) < float(o["unit_price"]) == float(p["price"])
    assert any(o["brand"] and p["brand"] and o["brand"] != p["brand"] and o["brand"].lower() == p["brand"].lower()
               for o, p in ((online[s], pos[s]) for s in online))
    # a few price changes on later days, in both systems
    later = _good_dicts(root, "online", "products", START + dt.timedelta(days=1))
    assert 1 <= len(later) <= 10
    assert {r["sku"] for r in later} == {r["item_code"] for r in _good_dicts(root, "pos", "products", START + dt.timedelta(days=1))}


# -- people and ground truth --------------------------------------------------------------------------------------------
def test_identity_ground_truth_covers_every_customer_record(run):
    root, summary = run
    with open(root / "truth" / "identity_map.csv", newline="", encoding="utf-8") as f:
        identity = list(csv.DictReader(f))
    with open(root / "truth" / "persons.csv", newline="", encoding="utf-8") as f:
        persons = {r["person_id"]: r for r in csv.DictReader(f)}
    assert len(persons) == 400
    mapped = {(r["source_system"], r["source_customer_id"]): r["person_id"] for r in identity}
    assert len(mapped) == len(identity)
    assert set(mapped.values()) <= set(persons)
    # every id in landing is in the map and vice versa (first field survives even in malformed lines)
    landed = set()
    for source, name in (("online", "customers"), ("pos", "members")):
        for path in _files(root, source, name):
            landed |= {(source, row[0]) for row in _csv_rows(path)[1] if row}
    assert landed == set(mapped)
    by_person = collections.defaultdict(list)
    for (system, _), pid in mapped.items():
        by_person[pid].append(system)
    both = [p for p, systems in by_person.items() if {"online", "pos"} <= set(systems)]
    assert len(both) == summary.persons_in_both > 0.2 * len(persons)
    assert 0.6 < sum(1 for s in by_person.values() if "online" in s) / len(persons) < 0.8
    assert 0.45 < sum(1 for s in by_person.values() if "pos" in s) / len(persons) < 0.65
    assert any(systems.count("online") > 1 for systems in by_person.values()), "no within-system duplicate"
    assert {p["segment"] for p in persons.values()} == {"VIP", "Premium", "Loyal", "Regular", "New"}


def test_households_share_name_and_address_but_are_different_people(run):
    root, _ = run
    with open(root / "truth" / "persons.csv", newline="", encoding="utf-8") as f:
        persons = list(csv.DictReader(f))
    households = collections.defaultdict(list)
    for p in persons:
        if p["household_id"]:
            households[p["household_id"]].append(p)
    assert households
    for members in households.values():
        assert len(members) == 2 and members[0]["person_id"] != members[1]["person_id"]
        assert members[0]["last_name"] == members[1]["last_name"]
        assert members[0]["first_name"] != members[1]["first_name"]


def test_records_of_one_person_disagree_realistically(run):
    root, _ = run
    with open(root / "truth" / "identity_map.csv", newline="", encoding="utf-8") as f:
        person_of = {(r["source_system"], r["source_customer_id"]): r["person_id"] for r in csv.DictReader(f)}
    with open(root / "truth" / "persons.csv", newline="", encoding="utf-8") as f:
        persons = {r["person_id"]: r for r in csv.DictReader(f)}
    members = _good_dicts(root, "pos", "members")
    accounts = _good_dicts(root, "online", "customers")
    last_first = [m for m in members if "," in m["full_name"]]
    assert 0.1 < len(last_first) / len(members) < 0.5
    nick = sum(1 for m in members if persons[person_of[("pos", m["member_id"])]]["first_name"] not in m["full_name"])
    assert nick > 0.1 * len(members)
    assert any(not m["email"] for m in members) and any(not a["phone"] for a in accounts)
    phones = {a["phone"][:3] for a in accounts if a["phone"]}
    assert {"+44", "07"} & phones and len(phones) > 3
    differing = sum(1 for a in accounts if a["email"] and a["email"].lower() != persons[person_of[("online", a["customer_id"])]]["email"])
    assert differing > 0
    assert {"GB", "United Kingdom", "uk"} <= {a["country"] for a in accounts}
    for m in members:
        if m["birth_date"]:
            assert len(m["birth_date"]) == 10 and m["birth_date"][2] == "/"


def test_customers_land_on_signup_day_and_get_updated_later(run):
    root, _ = run
    kinds = collections.Counter()
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        for source, name, created in (("online", "customers", "created_at"), ("pos", "members", "joined_at")):
            rows = _good_dicts(root, source, name, day)
            assert rows, (source, day)
            for r in rows:
                assert r[created][:10] <= day.isoformat() and r["updated_at"][:10] <= day.isoformat()
                if i == 0:
                    kinds["backlog" if r[created][:10] < day.isoformat() else "new"] += 1
                else:
                    assert r["updated_at"][:10] == day.isoformat()
                    kinds["new" if r[created][:10] == day.isoformat() else "updated"] += 1
    assert kinds["backlog"] > 200 and kinds["new"] > 0 and kinds["updated"] >= 2 * (DAYS - 1)


# -- bad records ----------------------------------------------------------------------------------------------------------
def test_bad_records_are_about_the_configured_share_and_each_listed_one_is_real(run):
    root, summary = run
    bad = [b for b in _bad(root) if b["kind"] != D.SCHEMA_DRIFT]
    assert set(b["kind"] for b in bad) == set(D.RECORD_KINDS)
    assert len(bad) == summary.bad_record_count
    share = len(bad) / summary.eligible_rows
    assert 0.02 < share < 0.04, share
    by_file = collections.defaultdict(list)
    for b in bad:
        by_file[b["file"]].append(b)
    checked = collections.Counter()
    for rel, items in by_file.items():
        path = root / "landing" / rel
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                lines = f.read().split("\n")
            header = next(csv.reader([lines[0]]))
            records = lines[1:]
        elif path.suffix == ".jsonl":
            header, records = None, path.read_text(encoding="utf-8").split("\n")
        else:
            table = pq.read_table(path).to_pylist()
            header, records = None, table
        for b in items:
            n = int(b["line_number"])
            raw = records[n - 1]
            if path.suffix == ".csv":
                values = next(csv.reader([raw])) if raw else []
                rec = dict(zip(header, values)) if len(values) == len(header) else None
            elif path.suffix == ".jsonl":
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    rec = None
            else:
                rec = raw
            if b["kind"] == D.MALFORMED:
                assert rec is None, (rel, n)
            else:
                assert rec is not None, (rel, n, b)
            if b["kind"] in (D.WRONG_TYPE, D.NEGATIVE_PRICE, D.UNKNOWN_ENUM, D.LATE_ARRIVING):
                new = b["detail"].split(" -> ", 1)[1].split(";")[0].strip("'")
                assert rec[b["column"]] == new, (rel, n, b)
            if b["kind"] == D.NEGATIVE_PRICE:
                assert rec[b["column"]].startswith("-")
            if b["kind"] == D.LATE_ARRIVING:
                business = rec[b["column"]][:10]
                lag = (dt.date.fromisoformat(b["ingest_date"]) - dt.date.fromisoformat(business)).days
                assert 1 <= lag <= 3
            if b["kind"] == D.DUPLICATE:
                original = int(b["detail"].rsplit(" ", 1)[1])
                assert records[original - 1] == raw and original < n
            checked[b["kind"]] += 1
    assert set(checked) == set(D.RECORD_KINDS)


def test_plain_csv_and_json_readers_parse_everything_but_the_listed_malformed_lines(run):
    root, _ = run
    malformed = {(b["file"], int(b["line_number"])) for b in _bad(root) if b["kind"] == D.MALFORMED}
    seen = set()
    for path in sorted((root / "landing").rglob("*")):
        rel = path.relative_to(root / "landing").as_posix()
        if path.suffix == ".csv":
            header, rows = _csv_rows(path)
            for i, row in enumerate(rows, start=1):
                ok = len(row) == len(header)
                assert ok != ((rel, i) in malformed), (rel, i, row)
                seen.add((rel, i))
        elif path.suffix == ".jsonl":
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    ok = isinstance(json.loads(line), dict)
                except json.JSONDecodeError:
                    ok = False
                assert ok != ((rel, i) in malformed), (rel, i)
                seen.add((rel, i))
    assert malformed and malformed <= seen


def test_no_bad_records_when_the_share_is_zero(clean_run):
    root, summary = clean_run
    assert set(b["kind"] for b in _bad(root)) == {D.SCHEMA_DRIFT}
    assert summary.bad_record_count == 0


# -- business rules -------------------------------------------------------------------------------------------------------
def test_returns_cancellations_and_payments(clean_run):
    root, _ = clean_run
    orders = _good_dicts(root, "online", "orders")
    lines = _good_dicts(root, "online", "order_lines")
    payments = _good_dicts(root, "online", "payments")
    status = collections.Counter(o["status"] for o in orders)
    assert set(status) == {"placed", "shipped", "delivered", "cancelled", "returned"}
    lines_of = collections.defaultdict(list)
    for ln in lines:
        lines_of[ln["order_id"]].append(ln)
    customer_of = {o["order_id"]: o["customer_id"] for o in orders if o["status"] != "returned"}
    bought = collections.defaultdict(set)
    for oid, ls in lines_of.items():
        if oid in customer_of:
            bought[customer_of[oid]] |= {ln["sku"] for ln in ls}
    returned = [o for o in orders if o["status"] == "returned"]
    assert returned
    for o in returned:
        ls = lines_of[o["order_id"]]
        assert ls and all(int(ln["quantity"]) < 0 and float(ln["line_total"]) <= 0 for ln in ls)
        assert {ln["sku"] for ln in ls} <= bought[o["customer_id"]]
    for o in orders:
        if o["status"] == "cancelled" and o["order_id"] in lines_of:
            assert all(int(ln["quantity"]) > 0 for ln in lines_of[o["order_id"]])
    for oid, ls in lines_of.items():
        for ln in ls:
            assert round(int(ln["quantity"]) * float(ln["unit_price"]) - float(ln["discount_amount"]), 2) == float(ln["line_total"])
    assert {p["status"] for p in payments} == {"captured", "refunded", "failed"}
    assert all(float(p["amount"]) < 0 for p in payments if p["status"] == "refunded")
    tx = _good_dicts(root, "pos", "transactions")
    assert {t["transaction_type"] for t in tx} == {"sale", "return"}
    anonymous = sum(1 for t in tx if not t["member_id"])
    assert 0.2 < anonymous / len(tx) < 0.55
    tl = collections.defaultdict(list)
    for ln in _good_dicts(root, "pos", "transaction_lines"):
        tl[ln["transaction_id"]].append(ln)
    for t in tx:
        total = round(sum(float(ln["line_total"]) for ln in tl[t["transaction_id"]]), 2)
        assert total == float(t["total_amount"])
        if t["transaction_type"] == "return":
            assert all(int(ln["quantity"]) < 0 for ln in tl[t["transaction_id"]])
        assert t["transaction_id"].startswith(t["store_id"] + "-")


def test_clickstream_funnels_convert_at_realistic_rates_and_purchases_match_orders(clean_run):
    root, _ = clean_run
    events = _good_dicts(root, "clickstream", "events")
    sessions = collections.defaultdict(list)
    for e in events:
        sessions[e["user_session"]].append(e)
    rate = sum(1 for s in sessions.values() if any(e["event_type"] == "purchase" for e in s)) / len(sessions)
    assert 0.015 < rate < 0.05, rate
    assert {e["event_type"] for e in events} == {"view", "cart", "remove_from_cart", "purchase"}
    orders = {o["order_id"]: o for o in _good_dicts(root, "online", "orders") if o["status"] != "returned"}
    skus_by_customer_ts = collections.defaultdict(set)
    for ln in _good_dicts(root, "online", "order_lines"):
        o = orders.get(ln["order_id"])
        if o and int(ln["quantity"]) > 0:
            skus_by_customer_ts[(o["customer_id"], o["order_ts"].replace("T", " ").replace("Z", ""))].add(ln["sku"])
    purchases = [e for e in events if e["event_type"] == "purchase"]
    assert purchases
    for e in purchases:
        key = (e["user_id"], e["event_time"].replace(" UTC", ""))
        assert e["product_id"] in skus_by_customer_ts[key], e
    for s in sessions.values():
        assert len({e["user_id"] for e in s}) == 1
        if any(e["event_type"] == "purchase" for e in s):
            assert s[0]["user_id"]  # buyers are signed in
    assert any(not e["user_id"] for e in events)


def test_inventory_outbound_matches_sales(clean_run):
    root, _ = clean_run
    for i in range(4):
        day = START + dt.timedelta(days=i)
        movements = _good_dicts(root, "inventory", "movements", day)
        assert {m["movement_type"] for m in movements} == {"inbound", "outbound", "adjustment"}
        stores = {f"S{k:02d}" for k in range(1, 11)}
        outbound = collections.Counter()
        for m in movements:
            if m["reference"].startswith("SALES-"):
                outbound["store" if m["location_id"] in stores else "online"] += int(m["quantity"])
        orders = {o["order_id"]: o["status"] for o in _good_dicts(root, "online", "orders", day)
                  if o["status"] in ("placed", "shipped", "cancelled")}
        sold_online = sum(int(ln["quantity"]) for ln in _good_dicts(root, "online", "order_lines", day)
                          if int(ln["quantity"]) > 0 and orders.get(ln["order_id"]) != "cancelled")
        sold_store = sum(int(ln["quantity"]) for ln in _good_dicts(root, "pos", "transaction_lines", day)
                         if int(ln["quantity"]) > 0)
        assert outbound == {"online": sold_online, "store": sold_store}
        locations = {m["location_id"] for m in movements}
        assert locations <= stores | {"W01", "W02", "W03"} and {"W01", "W02", "W03"} <= locations


def test_segments_drive_basket_sizes(clean_run):
    root, _ = clean_run
    with open(root / "truth" / "identity_map.csv", newline="", encoding="utf-8") as f:
        person_of = {r["source_customer_id"]: r["person_id"] for r in csv.DictReader(f) if r["source_system"] == "online"}
    with open(root / "truth" / "persons.csv", newline="", encoding="utf-8") as f:
        segment = {r["person_id"]: r["segment"] for r in csv.DictReader(f)}
    orders = {o["order_id"]: segment[person_of[o["customer_id"]]] for o in _good_dicts(root, "online", "orders")
              if o["status"] != "returned"}
    size = collections.Counter(ln["order_id"] for ln in _good_dicts(root, "online", "order_lines") if ln["order_id"] in orders)
    by_segment = collections.defaultdict(list)
    for oid, n in size.items():
        by_segment[orders[oid]].append(n)
    assert max(by_segment["New"]) <= 2 and min(by_segment["VIP"]) >= 3
    assert sum(by_segment["VIP"]) / len(by_segment["VIP"]) > sum(by_segment["Regular"]) / len(by_segment["Regular"])


# -- formats, storage, errors -----------------------------------------------------------------------------------------------
def test_formats_are_configurable_per_source(tmp_path):
    summary = generate(_settings(tmp_path), bad_share=0.05, start=START, days=1, customers=60, orders_per_day=40, seed=3,
                       formats={"online": "jsonl", "pos": "parquet", "clickstream": "csv", "inventory": "json"},
                       progress=False)
    assert summary.formats == {"online": "jsonl", "pos": "parquet", "clickstream": "csv", "inventory": "jsonl"}
    for spec in ENTITIES:
        ext = {"online": ".jsonl", "pos": ".parquet", "clickstream": ".csv", "inventory": ".jsonl"}[spec.kind]
        files = _files(tmp_path, spec.kind, spec.entity)
        assert files and all(p.suffix == ext for p in files)
    assert not [b for b in _bad(tmp_path) if b["kind"] == D.MALFORMED and b["source"] == "pos"]
    with pytest.raises(LakehouseError, match="unknown format"):
        generate(_settings(tmp_path), start=START, days=1, customers=60, orders_per_day=40, seed=3,
                 formats={"online": "xml"})
    with pytest.raises(LakehouseError, match="unknown source"):
        generate(_settings(tmp_path), start=START, days=1, customers=60, orders_per_day=40, seed=3,
                 formats={"erp": "csv"})


def test_big_entities_are_split_into_files(tmp_path, monkeypatch):
    from generator import writer

    monkeypatch.setattr(writer, "MAX_ROWS_PER_FILE", 100)
    generate(_settings(tmp_path), bad_share=0.0, start=START, days=1, customers=100, orders_per_day=120, seed=5,
             formats={})
    files = _files(tmp_path, "clickstream", "events", START)
    assert len(files) > 3 and [p.name for p in files][:2] == ["events-0001.jsonl", "events-0002.jsonl"]
    assert all(len(p.read_text(encoding="utf-8").splitlines()) <= 100 for p in files)


def test_writes_landing_and_truth_to_s3(s3_settings):
    summary = generate(s3_settings, start=START, days=1, customers=60, orders_per_day=40, seed=11, bad_share=0.01,
                       formats={}, progress=False)
    storage = Storage(s3_settings)
    landed = storage.list_files(s3_settings.landing_root, recursive=True)
    assert {f.uri for f in landed} == set(summary.files)
    for spec in ENTITIES:
        assert storage.list_files(storage.landing_dir(spec.kind, spec.entity, START)), spec.qualified
    orders = storage.list_files(storage.landing_dir("online", "orders", START))[0]
    header = next(csv.reader(io.StringIO(storage.read_bytes(orders.uri).decode("utf-8"))))
    assert header == list(entity("online", "orders").columns)
    for name in ("identity_map.csv", "persons.csv", "bad_records.csv", "generation.json"):
        assert storage.exists(f"{s3_settings.truth_root}/{name}")


@pytest.fixture
def cli_root(tmp_path, monkeypatch):
    """The data root of an in-process ``lakehouse`` command: tmp_path, with no landing/warehouse/truth override."""
    monkeypatch.setenv("LAKEHOUSE_DATA_ROOT", str(tmp_path))
    for key in ("LAKEHOUSE_LANDING_ROOT", "LAKEHOUSE_WAREHOUSE_ROOT", "LAKEHOUSE_TRUTH_ROOT"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_cli_generate_prints_a_summary(cli_root, capsys):
    from lakehouse.cli import main

    code = main(["generate", "--days", "1", "--customers", "50", "--orders-per-day", "30", "--quiet",
                 "--format", "clickstream=csv"])
    out = capsys.readouterr().out
    assert code == 0 and "online.order_lines" in out and "bad records" in out
    assert _files(cli_root, "clickstream", "events", START)[0].suffix == ".csv"
    assert main(["generate", "--days", "0"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--days", "0"], "--days must be at least 1, got 0"),
    (["--customers", "3"], "--customers must be at least 10, got 3"),
    (["--orders-per-day", "1"], "--orders-per-day must be at least 2, got 1"),
])
def test_cli_demo_refuses_a_too_small_generation_before_announcing_it(cli_root, capsys, args, message):
    from lakehouse.cli import main

    assert main(["demo", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "generating" not in captured.out  # refused before the progress line that announced the work
    assert not (cli_root / "landing").exists()
