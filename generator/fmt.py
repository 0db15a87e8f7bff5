"""Vectorized value formatting: numbers, money, dates and timestamps to pyarrow string arrays.

All values land as text; these helpers turn numpy arrays into the per-source text formats of the contract without a
Python loop per value.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = dt.date(1970, 1, 1)
DAY_S = 86_400

# Timestamp styles per source (contracts.md "Value formats per source").
TS_STYLES = {
    "iso": ("{d}T{t}Z", "%Y-%m-%dT%H:%M:%SZ"),  # online, inventory
    "pos": ("{d} {t}", "%Y-%m-%d %H:%M:%S"),  # pos
    "click": ("{d} {t} UTC", "%Y-%m-%d %H:%M:%S UTC"),  # clickstream (REES46)
}


def epoch_day(day: dt.date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days


def day_start(day: dt.date) -> int:
    """Seconds since the epoch at 00:00:00 UTC of ``day``."""
    return epoch_day(day) * DAY_S


@lru_cache(maxsize=1)
def _time_of_day() -> pa.Array:
    secs = np.arange(DAY_S, dtype=np.int64)
    parts = [pc.utf8_lpad(pc.cast(pa.array(v), pa.string()), 2, "0") for v in (secs // 3600, secs // 60 % 60, secs % 60)]
    return pc.binary_join_element_wise(*parts, ":")


def _date_text(days: np.ndarray, style: str) -> pa.Array:
    """Dates (days since epoch) as text, through a lookup of the distinct days."""
    uniq, inverse = np.unique(days, return_inverse=True)
    dates = [EPOCH + dt.timedelta(days=int(d)) for d in uniq]
    if style == "dmy":
        texts = [d.strftime("%d/%m/%Y") for d in dates]
    else:
        texts = [d.isoformat() for d in dates]
    return pa.array(texts, pa.string()).take(pa.array(inverse.astype(np.int64)))


def dates(days: np.ndarray, style: str = "iso", null: np.ndarray | None = None) -> pa.Array:
    """``YYYY-MM-DD`` (style iso) or ``DD/MM/YYYY`` (style dmy) text for epoch-day numbers."""
    out = _date_text(np.asarray(days, dtype=np.int64), style)
    return with_nulls(out, null)


def timestamps(secs: np.ndarray, style: str, null: np.ndarray | None = None) -> pa.Array:
    """Timestamps (epoch seconds, UTC) in one of the source styles of :data:`TS_STYLES`."""
    secs = np.asarray(secs, dtype=np.int64)
    if len(secs) == 0:
        return pa.array([], pa.string())
    day = secs // DAY_S
    tod = (secs - day * DAY_S).astype(np.int64)
    d = _date_text(day, "iso")
    t = _time_of_day().take(pa.array(tod))
    sep = "T" if style == "iso" else " "
    out = pc.binary_join_element_wise(d, t, sep)
    if style == "iso":
        out = pc.binary_join_element_wise(out, "Z", "")
    elif style == "click":
        out = pc.binary_join_element_wise(out, "UTC", " ")
    return with_nulls(out, null)


def ints(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Integers as text."""
    return with_nulls(pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string()), null)


def money(pence: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Pence as ``12.50`` / ``-3.05`` text."""
    pence = np.asarray(pence, dtype=np.int64)
    if len(pence) == 0:
        return pa.array([], pa.string())
    neg = pence < 0
    ab = np.abs(pence)
    whole = pc.cast(pa.array(ab // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(ab % 100), pa.string()), 2, "0")
    out = pc.binary_join_element_wise(whole, frac, ".")
    if neg.any():
        out = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", out, ""), out)
    return with_nulls(out, null)


def prefixed(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers like ``O000012345``: a prefix and a zero-padded number."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "") if prefix else digits


def lookup(values: list[str] | tuple[str, ...] | pa.Array, codes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """``values[codes]`` as a string array (an empty string in ``values`` becomes null)."""
    arr = values if isinstance(values, pa.Array) else pa.array([v if v != "" else None for v in values], pa.string())
    return with_nulls(arr.take(pa.array(np.asarray(codes, dtype=np.int64))), null)


def const(value: str | None, n: int) -> pa.Array:
    """A column with one repeated value (or nulls)."""
    if value is None:
        return pa.nulls(n, pa.string())
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def with_nulls(arr: pa.Array, null: np.ndarray | None) -> pa.Array:
    """Set the positions where ``null`` is true to null."""
    if null is None or not np.any(null):
        return arr
    return pc.if_else(pa.array(np.asarray(null, dtype=bool)), pa.scalar(None, pa.string()), arr)


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4-looking UUID strings (deterministic for the generator state)."""
    if n == 0:
        return pa.array([], pa.string())
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = raw.tobytes().hex().encode()
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    flat = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(hexed))
    parts = [pc.utf8_slice_codeunits(flat, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")
