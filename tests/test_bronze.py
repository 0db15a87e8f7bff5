"""Bronze ingestion: readers keep every record, the ledger makes loading exactly-once, drift and rejects are kept."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATASETS, cli_env
from lakehouse import delta
from lakehouse.catalog import FILE_LEDGER, bronze_table
from lakehouse.entities import ONLINE_ORDERS, entity
from lakehouse.errors import LandingNotFound, SchemaError
from lakehouse.storage import Storage
from transforms.bronze.conform import add_audit_columns, apply_mapping, canonicalize_names, conform_to_entity
from transforms.bronze import readers
from transforms.bronze.readers import read_csv, read_jsonl, read_parquet

D1 = dt.date(2026, 1, 3)
D2 = dt.date(2026, 1, 4)
ORDERS_HEADER = "order_id,customer_id,order_ts,status,channel,device_type,currency,shipping_postcode,updated_at"


def orders_csv(*ids: str, extra: str | None = None, header: str = ORDERS_HEADER) -> bytes:
    """A small online orders landing file (optionally with one extra drift column)."""
    head = header + (f",{extra}" if extra else "")
    lines = [head]
    for i in ids:
        row = f"{i},c{i},2026-01-03T10:15:00Z,placed,web,mobile,GBP,SW1A 1AA,2026-01-03T10:15:00Z"
        lines.append(row + (f",{extra}-{i}" if extra else ""))
    return ("\n".join(lines) + "\n").encode()


def land(settings, source: str, entity_name: str, day: dt.date, name: str, data: bytes) -> str:
    """Write one landing file and return its URI."""
    st = Storage(settings)
    uri = f"{st.landing_dir(source, entity_name, day)}/{name}"
    st.write_bytes(uri, data)
    return uri


def bronze_rows(spark, settings, source: str, entity_name: str) -> list[dict]:
    """Every row of a bronze table (scanned, not counted from log statistics)."""
    return [r.asDict() for r in delta.read_table(spark, bronze_table(source, entity_name), settings).collect()]


def ledger_rows(spark, settings) -> list[dict]:
    return [r.asDict() for r in delta.read_table(spark, FILE_LEDGER, settings).collect()]


# ---------------------------------------------------------------------------------------------------------------
# Readers (pure)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("bom", [False, True], ids=["nobom", "bom"])
def test_csv_keeps_malformed_records_with_raw_text_and_reason(newline, bom):
    text = newline.join([
        "a,b,c",
        "1,2,3",
        "4,5",                      # too few fields
        f'"multi{newline}line",x,y',  # one record over two lines
        "",                          # blank line: not a record
        "9,10,11,12",               # too many fields
        '13,,""',                   # unquoted empty -> null, quoted empty -> ""
    ]) + newline
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    d = read_csv(data)
    assert d.columns == ("a", "b", "c")
    assert d.encoding == ("utf-8-sig" if bom else "utf-8")
    assert (d.records, d.malformed) == (5, 2)
    rows = d.table.to_pylist()
    assert [r["_line_number"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0] == {"a": "1", "b": "2", "c": "3", "_line_number": 1, "_raw_line": None, "_parse_error": None}
    assert rows[1]["a"] is None and rows[1]["_raw_line"] == "4,5"
    assert rows[1]["_parse_error"] == "expected 3 fields, found 2"
    assert rows[2]["a"] == f"multi{newline}line" and rows[2]["_parse_error"] is None
    assert rows[3]["_raw_line"] == "9,10,11,12" and rows[3]["_parse_error"] == "expected 3 fields, found 4"
    assert (rows[4]["b"], rows[4]["c"]) == (None, "")


@pytest.mark.unit
@pytest.mark.parametrize(
    "tail, raw",
    [(b'4,5,"ab', '4,5,"ab'), (b'4,5,"a""b\r\n', '4,5,"a""b'), (b'4,5,"a\nb', '4,5,"a\nb')],
    ids=["no-newline", "escaped-quote", "spans-lines"],
)
def test_csv_truncated_last_record_with_open_quote_is_malformed(tail, raw):
    d = read_csv(b'a,b,c\n1,"x\ny",3\n' + tail)
    rows = d.table.to_pylist()
    assert (d.records, d.malformed) == (2, 1)
    assert rows[0]["b"] == "x\ny" and rows[0]["_parse_error"] is None
    assert rows[1] == {"a": None, "b": None, "c": None, "_line_number": 2, "_raw_line": raw,
                       "_parse_error": "unterminated quoted field at end of file"}


@pytest.mark.unit
def test_csv_not_utf8_falls_back_to_windows_1252_and_strict_encoding_rejects():
    data = "name,city\nJosé,Zürich\n".encode("cp1252")
    d = read_csv(data)
    assert d.encoding == "cp1252"
    assert d.table.to_pylist()[0]["name"] == "José"
    with pytest.raises(SchemaError, match="x.csv: not valid utf-8 text"):
        read_csv(data, encoding="utf-8", path="x.csv")


@pytest.mark.unit
def test_empty_and_header_only_files_have_no_records():
    empty = read_csv(b"")
    assert (empty.records, empty.note, empty.columns) == (0, "empty file", ())
    header_only = read_csv(b"a,b\r\n")
    assert (header_only.records, header_only.columns) == (0, ("a", "b"))
    assert read_jsonl(b"\n\n").records == 0
    for blank in (b"", b"\n\n", b" \t\r\n\x0b\x0c "):  # ASCII whitespace only: the file is empty
        assert read_csv(blank).note == read_jsonl(blank).note == "empty file"
    assert read_jsonl("\u00a0\n".encode()).note == ""  # a no-break space is text: its line is a malformed record


@pytest.mark.unit
def test_reserved_or_duplicate_header_is_a_schema_error():
    with pytest.raises(SchemaError, match="f.csv: column `_source_file` is reserved"):
        read_csv(b"a,_source_file\n1,2\n", path="f.csv")
    with pytest.raises(SchemaError, match="duplicate column `A`"):
        read_csv(b"a,A\n1,2\n")


@pytest.mark.unit
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_jsonl_keeps_bad_lines_with_raw_text_and_reason(newline):
    lines = ['{"a": "1", "b": 2.50}', "", "{broken", "[1, 2]", '{"a": "3", "n": {"x": 1}, "t": true}']
    d = read_jsonl(newline.join(lines).encode())
    rows = d.table.to_pylist()
    assert (d.records, d.malformed) == (4, 2)
    assert [r["_line_number"] for r in rows] == [1, 3, 4, 5]  # physical line numbers
    assert (rows[0]["a"], rows[0]["b"]) == ("1", "2.50")  # numbers keep their text
    assert rows[1]["_raw_line"] == "{broken" and rows[1]["_parse_error"].startswith("invalid JSON")
    assert rows[2]["_parse_error"] == "not a JSON object (list)"
    assert (rows[3]["n"], rows[3]["t"]) == ('{"x":1}', "true")


@pytest.mark.unit
@pytest.mark.parametrize("expected", [("ts", "v", "gone"), ()], ids=["fast-path", "slow-path"])
def test_jsonl_keeps_strings_verbatim_and_absent_columns_absent(expected):
    data = b'{"ts": "2026-01-03T10:15:00Z", "v": "007"}\n{"ts": null, "w": "x"}\n'
    d = read_jsonl(data, string_columns=expected)
    assert d.columns == ("ts", "v", "w")
    assert d.table.to_pylist() == [
        {"ts": "2026-01-03T10:15:00Z", "v": "007", "w": None, "_line_number": 1, "_raw_line": None, "_parse_error": None},
        {"ts": None, "v": None, "w": "x", "_line_number": 2, "_raw_line": None, "_parse_error": None},
    ]


@pytest.mark.unit
@pytest.mark.parametrize(("line", "reason"), [
    ('{"a": NaN}', "invalid JSON: unexpected character"),
    ('{"a": 1e999}', "invalid JSON: number is infinity"),
    ('{"a": "\\ud800"}', "invalid JSON: no low surrogate"),
    ("null", "not a JSON object (NoneType)"),
])
def test_jsonl_lines_only_python_accepts_are_malformed_with_their_reason(line, reason):
    d = read_jsonl(f'{{"a": "1"}}\n{line}\n'.encode())
    assert (d.records, d.malformed) == (2, 1)
    assert d.table.to_pylist()[1]["_parse_error"].startswith(reason)


def _rees46_jsonl_variants(n_files: int, seed: int) -> list[bytes]:
    """JSON-lines files built from the real REES46 clickstream sample, each with hostile lines mixed in: truncated,
    broken or doubled objects, non-objects, surrounding whitespace, blank lines, numbers, nested values, extra keys."""
    with open(DATASETS / "rees46" / "events_2019-10-01.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    mutations = [
        lambda line, row: line[: rng.randrange(1, len(line))],  # truncated
        lambda line, row: line + line,  # two objects on one line
        lambda line, row: "  " + line + " ",
        lambda line, row: "",
        lambda line, row: rng.choice(["null", "[1, 2]", '"text"', "42", "{}", "{ }", "{,}", "{oops}"]),
        lambda line, row: json.dumps({**row, "price": float(row["price"] or 0)}),  # a number
        lambda line, row: json.dumps({**row, "brand": {"name": row["brand"]}}),  # a nested value
        lambda line, row: json.dumps({**row, "coupon": "SAVE10"}),  # an extra key
        lambda line, row: line.replace('"', "'", 2),
        lambda line, row: line[:-1] + ', "x": NaN}',
        lambda line, row: line.replace("}", "} ", 1) + "}",
    ]
    files = []
    for _ in range(n_files):
        lines, share, kinds = [], rng.choice([0.01, 0.03, 0.15]), rng.sample(mutations, rng.randrange(1, 4))
        for row in rng.sample(rows, 200):
            line = json.dumps(row, ensure_ascii=rng.random() < 0.5)
            if rng.random() < share:
                line = rng.choice(kinds)(line, row)
            lines.append(line)
        files.append("\n".join(lines).encode() + (b"\n" if rng.random() < 0.5 else b""))
    return files


@pytest.mark.unit
def test_jsonl_bracketed_lines_shortcut_reads_exactly_what_the_line_by_line_triage_reads(monkeypatch):
    """The shortcut (pyarrow reads every {...} line at once) must give the same table as checking each line, on real
    clickstream rows with hostile lines mixed in, and must take the shortcut for the clean files."""
    columns = tuple(rows_header := ("event_time event_type product_id category_id category_code brand price user_id "
                                    "user_session").split())
    files = _rees46_jsonl_variants(100, seed=46)
    files.append("\n".join(json.dumps(dict.fromkeys(rows_header, "v")) for _ in range(50)).encode())  # clean
    shortcut = [read_jsonl(data, string_columns=columns) for data in files]
    taken = [readers._bracketed_lines(data, columns) is not None for data in files]
    monkeypatch.setattr(readers, "_bracketed_lines", lambda utf8, string_columns: None)
    triaged = [read_jsonl(data, string_columns=columns) for data in files]
    for i, (a, b) in enumerate(zip(shortcut, triaged)):
        assert (a.columns, a.records, a.malformed) == (b.columns, b.records, b.malformed), f"file {i}"
        assert a.table.equals(b.table), f"file {i}"
    assert taken[-1] and 10 < sum(taken) < len(files) - 10, sum(taken)
    assert sum(d.malformed for d, took in zip(triaged, taken) if took) > 10


@pytest.mark.unit
def test_malformed_records_sit_between_the_good_rows_around_them():
    """Good rows and malformed records come out in file order (line numbers strictly increasing), malformed records
    first, last and next to each other included, each with its own text."""
    good = json.dumps({"a": "x"})
    lines = ["oops", good, "[1]", "{bad}", good, good, "nope", good, "{"]
    d = read_jsonl("\n".join(lines).encode(), string_columns=("a",))
    rows = d.table.to_pylist()
    assert [r["_line_number"] for r in rows] == list(range(1, len(lines) + 1))
    assert [r["_raw_line"] for r in rows] == [None if line == good else line for line in lines]
    assert [r["a"] for r in rows] == ["x" if line == good else None for line in lines]
    for data in _rees46_jsonl_variants(30, seed=7):
        numbers = read_jsonl(data).table["_line_number"].to_pylist()
        assert numbers == sorted(set(numbers))


@pytest.mark.unit
def test_parquet_columns_become_strings():
    buf = io.BytesIO()
    pq.write_table(pa.table({"qty": pa.array([1, None], pa.int64()), "sku": ["A", "B"]}), buf)
    d = read_parquet(buf.getvalue())
    assert d.table.select(["qty", "sku", "_line_number"]).to_pylist() == [
        {"qty": "1", "sku": "A", "_line_number": 1}, {"qty": None, "sku": "B", "_line_number": 2},
    ]


@pytest.mark.unit
def test_mapping_renames_templates_constants_and_keeps_unmapped_columns():
    d = read_csv(b"oid,seq,status,kind\n9,1,ok,x\n9,2\n")
    out = apply_mapping(
        d.table,
        columns={"order_id": "oid", "payment_id": "{oid}-{seq}", "payment_method": "kind", "amount": "missing_col"},
        constants={"status": "captured"},
    )
    rows = out.to_pylist()
    assert [c for c in out.column_names if not c.startswith("_")] == [
        "order_id", "payment_id", "payment_method", "status", "seq", "src_status"
    ]
    assert rows[0]["payment_id"] == "9-1" and rows[0]["status"] == "captured" and rows[0]["src_status"] == "ok"
    assert rows[1]["status"] is None and rows[1]["_parse_error"]  # constants only on good records
    conformed = conform_to_entity(out, entity=entity("online", "payments"))
    assert conformed.column_names[:6] == list(entity("online", "payments").columns)
    assert conformed.column(conformed.column_names.index("amount")).null_count == 2
    audited = add_audit_columns(conformed, source_file="f.csv", run_id="r", ingested_at=dt.datetime(2026, 1, 1,
                                tzinfo=dt.timezone.utc), ingest_date=D1)
    assert audited.column_names[-4:] == ["_ingested_at", "_source_file", "_run_id", "ingest_date"]


@pytest.mark.unit
def test_canonical_names_match_ignoring_case_and_clashes_are_renamed():
    # as after a mapping that produced `status` from another export column while the export also has `Status`
    table = pa.table({"Order_ID": ["1"], "status": ["placed"], "Status": ["P"], "status_note": ["x"]})
    out = canonicalize_names(table, entity=ONLINE_ORDERS)
    assert out.column_names == ["order_id", "status", "src_Status", "status_note"]
    assert out.to_pylist() == [{"order_id": "1", "status": "placed", "src_Status": "P", "status_note": "x"}]


# ---------------------------------------------------------------------------------------------------------------
# Flow: landing -> bronze Delta
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.flow
def test_rerun_loads_nothing_twice_and_late_file_is_picked_up(spark, settings):
    from flows.ingest import ingest_day, ingest_days

    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2"))
    land(settings, "online", "orders", D1, "orders-0002.csv", orders_csv("3"))
    land(settings, "online", "orders", D2, "orders-0001.csv", orders_csv("4"))
    first = ingest_days(settings, [D1, D2], sources=["online"])
    assert [(r.run_date, r.rows_in, r.rows_out, r.files_loaded) for r in first] == [(D1, 3, 3, 2), (D2, 1, 1, 1)]
    assert all(r.balanced for r in first)
    rows = bronze_rows(spark, settings, "online", "orders")
    assert sorted(r["order_id"] for r in rows) == ["1", "2", "3", "4"]
    first_run_of = {(r["_source_file"], r["_line_number"]): r["_run_id"] for r in rows}

    again = ingest_day(settings, D1, spark=spark)
    assert [(r.rows_in, r.rows_out, r.files_loaded, r.files_skipped) for r in again] == [(0, 0, 0, 2)]
    assert len(bronze_rows(spark, settings, "online", "orders")) == 4

    late = land(settings, "online", "orders", D1, "orders-0003.csv", orders_csv("5", "6"))
    runs = ingest_days(settings, [D1, D2])
    assert [(r.run_date, r.files_loaded, r.files_skipped, r.rows_out) for r in runs] == [(D1, 1, 2, 2), (D2, 0, 1, 0)]
    rows = bronze_rows(spark, settings, "online", "orders")
    assert sorted(r["order_id"] for r in rows) == ["1", "2", "3", "4", "5", "6"]
    for r in rows:  # nothing else was reloaded: earlier rows keep their first run id
        if r["_source_file"] != late:
            assert r["_run_id"] == first_run_of[(r["_source_file"], r["_line_number"])]
        else:
            assert r["ingest_date"] == D1
    keys = [(r["_source_file"], r["_line_number"]) for r in rows]
    assert len(keys) == len(set(keys))
    loaded = [e for e in ledger_rows(spark, settings) if e["status"] == "loaded"]
    assert len(loaded) == 4 and len({(e["file_path"], e["fingerprint"]) for e in loaded}) == 4


@pytest.mark.flow
def test_first_load_of_a_day_deletes_nothing_and_a_reload_replaces_its_rows(spark, settings, monkeypatch):
    import flows.ingest as ingest

    deletes = []
    delete_where = delta.delete_where
    monkeypatch.setattr(delta, "delete_where", lambda *a, **k: (deletes.append(a[1].name), delete_where(*a, **k)))
    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2"))
    land(settings, "online", "orders", D2, "orders-0001.csv", orders_csv("3"))
    ingest.ingest_days(settings, [D1, D2], sources=["online"])
    assert deletes == []  # no bronze file of these days existed: no DELETE query

    # the same file rewritten in place: a new fingerprint, so it loads again and replaces its old rows
    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2", "9"))
    runs = ingest.ingest_days(settings, [D1], sources=["online"])
    assert [(r.files_loaded, r.rows_out) for r in runs] == [(1, 3)]
    assert deletes == ["online_orders"]
    rows = bronze_rows(spark, settings, "online", "orders")
    assert sorted(r["order_id"] for r in rows) == ["1", "2", "3", "9"]


@pytest.mark.flow
def test_crash_between_bronze_and_ledger_is_repaired_without_duplicates(spark, settings, monkeypatch):
    import flows.ingest as ingest

    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2", "3"))

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash after the bronze append")

    monkeypatch.setattr(ingest, "record_files", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest.ingest_day(settings, D1, spark=spark)
    assert len(bronze_rows(spark, settings, "online", "orders")) == 3  # appended, but no ledger row
    assert not delta.table_exists(FILE_LEDGER, settings)
    monkeypatch.undo()

    runs = ingest.ingest_day(settings, D1, spark=spark)
    assert runs[0].files_loaded == 1
    rows = bronze_rows(spark, settings, "online", "orders")
    assert sorted(r["order_id"] for r in rows) == ["1", "2", "3"]
    assert {r["_run_id"] for r in rows} == {runs[0].run_id}
    assert ingest.ingest_day(settings, D1, spark=spark)[0].files_skipped == 1
    assert len(bronze_rows(spark, settings, "online", "orders")) == 3


@pytest.mark.flow
def test_a_days_ledger_rows_are_one_commit_after_its_last_table(spark, settings, monkeypatch):
    import flows.ingest as ingest

    for day in (D1, D2):
        land(settings, "online", "orders", day, "orders-0001.csv", orders_csv(f"{day.day}a"))
        land(settings, "online", "orders", day, "orders-0002.csv", orders_csv(f"{day.day}b"))
        land(settings, "pos", "stores", day, "stores-0001.csv", b"store_id,store_name\r\nS1,Leeds\r\n")
    commits = []
    real_record = ingest.record_files

    def record(spark_, settings_, entries):
        commits.append(sorted((e.ingest_date, e.file_path.rsplit("/", 1)[-1]) for e in entries))
        return real_record(spark_, settings_, entries)

    monkeypatch.setattr(ingest, "record_files", record)
    runs = ingest.ingest_days(settings, [D1, D2])
    assert commits == [[(day, "orders-0001.csv"), (day, "orders-0002.csv"), (day, "stores-0001.csv")]
                       for day in (D1, D2)]
    assert sorted((r.run_date, r.table_name, r.files_loaded) for r in runs) == [
        (day, t, n) for day in (D1, D2) for t, n in (("bronze.online_orders", 2), ("bronze.pos_stores", 1))]
    assert len(ledger_rows(spark, settings)) == 6


@pytest.mark.flow
def test_tables_are_staged_ahead_and_loaded_in_order_by_the_calling_thread(spark, settings, monkeypatch):
    import threading

    import flows.ingest as ingest

    days = [D1, D2, D1 + dt.timedelta(days=2)]
    for day in days:
        land(settings, "online", "orders", day, "orders-0001.csv", orders_csv(f"{day.day}a", f"{day.day}b"))
    staged, loaded, engine_threads = [], [], set()
    real_stage, real_load, real_append = ingest._stage_table, ingest._load_table, ingest.delta.append

    def stage(settings_, target, day, **kwargs):
        staged.append((day, threading.current_thread().name))
        return real_stage(settings_, target, day, **kwargs)

    def load(spark_, settings_, target, day, staged_, **kwargs):
        loaded.append((day, threading.current_thread().name))
        return real_load(spark_, settings_, target, day, staged_, **kwargs)

    def append(*args, **kwargs):
        engine_threads.add(threading.current_thread().name)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(ingest, "_stage_table", stage)
    monkeypatch.setattr(ingest, "_load_table", load)
    monkeypatch.setattr(ingest.delta, "append", append)
    runs = ingest.ingest_days(settings, days)
    assert [(r.run_date, r.rows_out) for r in runs] == [(d, 2) for d in days]
    assert [d for d, _ in staged] == days and all(name.startswith("ingest-stage") for _, name in staged)
    assert loaded == [(d, threading.main_thread().name) for d in days]
    assert engine_threads == {threading.main_thread().name}
    assert len({r.run_id for r in runs}) == 3
    assert sorted(r["order_id"] for r in bronze_rows(spark, settings, "online", "orders")) == [
        f"{d.day}{x}" for d in days for x in "ab"]


@pytest.mark.flow
def test_a_failed_load_stops_the_run_and_leaves_no_staged_file(spark, settings, monkeypatch):
    import flows.ingest as ingest

    days = [D1, D2, D1 + dt.timedelta(days=2)]
    for day in days:
        land(settings, "online", "orders", day, "orders-0001.csv", orders_csv(f"{day.day}a"))
    calls = []
    real_record = ingest.record_files

    def record(spark_, settings_, entries):
        calls.append(entries[0].ingest_date)
        if len(calls) == 2:
            raise RuntimeError("ledger unavailable")
        return real_record(spark_, settings_, entries)

    monkeypatch.setattr(ingest, "record_files", record)
    with pytest.raises(RuntimeError, match="ledger unavailable"):
        ingest.ingest_days(settings, days)
    staging = Path(settings.warehouse_root) / "_staging"
    assert not staging.exists() or not [p for p in staging.rglob("*") if p.is_file()]
    assert calls == [D1, D2]  # the third day was staged ahead, never loaded
    monkeypatch.undo()
    runs = ingest.ingest_days(settings, days)  # the rerun repairs D2 and loads D3, each row once
    assert [(r.run_date, r.files_loaded, r.files_skipped) for r in runs] == [(D1, 0, 1), (D2, 1, 0), (days[2], 1, 0)]
    assert sorted(r["order_id"] for r in bronze_rows(spark, settings, "online", "orders")) == ["3a", "4a", "5a"]


@pytest.mark.flow
def test_malformed_csv_and_json_lines_reach_bronze_with_reason(spark, settings):
    from flows.ingest import ingest_day

    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1") + b"2,broken\r\n" + orders_csv("3")[len(ORDERS_HEADER) + 1:])
    events = (
        b'{"event_time": "2026-01-03 10:00:00 UTC", "event_type": "view", "product_id": "SKU1"}\r\n'
        b'{"event_time": "2026-01-03 10:01:00 UTC", "event_type": \r\n'
        b'{"event_time": "2026-01-03 10:02:00 UTC", "event_type": "cart", "product_id": "SKU1"}\r\n'
    )
    land(settings, "clickstream", "events", D1, "events-0001.jsonl", events)
    land(settings, "clickstream", "events", D1, "events-0002.jsonl", b"{oops\n")  # nothing but a malformed line
    land(settings, "clickstream", "events", D1, "events-0003.jsonl", b"")  # empty file
    runs = {r.table_name: r for r in ingest_day(settings, D1, spark=spark)}
    assert runs["bronze.online_orders"].rows_out == 3 and runs["bronze.online_orders"].status == "warn"
    assert (runs["bronze.clickstream_events"].rows_out, runs["bronze.clickstream_events"].files_loaded) == (4, 3)
    orders = sorted(bronze_rows(spark, settings, "online", "orders"), key=lambda r: r["_line_number"])
    assert [r["order_id"] for r in orders] == ["1", None, "3"]
    assert orders[1]["_raw_line"] == "2,broken" and orders[1]["_parse_error"] == "expected 9 fields, found 2"
    ev = sorted(bronze_rows(spark, settings, "clickstream", "events"), key=lambda r: (r["_source_file"], r["_line_number"]))
    assert ev.pop()["_raw_line"] == "{oops"
    assert [r["event_type"] for r in ev] == ["view", None, "cart"]
    assert ev[1]["_raw_line"].startswith('{"event_time": "2026-01-03 10:01:00 UTC"')
    assert ev[1]["_parse_error"].startswith("invalid JSON")
    assert ev[0]["device_type"] is None  # canonical column absent from the file: null


@pytest.mark.flow
def test_schema_drift_column_is_added_and_kept(spark, settings):
    from flows.ingest import ingest_days

    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2"))
    land(settings, "online", "orders", D2, "orders-0001.csv", orders_csv("3", extra="loyalty_tier"))
    runs = ingest_days(settings, [D1, D2])
    assert "loyalty_tier" in runs[1].message
    rows = {r["order_id"]: r for r in bronze_rows(spark, settings, "online", "orders")}
    assert rows["3"]["loyalty_tier"] == "loyalty_tier-3"
    assert rows["1"]["loyalty_tier"] is None and rows["2"]["loyalty_tier"] is None
    ledger = {e["ingest_date"]: e for e in ledger_rows(spark, settings)}
    assert ledger[D2]["extra_columns"] == "loyalty_tier"
    assert not list(Path(settings.warehouse_root, "_staging").glob("*"))  # staging removed after the append


@pytest.mark.flow
def test_file_missing_a_required_column_is_rejected_with_reason(spark, settings):
    from flows.ingest import ingest_day

    good = land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1"))
    bad = land(settings, "online", "orders", D1, "orders-0002.csv",
               b"customer_id,order_ts\nc1,2026-01-03T10:15:00Z\nc2,2026-01-03T10:16:00Z\n")
    run = ingest_day(settings, D1, spark=spark)[0]
    assert (run.files_loaded, run.files_rejected, run.rows_in, run.rows_out, run.rows_rejected) == (1, 1, 3, 1, 2)
    assert run.balanced and run.status == "warn"
    ledger = {e["file_path"]: e for e in ledger_rows(spark, settings)}
    assert ledger[good]["status"] == "loaded"
    assert ledger[bad]["status"] == "rejected"
    assert bad in ledger[bad]["reason"] and "`order_id`" in ledger[bad]["reason"]
    assert {r["_source_file"] for r in bronze_rows(spark, settings, "online", "orders")} == {good}
    # A rejected file is tried again on the next run (and rejected again); the loaded one is not reloaded.
    again = ingest_day(settings, D1, spark=spark)[0]
    assert (again.files_loaded, again.files_skipped, again.files_rejected) == (0, 1, 1)


def wide_orders_csv(order_id: str, n_extra: int) -> bytes:
    """An online orders file with ``n_extra`` unexpected columns ``drift_1..n``."""
    extras = [f"drift_{i}" for i in range(1, n_extra + 1)]
    row = f"{order_id},c{order_id},2026-01-03T10:15:00Z,placed,web,mobile,GBP,SW1A 1AA,2026-01-03T10:15:00Z"
    return (",".join([ORDERS_HEADER, *extras]) + "\n" + ",".join([row, *(f"v{i}" for i in range(n_extra))])
            + "\n").encode()


@pytest.mark.unit
@pytest.mark.parametrize("n_extra, rejected", [(0, False), (2, False), (3, True), (9_994, True)])
def test_extra_column_cap_rejects_only_above_the_limit(n_extra, rejected):
    from transforms.bronze.schemas import too_many_extra_columns

    extra = [f"x{i:05d}" for i in range(n_extra)]
    reason = too_many_extra_columns("landing/online/payments/ingest_date=2026-01-03/p.csv", extra, limit=2)
    assert bool(reason) is rejected
    if rejected:
        assert reason.startswith("landing file landing/online/payments/ingest_date=2026-01-03/p.csv: ")
        assert f"{n_extra:,} unexpected columns (`x00000`, `x00001`" in reason and "more than the 2 extra" in reason
        assert "LAKEHOUSE_MAX_EXTRA_COLUMNS" in reason and len(reason) < 400  # names a few columns, not thousands


@pytest.mark.unit
def test_extra_column_cap_setting(monkeypatch):
    from lakehouse.errors import ConfigError
    from lakehouse.settings import load_settings

    monkeypatch.delenv("LAKEHOUSE_MAX_EXTRA_COLUMNS", raising=False)
    assert load_settings().max_extra_columns == 50
    monkeypatch.setenv("LAKEHOUSE_MAX_EXTRA_COLUMNS", "7")
    assert load_settings().max_extra_columns == 7
    monkeypatch.setenv("LAKEHOUSE_MAX_EXTRA_COLUMNS", "-1")
    with pytest.raises(ConfigError, match="max_extra_columns"):
        load_settings()


@pytest.mark.flow
def test_file_with_too_many_extra_columns_is_rejected_and_loaded_once_the_cap_allows(spark, settings):
    from flows.ingest import ingest_day

    capped = settings.model_copy(update={"max_extra_columns": 2})
    few = land(settings, "online", "orders", D1, "orders-0001.csv", wide_orders_csv("1", 2))
    many = land(settings, "online", "orders", D1, "orders-0002.csv", wide_orders_csv("2", 3))
    run = ingest_day(capped, D1, spark=spark)[0]
    assert (run.files_loaded, run.files_rejected, run.rows_in, run.rows_out, run.rows_rejected) == (1, 1, 2, 1, 1)
    assert run.balanced and run.status == "warn"
    ledger = {e["file_path"]: e for e in ledger_rows(spark, settings)}
    assert (ledger[few]["status"], ledger[few]["extra_columns"]) == ("loaded", "drift_1,drift_2")
    assert ledger[many]["status"] == "rejected" and ledger[many]["rows"] == 1
    reason = ledger[many]["reason"]
    assert reason.startswith(f"landing file {many}: 3 unexpected columns (`drift_1`, `drift_2`, `drift_3`)")
    rows = bronze_rows(spark, settings, "online", "orders")
    assert [(r["order_id"], r["drift_2"]) for r in rows] == [("1", "v1")]
    assert "drift_3" not in rows[0]  # the rejected file did not widen the table
    assert Path(many).exists()  # nothing lost: the file stays in landing
    # Raising the cap is enough: the rejected file is tried again and loaded; the loaded one is not reloaded.
    again = ingest_day(settings.model_copy(update={"max_extra_columns": 3}), D1, spark=spark)[0]
    assert (again.files_loaded, again.files_skipped, again.files_rejected, again.rows_out) == (1, 1, 0, 1)
    rows = {r["order_id"]: r for r in bronze_rows(spark, settings, "online", "orders")}
    assert rows["2"]["drift_3"] == "v2" and rows["1"]["drift_3"] is None


@pytest.mark.flow
def test_missing_landing_folder_is_a_clear_error(spark, settings):
    from flows.ingest import ingest_day, ingest_days

    with pytest.raises(LandingNotFound, match="landing folder .*landing does not exist"):
        ingest_days(settings, [D1])
    land(settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1"))
    with pytest.raises(LandingNotFound, match=f"no landing folder for {D2}"):
        ingest_day(settings, D2, spark=spark)
    with pytest.raises(LandingNotFound, match=f"no landing folder for {D2}"):
        ingest_days(settings, [D1, D2])  # checked before any work
    assert not delta.table_exists(bronze_table("online", "orders"), settings)


@pytest.mark.flow
def test_ingestion_on_s3_is_exactly_once(spark, s3_settings):
    from flows.ingest import ingest_day

    uri = land(s3_settings, "online", "orders", D1, "orders-0001.csv", orders_csv("1", "2") + b"x,y\n")
    assert uri.startswith("s3://")
    run = ingest_day(s3_settings, D1, spark=spark)[0]
    assert (run.files_loaded, run.rows_out) == (1, 3)
    land(s3_settings, "online", "orders", D1, "orders-0002.csv", orders_csv("3", extra="loyalty_tier"))
    run = ingest_day(s3_settings, D1, spark=spark)[0]
    assert (run.files_loaded, run.files_skipped, run.rows_out) == (1, 1, 1)
    rows = bronze_rows(spark, s3_settings, "online", "orders")
    assert sorted(r["order_id"] or "-" for r in rows) == ["-", "1", "2", "3"]
    assert {r["_source_file"] for r in rows} == {uri, uri.replace("0001", "0002")}
    assert [r["loyalty_tier"] for r in rows if r["order_id"] == "3"] == ["loyalty_tier-3"]
    assert not Storage(s3_settings).list_files(f"{s3_settings.warehouse_root}/_staging", recursive=True)


@pytest.mark.flow
def test_cli_ingest_missing_landing_folder_prints_no_traceback(tmp_path):
    env = cli_env(tmp_path / "lh")
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "ingest", "--date", "2026-01-01"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "error: landing folder" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.unit
def test_orders_entity_contract_is_what_the_tests_write():
    assert ",".join(ONLINE_ORDERS.columns) == ORDERS_HEADER
