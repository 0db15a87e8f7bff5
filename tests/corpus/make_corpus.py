"""The bad-input corpus: hostile landing files, written at test time, each with what the pipeline must do with it.

``write_corpus(landing_root, day)`` writes every file into ``<landing_root>/<source>/<entity>/ingest_date=<day>/``
and returns one :class:`Expected` per file: whether bronze must load it (defects kept as malformed records and
quarantined by silver) or reject it as a whole (a ledger row with the reason), how many records the ledger must count,
the encoding bronze must report, exact values bronze must keep, and per record (by line number) the silver table and
the quarantine rule it must fail, or that it must reach silver.

Nothing here imports the pipeline: the expectations are written from the landing contract
(``/work/shared`` contracts: UTF-8 CSV with a header, JSON lines, Parquet; online timestamps ISO-8601 UTC, POS dates
DD/MM/YYYY) and from the quality rule files, so the test can fail. Run as a script to write the corpus to a folder:
``python tests/corpus/make_corpus.py /tmp/landing 2026-02-01``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MB = 1 << 20
WIDE_COLUMNS = 10_000

ONLINE_CUSTOMERS = ("customer_id email first_name last_name phone date_of_birth address_line1 city postcode country "
                    "marketing_opt_in created_at updated_at").split()
POS_MEMBERS = ("member_id loyalty_card full_name email phone birth_date street town post_code country opt_in joined_at "
               "updated_at").split()
ONLINE_ORDERS = "order_id customer_id order_ts status channel device_type currency shipping_postcode updated_at".split()
ONLINE_ORDER_LINES = "order_id line_number sku quantity unit_price discount_amount line_total updated_at".split()
ONLINE_PAYMENTS = "payment_id order_id payment_ts payment_method amount status".split()
ONLINE_PRODUCTS = "sku product_name brand category_code unit_price unit_cost currency updated_at".split()
EVENTS = ("event_time event_type product_id category_id category_code brand price user_id user_session "
          "device_type").split()
MOVEMENTS = "movement_id movement_ts location_id sku movement_type quantity unit_cost reference".split()

INJECTIONS = (
    "Robert'); DROP TABLE students;--",
    "<script>alert('pwned')</script>",
    "' OR '1'='1",
    "${jndi:ldap://127.0.0.1/a}",
    "`rm -rf /`; SELECT * FROM delta.`/etc`",
)


@dataclass
class Expected:
    """What the pipeline must do with one corpus file."""

    source: str
    entity: str
    name: str
    what: str  # the hostility, in words
    status: str  # loaded | rejected
    records: int  # records the ledger counts (good + malformed); rows bronze holds when loaded
    malformed: int = 0
    reason: str = ""  # a substring of the ledger reason (rejected) or note (loaded); "" = no check
    encoding: str | None = None  # the encoding bronze must report
    silver_table: str = ""  # the silver table the records feed
    quarantine: dict[int, str] = field(default_factory=dict)  # line number -> a rule it must fail
    passes: tuple[int, ...] = ()  # line numbers that must reach silver
    bronze_values: dict[tuple[int, str], str] = field(default_factory=dict)  # (line, column) -> exact bronze value
    silver_values: dict[tuple[int, str], str] = field(default_factory=dict)  # (line, column) -> silver value (any case)
    any_outcome: bool = False  # True: the file may be loaded (all records malformed) or rejected with a reason
    path: Path | None = None

    @property
    def loaded_rows(self) -> int:
        """Rows bronze must hold for this file."""
        return self.records if self.status == "loaded" else 0


def _csv(header: list[str], rows: list[list[str]], *, delimiter: str = ",", newline: str = "\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _customer(cid: str, first: str, last: str, *, address: str = "1 High Street", email: str | None = None) -> list[str]:
    email = email if email is not None else f"{cid.lower()}@example.com"
    return [cid, email, first, last, "+44 7700 900123", "1990-05-17", address, "Leeds", "LS1 1AA", "GB", "true",
            "2025-06-01T10:00:00Z", "2025-06-01T10:00:00Z"]


def _member(mid: str, name: str, birth: str) -> list[str]:
    return [mid, f"63356{mid[-4:]}00000", name, f"{mid.lower()}@example.com", "07700 900123", birth, "2 Low Road",
            "York", "yo1 7hh", "United Kingdom", "Y", "2024-01-02 09:00:00", "2024-01-02 09:00:00"]


def _event(i: int, **over) -> dict:
    doc = {"event_time": "2026-02-01 10:00:00 UTC", "event_type": "view", "product_id": "1000001",
           "category_id": "2053013552655424545", "category_code": "electronics.audio.headphones", "brand": "voltix",
           "price": "19.99", "user_id": "C-0001", "user_session": f"sess-{i:04d}", "device_type": "mobile"}
    doc.update(over)
    return doc


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _nonblank_lines(data: bytes) -> list[int]:
    """Physical line numbers (LF, CRLF, CR endings) of the lines of ``data`` that are not blank: the records a
    JSON-lines reader sees."""
    return [i for i, line in enumerate(re.split(rb"\r\n|\r|\n", data), start=1) if line and not line.isspace()]


def build_corpus(day: dt.date) -> list[tuple[Expected, bytes]]:
    """Every corpus file's expectation and bytes (nothing written)."""
    d = day.isoformat()
    out: list[tuple[Expected, bytes]] = []

    def add(exp: Expected, data: bytes | str) -> None:
        out.append((exp, data.encode("utf-8") if isinstance(data, str) else data))

    # -- online customers (CSV): structure, encodings, quoting, sizes, injection ---------------------------------
    cust = ("online", "customers")
    add(Expected(*cust, "customers-0001-empty.csv", "an empty file", "loaded", 0, reason="empty file"), b"")
    add(Expected(*cust, "customers-0002-header-only.csv", "a header and no records", "loaded", 0,
                 reason="header only"), _csv(ONLINE_CUSTOMERS, []))
    add(Expected(*cust, "customers-0003-semicolons.csv", "the wrong delimiter (semicolons)", "rejected", 2,
                 reason="required column `customer_id` missing"),
        _csv(ONLINE_CUSTOMERS, [_customer("C-0301", "Ann", "Lee"), _customer("C-0302", "Bob", "Ray")], delimiter=";"))
    latin = _csv(ONLINE_CUSTOMERS, [_customer("C-0401", "Renée", "Muñoz"), _customer("C-0402", "Zoë", "Brontë")])
    add(Expected(*cust, "customers-0004-latin1.csv", "Latin-1 text", "loaded", 2, reason="not UTF-8",
                 encoding="cp1252", silver_table="silver.customers", passes=(1, 2),
                 bronze_values={(1, "first_name"): "Renée", (1, "last_name"): "Muñoz", (2, "first_name"): "Zoë"}),
        latin.encode("latin-1"))
    bom = _csv(ONLINE_CUSTOMERS, [_customer(f"C-050{i}", "Émile", f"Zola{i}") for i in range(1, 4)], newline="\r\n")
    add(Expected(*cust, "customers-0005-bom-crlf.csv", "UTF-8 with a byte-order mark and CRLF line ends", "loaded", 3,
                 encoding="utf-8-sig", silver_table="silver.customers", passes=(1, 2, 3),
                 bronze_values={(1, "customer_id"): "C-0501", (3, "updated_at"): "2025-06-01T10:00:00Z",
                                (2, "first_name"): "Émile"}),
        b"\xef\xbb\xbf" + bom.encode("utf-8"))
    quoted = _csv(ONLINE_CUSTOMERS, [
        _customer("C-0601", 'Pat "Paddy"', "O'Brien", address="Flat 2\nRose Court\r\n12 Long Lane"),
        _customer("C-0602", "Smith, Jr", "Jones", address='He said "hi", then left'),
        _customer("C-0603", "Ann", "Lee", address=""),
    ])
    add(Expected(*cust, "customers-0006-quotes-newlines.csv", "quoted fields with embedded newlines, quotes, commas",
                 "loaded", 3, silver_table="silver.customers", passes=(1, 2, 3),
                 bronze_values={(1, "address_line1"): "Flat 2\nRose Court\r\n12 Long Lane",
                                (1, "first_name"): 'Pat "Paddy"', (2, "first_name"): "Smith, Jr",
                                (2, "address_line1"): 'He said "hi", then left', (3, "city"): "Leeds"}),
        quoted)
    add(Expected(*cust, "customers-0007-injection.csv", "SQL and script injection strings in names", "loaded",
                 len(INJECTIONS), silver_table="silver.customers", passes=tuple(range(1, len(INJECTIONS) + 1)),
                 bronze_values={(i + 1, "first_name"): s for i, s in enumerate(INJECTIONS)},
                 silver_values={(i + 1, "first_name"): s for i, s in enumerate(INJECTIONS)}),
        _csv(ONLINE_CUSTOMERS, [_customer(f"C-07{i:02d}", s, "Tables") for i, s in enumerate(INJECTIONS)]))
    add(Expected(*cust, "customers-0008-o'brien; drop.csv", "a file name with a quote, a semicolon and spaces",
                 "loaded", 1, silver_table="silver.customers", passes=(1,)),
        _csv(ONLINE_CUSTOMERS, [_customer("C-0801", "Quote", "Name")]))
    big = "x" * MB
    add(Expected(*cust, "customers-0009-1mb-field.csv", "a 1 MB field", "loaded", 2, silver_table="silver.customers",
                 passes=(2,), bronze_values={(1, "address_line1"): big, (2, "customer_id"): "C-0902"}),
        _csv(ONLINE_CUSTOMERS, [_customer("C-0901", "Big", "Field", address=big), _customer("C-0902", "Small", "Field")]))
    ragged = _csv(ONLINE_CUSTOMERS, [_customer("C-1001", "Good", "One")]) + "C-1002,too,few\n" + \
        ",".join(_customer("C-1003", "Too", "Many") + ["extra", "fields"]) + "\n" + \
        ",".join(_customer("C-1004", "Good", "Two")) + "\n"
    add(Expected(*cust, "customers-0010-ragged.csv", "records with too few and too many fields", "loaded", 4,
                 malformed=2, silver_table="silver.customers", quarantine={2: "no_parse_error", 3: "no_parse_error"},
                 passes=(1, 4)), ragged)
    unterminated = _csv(ONLINE_CUSTOMERS, [_customer("C-1101", "Good", "Row")]) + \
        'C-1102,x@example.com,"Open quote,Never,closed\n'
    add(Expected(*cust, "customers-0011-unterminated-quote.csv", "a last record whose quote never closes", "loaded", 2,
                 malformed=1, silver_table="silver.customers", quarantine={2: "no_parse_error"}, passes=(1,)),
        unterminated)
    add(Expected(*cust, "customers-0012-binary.csv", "binary garbage named .csv", "rejected", 0, any_outcome=True,
                 reason="landing file"), _garbage(64 * 1024, seed=12))
    add(Expected(*cust, "customers-0013-reserved-column.csv", "a column named like a bronze audit column", "rejected",
                 0, reason="reserved"), _csv([*ONLINE_CUSTOMERS, "_line_number"], [[*_customer("C-1301", "A", "B"), "7"]]))
    add(Expected(*cust, "customers-0014-duplicate-column.csv", "the same column twice", "rejected", 0,
                 reason="duplicate column"), _csv([*ONLINE_CUSTOMERS, "EMAIL"], [[*_customer("C-1401", "A", "B"), "x"]]))
    mixed = (_csv(ONLINE_CUSTOMERS, [_customer("C-1501", "José", "García")]).encode("utf-8")
             + ",".join(_customer("C-1502", "Zoë", "Smith")).encode("latin-1") + b"\n")
    add(Expected(*cust, "customers-0015-mixed-encodings.csv", "mixed encodings: UTF-8 and Latin-1 lines in one file", "loaded", 2,
                 reason="not UTF-8", encoding="cp1252", silver_table="silver.customers", passes=(1, 2),
                 bronze_values={(1, "first_name"): "José", (1, "last_name"): "García", (2, "first_name"): "Zoë"}), mixed)

    # -- POS members (CSV): birth dates in five formats, out-of-range dates, injection -----------------------------
    births = [
        ("17/05/1990", None),            # the POS format: passes
        ("1990-05-17", "values_parse"),  # ISO: not the source's format
        ("05/17/1990", "values_parse"),  # US month/day: month 17
        ("17.05.1990", "values_parse"),
        ("17 May 1990", "values_parse"),
        ("31/02/1990", "values_parse"),  # no such day
        ("01/01/1850", "birth_date_plausible"),  # pre-1900
        ("01/01/2999", "birth_date_plausible"),  # far future
    ]
    rows = [_member(f"M-20{i:02d}", f"Member {i}", b) for i, (b, _) in enumerate(births)]
    rows.append(_member("M-2099", INJECTIONS[0], "01/01/1980"))
    add(Expected("pos", "members", "members-0001-dates.csv", "birth dates in five formats, pre-1900 and far-future",
                 "loaded", len(rows), silver_table="silver.customers",
                 quarantine={i + 1: rule for i, (_, rule) in enumerate(births) if rule},
                 passes=tuple(i + 1 for i, (_, rule) in enumerate(births) if rule is None) + (len(rows),),
                 silver_values={(len(rows), "full_name"): INJECTIONS[0]}),
        _csv(POS_MEMBERS, rows))

    # -- online orders (CSV): order times in five formats, far future and pre-1900 ---------------------------------
    stamps = [
        ("2026-02-01T10:00:00Z", None),
        ("2026-02-01 11:00:00", None),          # space instead of T: accepted as UTC
        ("2026-02-01T12:00:00+01:00", None),    # an offset
        ("01/02/2026 10:00", "values_parse"),
        ("Feb 1, 2026 10:00 AM", "values_parse"),
        ("1769940000", "values_parse"),         # epoch seconds
        ("2026-13-45T10:00:00Z", "values_parse"),
        ("2999-01-01T00:00:00Z", "order_time_plausible"),  # far future
        ("1850-01-01T00:00:00Z", "order_time_plausible"),  # pre-1900
        ("1989-12-31T23:59:59Z", "order_time_plausible"),  # the last second before the 1990-01-01 bound
        ("1990-01-01T00:00:00Z", None),                    # the bound itself
        ("2026-01-29T08:00:00Z", None),                    # a late record: three days before its landing day
        ("2026-02-02T23:59:59Z", None),                    # clock skew: the last second of the tolerated day after
        ("2026-02-03T00:00:00Z", "order_time_plausible"),  # ingest_date + 2 days: past the tolerance
    ]
    orders = [[f"ORD-9{i:02d}", "C-0501", ts, "placed", "web", "desktop", "GBP", "LS1 1AA", ts]
              for i, (ts, _) in enumerate(stamps)]
    add(Expected("online", "orders", "orders-0001-dates.csv", "order times in five formats, pre-1900 and far-future",
                 "loaded", len(orders), silver_table="silver.orders",
                 quarantine={i + 1: rule for i, (_, rule) in enumerate(stamps) if rule},
                 passes=tuple(i + 1 for i, (_, rule) in enumerate(stamps) if rule is None)),
        _csv(ONLINE_ORDERS, orders))

    # -- online order lines (CSV): negative, zero, huge and non-numeric quantities ------------------------------------
    lines = [
        (["ORD-900", "1", "1000001", "2", "5.00", "0.00", "10.00"], None),
        (["ORD-900", "2", "1000001", "0", "5.00", "0.00", "0.00"], "quantity_not_zero"),
        (["ORD-900", "3", "1000001", "1000000", "1.00", "0.00", "1000000.00"], "quantity_plausible"),
        (["ORD-900", "4", "1000001", "99999999999", "1.00", "0.00", "99999999999.00"], "values_parse"),
        (["ORD-900", "5", "1000001", "-99999999", "1.00", "0.00", "-99999999.00"], "quantity_plausible"),
        (["ORD-900", "6", "1000001", "abc", "1.00", "0.00", "1.00"], "values_parse"),
        (["ORD-900", "7", "1000001", "-2", "5.00", "0.00", "10.00"], "line_total_consistent"),  # total's sign wrong
        (["ORD-900", "8", "1000001", "1", "-5.00", "0.00", "-5.00"], "unit_price_not_negative"),
        (["ORD-901", "1", "1000002", "1", "7.50", "0.00", "7.50"], None),
        (["ORD-901", "1", "1000002", "1", "7.50", "0.00", "7.50"], None),  # an exact duplicate: deduplicated
    ]
    add(Expected("online", "order_lines", "order_lines-0001-quantities.csv",
                 "negative, zero, huge and non-numeric quantities", "loaded", len(lines),
                 silver_table="silver.order_lines",
                 quarantine={i + 1: rule for i, (_, rule) in enumerate(lines) if rule}, passes=(1,)),
        _csv(ONLINE_ORDER_LINES, [[*r, "2026-02-01T10:00:00Z"] for r, _ in lines]))

    # -- online payments (CSV): 10,000 columns --------------------------------------------------------------------
    wide_header = [*ONLINE_PAYMENTS, *(f"x{i:05d}" for i in range(WIDE_COLUMNS - len(ONLINE_PAYMENTS)))]
    wide_rows = [[f"PAY-90{i}", "ORD-900", "2026-02-01T10:00:05Z", "card", "10.00", "captured",
                  *("v" for _ in range(WIDE_COLUMNS - len(ONLINE_PAYMENTS)))] for i in range(2)]
    add(Expected("online", "payments", "payments-0001-10000-columns.csv", "10,000 columns", "rejected", 2,
                 reason=f"{WIDE_COLUMNS - len(ONLINE_PAYMENTS):,} unexpected columns", silver_table="silver.payments"),
        _csv(wide_header, wide_rows))
    pay_times = [
        ("2026-02-01T10:00:05Z", None),
        ("2999-01-01T00:00:00Z", "payment_time_plausible"),  # far future
        ("1850-01-01T00:00:00Z", "payment_time_plausible"),  # pre-1900
        ("2026-01-30T10:00:00Z", None),                      # a late record
        ("", None),                                          # no time (a warning, not a defect)
    ]
    add(Expected("online", "payments", "payments-0002-times.csv", "payment times far-future, pre-1900 and late",
                 "loaded", len(pay_times), silver_table="silver.payments",
                 quarantine={i + 1: rule for i, (_, rule) in enumerate(pay_times) if rule},
                 passes=tuple(i + 1 for i, (_, rule) in enumerate(pay_times) if rule is None)),
        _csv(ONLINE_PAYMENTS, [[f"PAY-92{i}", "ORD-900", ts, "card", "10.00", "captured"]
                               for i, (ts, _) in enumerate(pay_times)]))

    # -- clickstream events (JSON lines): wrong types, malformed lines, CRLF, gzip, garbage -----------------------
    ev_lines = [
        json.dumps(_event(1)),                                       # 1 good
        json.dumps(_event(2, price="abc")),                          # 2 price not a number
        json.dumps(_event(3, price={"amount": 5})),                  # 3 price an object
        json.dumps(_event(4, event_time=1769940000)),                # 4 time a number
        json.dumps(_event(5, user_id=12345, price=19.5)),            # 5 numbers where strings are expected: fine
        json.dumps([1, 2, 3]),                                       # 6 not an object
        '{"event_time": "2026-02-01 10:00:00 UTC", "event_type": ',  # 7 truncated
        "",                                                          # 8 blank: not a record
        json.dumps(_event(9, event_type=True)),                      # 9 a boolean event type
        json.dumps(_event(10, event_time="2999-01-01 00:00:00 UTC")),  # 10 far future
        json.dumps(_event(11, event_time="1850-01-01 00:00:00 UTC")),  # 11 pre-1900
        json.dumps(_event(12, event_time="2026-02-02 23:30:00 UTC")),  # 12 clock skew within the tolerance
    ]
    add(Expected("clickstream", "events", "events-0001-wrong-types.jsonl", "JSON with wrong types and broken lines",
                 "loaded", 11, malformed=2, silver_table="silver.events",
                 quarantine={2: "values_parse", 3: "values_parse", 4: "values_parse", 6: "no_parse_error",
                             7: "no_parse_error", 9: "event_type_known", 10: "event_time_plausible",
                             11: "event_time_plausible"},
                 passes=(1, 5, 12),
                 bronze_values={(5, "user_id"): "12345", (5, "price"): "19.5", (3, "price"): '{"amount":5}'}),
        "\n".join(ev_lines) + "\n")
    add(Expected("clickstream", "events", "events-0002-crlf.jsonl", "JSON lines with CRLF line ends", "loaded", 2,
                 silver_table="silver.events", passes=(1, 2)),
        "\r\n".join(json.dumps(_event(20 + i)) for i in range(2)) + "\r\n")
    gz = gzip.compress(("\n".join(json.dumps(_event(30 + i)) for i in range(50)) + "\n").encode())
    add(Expected("clickstream", "events", "events-0003-truncated.jsonl.gz", "a truncated gzip file", "rejected", 0,
                 reason="cannot be read"), gz[: len(gz) // 2])
    garbage = _garbage(8 * 1024, seed=4)
    lines_seen = _nonblank_lines(garbage)
    add(Expected("clickstream", "events", "events-0004-garbage.jsonl", "binary garbage named .jsonl", "loaded",
                 len(lines_seen), malformed=len(lines_seen), reason="not UTF-8", silver_table="silver.events",
                 quarantine={n: "no_parse_error" for n in lines_seen}), garbage)

    # -- inventory movements (Parquet): truncated, garbage, typed columns -----------------------------------------
    def parquet(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    good = pa.table({c: pa.array([f"{c}-{i}" if c not in ("movement_ts", "quantity", "unit_cost", "movement_type")
                                  else {"movement_ts": "2026-02-01T09:00:00Z", "quantity": "5", "unit_cost": "1.50",
                                        "movement_type": "inbound"}[c] for i in range(200)]) for c in MOVEMENTS})
    whole = parquet(good)
    add(Expected("inventory", "movements", "movements-0001-truncated.parquet", "a truncated Parquet file", "rejected", 0,
                 reason="unreadable Parquet"), whole[: len(whole) // 2])
    add(Expected("inventory", "movements", "movements-0002-garbage.parquet", "binary garbage named .parquet",
                 "rejected", 0, reason="unreadable Parquet"), _garbage(4096, seed=2))
    typed = pa.table({
        "movement_id": ["MV-1", "MV-2", "MV-3", "MV-4"],
        "movement_ts": ["2026-02-01T09:00:00Z"] * 4,
        "location_id": ["S01"] * 4,
        "sku": ["1000001"] * 4,
        "movement_type": ["inbound", "outbound", "adjustment", "inbound"],
        "quantity": pa.array([5, -3, 2**62, 0], pa.int64()),
        "unit_cost": pa.array([1.5, 2.25, 1.0, 1.0], pa.float64()),
        "reference": pa.array([{"po": "A1"}, None, None, {"po": "B2"}]),
    })
    add(Expected("inventory", "movements", "movements-0003-typed.parquet",
                 "typed Parquet columns (int64, double, struct) where strings are expected", "loaded", 4,
                 silver_table="silver.inventory_movements", quarantine={3: "values_parse", 4: "quantity_not_zero"},
                 passes=(1, 2), bronze_values={(1, "quantity"): "5", (2, "unit_cost"): "2.25",
                                               (1, "reference"): '{"po":"A1"}'}),
        parquet(typed))
    move_times = [
        ("2026-02-01T09:00:00Z", None),
        ("1850-01-01T00:00:00Z", "movement_time_plausible"),  # pre-1900
        ("2999-12-31T23:59:59Z", "movement_time_plausible"),  # far future
        ("2026-01-31T18:00:00Z", None),                       # a late record
    ]
    timed = pa.table({
        "movement_id": [f"MV-T{i}" for i in range(len(move_times))],
        "movement_ts": [ts for ts, _ in move_times],
        "location_id": ["S01"] * len(move_times),
        "sku": ["1000001"] * len(move_times),
        "movement_type": ["inbound"] * len(move_times),
        "quantity": ["5"] * len(move_times),
        "unit_cost": ["1.50"] * len(move_times),
        "reference": ["PO-9"] * len(move_times),
    })
    add(Expected("inventory", "movements", "movements-0004-times.parquet", "movement times pre-1900 and far-future",
                 "loaded", len(move_times), silver_table="silver.inventory_movements",
                 quarantine={i + 1: rule for i, (_, rule) in enumerate(move_times) if rule},
                 passes=tuple(i + 1 for i, (_, rule) in enumerate(move_times) if rule is None)),
        parquet(timed))
    return out


def write_corpus(landing_root: str | Path, day: dt.date) -> list[Expected]:
    """Write the corpus under ``landing_root`` for ``day``; returns the expectations with each file's path."""
    out = []
    for exp, data in build_corpus(day):
        folder = Path(landing_root) / exp.source / exp.entity / f"ingest_date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        exp.path = folder / exp.name
        exp.path.write_bytes(data)
        out.append(exp)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "corpus_landing"
    when = dt.date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else dt.date(2026, 2, 1)
    for e in write_corpus(target, when):
        print(f"{e.status:<8} {e.records:>6}  {e.path}  ({e.what})")
