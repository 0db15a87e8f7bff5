"""Bad records the generator injects, per entity, so that tests can assert exactly what the pipeline catches.

Kinds (the ``kind`` column of ``truth/bad_records.csv``):

- ``malformed``: a line that does not parse (CSV: wrong field count, or a truncated last line with an unbalanced
  quote; JSON lines: broken JSON). Not possible in Parquet.
- ``wrong_type``: a value of the wrong type or an impossible date (``abc`` quantity, ``31/02/2026``).
- ``negative_price``: a price or cost below zero.
- ``unknown_enum``: a value outside the allowed set (event_type ``zoom``, payment_method ``bitcoin``).
- ``duplicate``: an exact copy of another record of the same file.
- ``late_arriving``: a valid record whose business date is 1-3 days before its ingest date.
- ``schema_drift``: a file with an extra column (online orders carry ``coupon_code`` from the third day on);
  one row per file with ``line_number`` 0.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np

MALFORMED = "malformed"
WRONG_TYPE = "wrong_type"
NEGATIVE_PRICE = "negative_price"
UNKNOWN_ENUM = "unknown_enum"
DUPLICATE = "duplicate"
LATE_ARRIVING = "late_arriving"
SCHEMA_DRIFT = "schema_drift"
KINDS = (MALFORMED, WRONG_TYPE, NEGATIVE_PRICE, UNKNOWN_ENUM, DUPLICATE, LATE_ARRIVING, SCHEMA_DRIFT)
RECORD_KINDS = KINDS[:-1]  # kinds that affect one record and count towards the bad share

Maker = Callable[[str | None, random.Random, dt.date], str]


@dataclass(frozen=True)
class ValueDefect:
    """Replace one column's value of a record."""

    column: str
    make: Maker
    also: tuple[str, ...] = ()  # columns changed the same way (e.g. updated_at moves back with order_ts)


def _const(value: str) -> Maker:
    return lambda old, r, day: value


def _impossible_date(pattern: str) -> Maker:
    return lambda old, r, day: pattern.format(year=day.year)


def _negate(old: str | None, r: random.Random, day: dt.date) -> str:
    if not old or old.startswith("-"):
        return f"-{r.randint(1, 99)}.{r.randint(0, 99):02d}"
    return "-" + old


def _shift_back(ts_format: str) -> Maker:
    """Move a timestamp 1-3 days back (a record that arrives late)."""

    def make(old: str | None, r: random.Random, day: dt.date) -> str:
        k = r.randint(1, 3)
        try:
            ts = dt.datetime.strptime(old or "", ts_format)
        except ValueError:
            ts = dt.datetime.combine(day, dt.time(12, 0))
        return (ts - dt.timedelta(days=k)).strftime(ts_format)

    return make


ISO_TS = "%Y-%m-%dT%H:%M:%SZ"
POS_TS = "%Y-%m-%d %H:%M:%S"
CLICK_TS = "%Y-%m-%d %H:%M:%S UTC"

# (kind of source, entity) -> defect kind -> alternatives (one is chosen per record).
VALUE_DEFECTS: dict[tuple[str, str], dict[str, tuple[ValueDefect, ...]]] = {
    ("online", "customers"): {
        WRONG_TYPE: (ValueDefect("date_of_birth", _impossible_date("31/02/1990")),
                     ValueDefect("created_at", _const("not a date"))),
        UNKNOWN_ENUM: (ValueDefect("marketing_opt_in", _const("maybe")),),
    },
    ("online", "orders"): {
        WRONG_TYPE: (ValueDefect("order_ts", _impossible_date("31/02/{year}")),),
        UNKNOWN_ENUM: (ValueDefect("status", _const("lost")), ValueDefect("channel", _const("fax")),
                       ValueDefect("device_type", _const("smartwatch"))),
        LATE_ARRIVING: (ValueDefect("order_ts", _shift_back(ISO_TS), also=("updated_at",)),),
    },
    ("online", "order_lines"): {
        WRONG_TYPE: (ValueDefect("quantity", _const("abc")), ValueDefect("quantity", _const("two")),
                     ValueDefect("unit_price", _const("12,50"))),
        NEGATIVE_PRICE: (ValueDefect("unit_price", _negate),),
    },
    ("online", "payments"): {
        WRONG_TYPE: (ValueDefect("amount", _const("abc")), ValueDefect("payment_ts", _impossible_date("31/02/{year}"))),
        UNKNOWN_ENUM: (ValueDefect("payment_method", _const("bitcoin")), ValueDefect("status", _const("pending"))),
    },
    ("pos", "members"): {
        WRONG_TYPE: (ValueDefect("birth_date", _impossible_date("31/02/1985")),
                     ValueDefect("joined_at", _const("yesterday"))),
        UNKNOWN_ENUM: (ValueDefect("opt_in", _const("maybe")),),
    },
    ("pos", "transactions"): {
        WRONG_TYPE: (ValueDefect("transaction_ts", _impossible_date("31/02/{year} 10:00:00")),
                     ValueDefect("total_amount", _const("abc"))),
        UNKNOWN_ENUM: (ValueDefect("payment_method", _const("bitcoin")),
                       ValueDefect("transaction_type", _const("exchange"))),
        LATE_ARRIVING: (ValueDefect("transaction_ts", _shift_back(POS_TS)),),
    },
    ("pos", "transaction_lines"): {
        WRONG_TYPE: (ValueDefect("quantity", _const("abc")), ValueDefect("unit_price", _const("N/A"))),
        NEGATIVE_PRICE: (ValueDefect("unit_price", _negate),),
    },
    ("clickstream", "events"): {
        WRONG_TYPE: (ValueDefect("price", _const("abc")), ValueDefect("event_time", _impossible_date("31/02/{year} 10:00:00"))),
        NEGATIVE_PRICE: (ValueDefect("price", _negate),),
        UNKNOWN_ENUM: (ValueDefect("event_type", _const("zoom")),),
        LATE_ARRIVING: (ValueDefect("event_time", _shift_back(CLICK_TS)),),
    },
    ("inventory", "movements"): {
        WRONG_TYPE: (ValueDefect("quantity", _const("abc")), ValueDefect("movement_ts", _impossible_date("31/02/{year}"))),
        NEGATIVE_PRICE: (ValueDefect("unit_cost", _negate),),
        UNKNOWN_ENUM: (ValueDefect("movement_type", _const("teleport")),),
        LATE_ARRIVING: (ValueDefect("movement_ts", _shift_back(ISO_TS)),),
    },
}


def eligible_kinds(kind: str, entity: str, file_format: str) -> tuple[str, ...]:
    """Defect kinds that can hit a record of this entity in this file format (empty: the entity stays clean)."""
    value_kinds = VALUE_DEFECTS.get((kind, entity))
    if value_kinds is None:
        return ()
    kinds = list(value_kinds) + [DUPLICATE]
    if file_format in ("csv", "jsonl"):
        kinds.append(MALFORMED)
    return tuple(k for k in RECORD_KINDS if k in kinds)


def plan(rng: np.random.Generator, n_rows: int, share: float, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Which records get a defect, and which kind: (sorted row indices, kind index per row)."""
    if not kinds or n_rows == 0 or share <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    k = int(rng.binomial(n_rows, min(share, 0.5)))
    rows = np.sort(rng.choice(n_rows, size=k, replace=False)).astype(np.int64)
    return rows, rng.integers(0, len(kinds), size=k)
