"""Typing bronze strings: timestamps, dates, decimals, integers and booleans, with null for what does not parse.

A value that fails to parse becomes null; :func:`unparsed_columns` names the columns whose non-empty raw value did
not parse, so that a quality rule can quarantine the row with a reason instead of silently losing the value.
Formats are Spark datetime patterns; mapping files give Python ``strptime`` formats, converted by
:func:`strptime_to_spark`.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F

# Built-in value formats per source kind (see contracts: "Value formats per source"). Several patterns are tried in
# order; the first that parses wins.
ISO_UTC = ("yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS]XXX", "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS]X",
           "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS]", "yyyy-MM-dd HH:mm:ss[.SSSSSS][.SSS]")
POS_TS = ("yyyy-MM-dd HH:mm:ss",)
REES46_TS = ("yyyy-MM-dd HH:mm:ss 'UTC'", "yyyy-MM-dd HH:mm:ss")
ISO_DATE = ("yyyy-MM-dd",)
POS_DATE = ("dd/MM/yyyy",)

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")

_STRPTIME = {
    "%Y": "yyyy", "%y": "yy", "%m": "M", "%d": "d", "%H": "H", "%I": "h", "%M": "mm", "%S": "ss",
    "%f": "SSSSSS", "%z": "XX", "%Z": "z", "%b": "MMM", "%B": "MMMM", "%a": "EEE", "%A": "EEEE", "%p": "a",
    "%j": "D", "%%": "%",
}
_TOKEN = re.compile(r"%[a-zA-Z%]")


def strptime_to_spark(fmt: str) -> str:
    """Convert a Python ``strptime`` format (``%d/%m/%Y %H:%M``) to a Spark datetime pattern (``d/M/yyyy H:mm``).

    Day, month and hour become single letters, which parse one or two digits like ``strptime`` does.
    Literal letters are quoted.
    """
    if "%" not in fmt:
        return fmt  # already a Spark pattern
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(fmt):
        out.append(_quote_literal(fmt[pos:m.start()]))
        token = m.group(0)
        if token not in _STRPTIME:
            from lakehouse.errors import MappingError

            raise MappingError(f"date format {fmt!r}: {token} is not supported (use %Y %y %m %d %H %I %M %S %f %z %p)")
        out.append(_STRPTIME[token])
        pos = m.end()
    out.append(_quote_literal(fmt[pos:]))
    return "".join(out)


def _quote_literal(text: str) -> str:
    if not text:
        return ""
    if re.search(r"[A-Za-z']", text):
        return "'" + text.replace("'", "''") + "'"
    return text


def blank_to_null(col: Column) -> Column:
    """Trimmed string, null when empty."""
    trimmed = F.trim(col)
    return F.when(trimmed == "", F.lit(None).cast("string")).otherwise(trimmed)


def clean_text(col: Column) -> Column:
    """Trimmed string with inner whitespace collapsed to one space; null when empty."""
    return blank_to_null(F.regexp_replace(col, r"\s+", " "))


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_timestamp(col: Column, formats: Iterable[str]) -> Column:
    """The first of ``formats`` that parses the trimmed value (UTC), else null."""
    value = blank_to_null(col)
    parsed = [F.call_function("try_to_timestamp", value, F.lit(fmt)) for fmt in formats]
    return parsed[0] if len(parsed) == 1 else F.coalesce(*parsed)


def parse_date(col: Column, formats: Iterable[str]) -> Column:
    """The first of ``formats`` that parses the trimmed value as a date, else null."""
    return F.to_date(parse_timestamp(col, formats))


def parse_decimal(col: Column, *, precision: int = 12, scale: int = 2) -> Column:
    """A money amount as DECIMAL(precision, scale) (half-up rounding), null when not a number."""
    value = F.regexp_replace(blank_to_null(col), r"^[£$€]\s*", "")
    return value.try_cast(f"decimal({precision},{scale})")


def parse_int(col: Column) -> Column:
    """An integer count; "3" and "3.0" parse, "3.5" and text do not."""
    value = blank_to_null(col)
    as_dec = value.try_cast("decimal(20,6)")
    return F.when(as_dec == F.floor(as_dec), as_dec.try_cast("int"))


def parse_long(col: Column) -> Column:
    """A whole number as BIGINT, null when not one."""
    value = blank_to_null(col)
    return F.when(F.regexp_like(value, F.lit(r"^-?[0-9]+$")), value.try_cast("bigint"))


def parse_boolean(col: Column) -> Column:
    """true/t/yes/y/1 -> True, false/f/no/n/0 -> False (any case), anything else null."""
    value = F.lower(blank_to_null(col))
    return F.when(value.isin(*TRUE_WORDS), F.lit(True)).when(value.isin(*FALSE_WORDS), F.lit(False))


def unparsed_columns(pairs: Mapping[str, tuple[Column, Column]]) -> Column:
    """Comma-separated names of the columns whose raw value is non-empty but whose typed value is null; null if none.

    ``pairs`` maps an output column name to ``(raw, typed)`` column expressions.
    """
    flags = [F.when(blank_to_null(raw).isNotNull() & typed.isNull(), F.lit(name)) for name, (raw, typed) in pairs.items()]
    if not flags:
        return F.lit(None).cast("string")
    joined = F.concat_ws(",", *flags)
    return F.when(joined == "", F.lit(None).cast("string")).otherwise(joined)
