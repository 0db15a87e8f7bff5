"""Landing-file readers: bytes in, an all-string Arrow table out, with every record kept.

Pure functions (no I/O): the flow reads the bytes, these decode them. Each reader returns a :class:`Decoded` whose
table holds the file's data columns as strings (file order) plus ``_line_number``, ``_raw_line`` and
``_parse_error``. A record that cannot be parsed is never dropped: it becomes a row whose data columns are null,
with its raw text in ``_raw_line`` and the reason in ``_parse_error``.

``_line_number`` is the record number in the file, 1-based: for CSV the header is not counted and blank lines are
skipped (a quoted value spanning lines is one record); for JSON lines it is the physical line number; for Parquet
the row number.

Text encodings: UTF-8 (a byte-order mark is stripped). Bytes that are not valid UTF-8 are decoded as Windows-1252,
and if even that fails, as Latin-1 (which accepts every byte); the encoding used is reported, so the ledger shows
which files were decoded by the fallback. A mapping may name an explicit encoding instead, which is used strictly.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lakehouse.errors import SchemaError
from transforms.bronze.schemas import DECODE_FIELDS, clean_column_name, header_problems

_BOM = codecs.BOM_UTF8
_LINE_SPLIT = re.compile(rb"\r\n|\r|\n")

try:  # orjson (a Prefect dependency) checks a line ~5x faster; the standard library is the fallback
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads
_FALLBACK_ENCODINGS = ("cp1252", "latin-1")


@dataclass(frozen=True)
class Decoded:
    """One decoded landing file."""

    table: pa.Table  # data columns (strings, file order) + _line_number, _raw_line, _parse_error
    columns: tuple[str, ...]  # the file's data columns, as named in bronze
    encoding: str  # utf-8, utf-8-sig (BOM), cp1252 / latin-1 (fallback), binary (parquet)
    records: int  # every record, good or malformed
    malformed: int  # records kept with _raw_line and _parse_error
    note: str = ""  # e.g. "empty file"


def _utf8_error(body: bytes) -> UnicodeDecodeError | None:
    """Why ``body`` is not valid UTF-8, or None. Pure ASCII is checked without decoding a copy of the file (a 68 MB
    file: 8 ms, not 67)."""
    if body.isascii():
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    return None


def decode_text(data: bytes, *, encoding: str | None = None, path: str = "landing file") -> tuple[bytes, str]:
    """The file's text as UTF-8 bytes (BOM stripped) and the encoding it was read in."""
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    as_utf8 = "utf-8-sig" if body is not data else "utf-8"
    if encoding:
        name = codecs.lookup(encoding).name
        if name in ("utf-8", "utf-8-sig"):
            exc = _utf8_error(body)
            if exc is not None:
                raise SchemaError(path, f"not valid {encoding} text at byte {exc.start}: {exc.reason}") from None
            return body, as_utf8
        try:
            return data.decode(encoding).encode("utf-8"), name
        except UnicodeDecodeError as exc:
            raise SchemaError(path, f"not valid {encoding} text at byte {exc.start}: {exc.reason}") from None
    if _utf8_error(body) is None:
        return body, as_utf8
    # Line by line: lines that are valid UTF-8 stay as they are (a file mixing UTF-8 and Windows-1252 lines keeps its
    # UTF-8 text intact); the others are decoded by the first fallback that accepts them (latin-1 accepts every byte).
    out, used = [], _FALLBACK_ENCODINGS[0]
    for line in body.split(b"\n"):
        try:
            line.decode("utf-8")
            out.append(line)
            continue
        except UnicodeDecodeError:
            pass
        for fallback in _FALLBACK_ENCODINGS:
            try:
                out.append(line.decode(fallback).encode("utf-8"))
                used = fallback if fallback != _FALLBACK_ENCODINGS[0] else used
                break
            except UnicodeDecodeError:
                continue
    return b"\n".join(out), used


def _blank(data: bytes) -> bool:
    """Empty or only ASCII whitespace (what ``bytes.strip()`` removes), without copying the file as ``strip`` does:
    ``isspace`` stops at the first other byte (a 68 MB events file: 48 ms for ``strip``, nothing for this)."""
    return not data or data.isspace()


def _empty(columns: tuple[str, ...], encoding: str, note: str = "") -> Decoded:
    fields = [pa.field(c, pa.string()) for c in columns] + list(DECODE_FIELDS)
    return Decoded(pa.schema(fields).empty_table(), columns, encoding, 0, 0, note)


def _assemble(
    good_columns: list, good_numbers: np.ndarray, bad: list[tuple[int, str, str]], columns: tuple[str, ...]
) -> pa.Table:
    """Good rows (one array per column) and malformed records (number, raw text, reason) as one table, in order."""
    schema = pa.schema([pa.field(c, pa.string()) for c in columns] + list(DECODE_FIELDS))
    n = len(good_numbers)
    good_t = pa.Table.from_arrays(
        [*good_columns, pa.array(good_numbers, pa.int64()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string())],
        schema=schema,
    )
    if not bad:
        return good_t
    m = len(bad)
    bad_t = pa.Table.from_arrays(
        [*(pa.nulls(m, pa.string()) for _ in columns),
         pa.array([b[0] for b in bad], pa.int64()),
         pa.array([b[1] for b in bad], pa.string()),
         pa.array([b[2] for b in bad], pa.string())],
        schema=schema,
    )
    # Each malformed record goes between the good rows around it. Slices of both tables, put together in that
    # order, share their buffers: no column is copied (sorting the two tables by line number copied every column).
    numbers = bad_t["_line_number"].to_numpy()
    order = np.argsort(numbers, kind="stable")
    at = np.searchsorted(good_numbers, numbers[order], side="right")  # a tie: the good row first, as a stable sort
    pieces, start = [], 0
    for position, index in zip(at.tolist(), order.tolist()):
        pieces.append(good_t.slice(start, position - start))
        pieces.append(bad_t.slice(index, 1))
        start = position
    pieces.append(good_t.slice(start))
    return pa.concat_tables([p for p in pieces if p.num_rows])


def _number_records(n_good: int, bad_numbers: list[int | None]) -> tuple[np.ndarray, list[int]]:
    """Record numbers of good rows and of malformed ones, given the malformed records' positions."""
    total = n_good + len(bad_numbers)
    if bad_numbers and all(b is not None for b in bad_numbers):
        bad_sorted = sorted(bad_numbers)  # type: ignore[arg-type]
        if len(set(bad_sorted)) == len(bad_sorted) and bad_sorted[0] >= 1 and bad_sorted[-1] <= total:
            return np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), np.array(bad_sorted, np.int64)), bad_numbers  # type: ignore[return-value]
    if not bad_numbers:
        return np.arange(1, total + 1, dtype=np.int64), []
    # Positions unknown: number good rows first, malformed after them (still unique per file).
    return np.arange(1, n_good + 1, dtype=np.int64), list(range(n_good + 1, total + 1))


def read_csv(
    data: bytes,
    *,
    path: str = "landing file",
    delimiter: str = ",",
    quote_char: str = '"',
    escape_char: str | None = None,
    encoding: str | None = None,
) -> Decoded:
    """Decode a CSV file with a header row; rows with the wrong number of fields are kept as malformed records.

    Unquoted empty fields are null, quoted empty fields (``""``) are empty strings. CR, LF and CRLF line endings and
    quoted values spanning lines are accepted.
    """
    utf8, used = decode_text(data, encoding=encoding, path=path)
    if _blank(utf8):
        return _empty((), used, "empty file")
    bad: list[tuple[int | None, str, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    # The header is read as a data row (all columns forced to string), so pyarrow's record numbering includes it.
    max_cols = 1 + utf8.split(b"\n", 1)[0].split(b"\r", 1)[0].count(delimiter.encode())
    types = {f"f{i}": pa.string() for i in range(max(2 * max_cols + 16, 256))}
    try:
        raw = pacsv.read_csv(
            pa.BufferReader(utf8),
            read_options=pacsv.ReadOptions(use_threads=False, autogenerate_column_names=True, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char=quote_char or False,
                escape_char=escape_char or False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise SchemaError(path, f"unreadable CSV: {exc}") from None
    header = raw.slice(0, 1).to_pylist()[0] if raw.num_rows else {}
    columns = tuple(clean_column_name(header.get(f"f{i}") or "", i) for i in range(raw.num_columns))
    problems = header_problems(list(columns))
    if problems:
        raise SchemaError(path, "; ".join(problems))
    good = [c if c.type == pa.string() else c.cast(pa.string()) for c in raw.slice(1).columns]
    # pyarrow numbers records from 1 with the header as record 1; bronze numbers data records from 1.
    good_numbers, bad_numbers = _number_records(raw.num_rows - 1, [b[0] - 1 if b[0] is not None else None for b in bad])
    malformed = [(num, text, reason) for num, (_, text, reason) in zip(bad_numbers, bad)]
    table = _assemble(good, good_numbers, malformed, columns)
    n_bad = len(malformed)
    if quote_char and not escape_char and table.num_rows and utf8.count(quote_char.encode()) % 2:
        table, flagged = _flag_unterminated_last_record(table, utf8, quote_char.encode(), columns)
        n_bad += flagged
    note = "header only" if table.num_rows == 0 else ""
    return Decoded(table, columns, used, table.num_rows, n_bad, note)


def _flag_unterminated_last_record(
    table: pa.Table, utf8: bytes, quote: bytes, columns: tuple[str, ...]
) -> tuple[pa.Table, int]:
    """Mark the last record malformed when its quoted field never closes (pyarrow accepts it up to end of file).

    The quotes pair up (an escaped ``""`` is a close and a re-open), so with an odd count the last quote is unmatched;
    the record starts after the last line break that lies outside quotes before it.
    """
    last = table.num_rows - 1
    if table["_parse_error"][last].is_valid:
        return table, 0
    q = np.flatnonzero(np.frombuffer(utf8, dtype=np.uint8) == quote[0])
    start = 0
    for k in range(len(q) - 1, -1, -2):  # outside-quote regions: (q[k-1]+1 .. q[k]), last one first
        lo = int(q[k - 1]) + 1 if k >= 1 else 0
        hi = int(q[k])
        pos = max(utf8.rfind(b"\n", lo, hi), utf8.rfind(b"\r", lo, hi))
        if pos >= 0:
            start = pos + 1
            break
    raw = utf8[start:].rstrip(b"\r\n").decode("utf-8")
    number = table["_line_number"][last].as_py()
    empty = [pa.array([], pa.string()) for _ in columns]
    row = _assemble(empty, np.array([], np.int64), [(number, raw, "unterminated quoted field at end of file")], columns)
    return pa.concat_tables([table.slice(0, last), row]), 1


def _json_value(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=float)
    return str(value)  # int, or Decimal (keeps the number's digits)


def _split_lines(utf8: bytes) -> list[bytes]:
    """Physical lines (LF, CRLF or CR endings); a JSON string cannot hold a raw line break, so this is exact."""
    return _LINE_SPLIT.split(utf8) if b"\r" in utf8 else utf8.split(b"\n")


def _json_error(line: bytes) -> str:
    """Why a line is not a JSON object, in the standard library's words, or in orjson's for what only the standard
    library accepts (NaN, Infinity, a number too big for a double, a lone surrogate): those are not JSON either."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if type(obj) is dict:
        try:
            _fast_loads(line)
        except ValueError as exc:
            return f"invalid JSON: {exc}"
    return f"not a JSON object ({type(obj).__name__})"


def _is_json_object(line: bytes) -> bool:
    """Whether a line is one JSON object (checked by orjson, the strict parser)."""
    try:
        return type(_fast_loads(line)) is dict
    except ValueError:
        return False


def _malformed(number: int, line: bytes) -> tuple[int, str, str]:
    """A malformed line as kept in bronze: (number, text, reason)."""
    return number, line.decode("utf-8"), _json_error(line)


def _triage_json_lines(lines: list[bytes]) -> tuple[list[bytes], list[int], list[tuple[int, str, str]]]:
    """Good lines (JSON objects) with their line numbers, and malformed lines (number, text, reason)."""
    good: list[bytes] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        if not _is_json_object(line):
            bad.append(_malformed(number, line))
            continue
        good.append(line)
        numbers.append(number)
    return good, numbers, bad


def _bracketed_lines(
    utf8: bytes, string_columns: tuple[str, ...]
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str, str]]] | None:
    """:func:`_triage_json_lines` and :func:`_json_columns_arrow` in the common case, without checking each line.

    ``utf8`` is the whole file with LF line endings. A line that starts with ``{`` and ends with ``}`` may be one
    JSON object: all of them go to pyarrow in one call, which refuses the batch if any of them is not valid JSON.
    Only the other lines are checked one at a time (a blank line is skipped, any other one is malformed). The lines
    are found with numpy over the file's bytes, and pyarrow reads the file's own buffer when no line is malformed
    (blank lines are whitespace to it), so the file is never split into a Python object per line (a 68 MB events
    file: 0.3 s of CPU less than splitting it and joining the lines again). None (run the line-by-line triage) when
    that could differ from checking every line: pyarrow refuses the batch (a malformed bracketed line, or a value
    that is not a string), reads another number of rows (two objects on one line), or an unbracketed line is an
    object after all (whitespace around it).
    """
    raw = np.frombuffer(utf8, np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(raw)]))
    filled = ends > starts
    last = len(raw) - 1
    bracketed = (filled & (raw[np.minimum(starts, last)] == ord("{"))
                 & (raw[np.maximum(ends - 1, 0)] == ord("}")))
    numbers = np.flatnonzero(bracketed) + 1
    if not len(numbers):
        return None
    bad: list[tuple[int, str, str]] = []
    view, kept, at = memoryview(utf8), [], 0  # the file's bytes around the malformed lines (each with its break)
    for index in np.flatnonzero(filled & ~bracketed).tolist():
        start, end = int(starts[index]), int(ends[index])
        line = utf8[start:end]
        if line.isspace():
            continue
        if _is_json_object(line):
            return None
        bad.append(_malformed(index + 1, line))
        kept.append(view[at:start])
        at = end + 1
    buffer = pa.py_buffer(b"".join([*kept, view[at:]]) if bad else utf8)
    table = _json_columns_arrow(buffer, len(numbers), string_columns)
    if table is None:
        return None
    return table, numbers, bad


def _json_columns_arrow(buffer: pa.Buffer, rows: int, string_columns: tuple[str, ...]) -> pa.Table | None:
    """``rows`` JSON objects (one per line, blank lines allowed) read by pyarrow, every value a string (expected
    columns forced to string); None when pyarrow reads another number of rows, or some value is not a string (pyarrow
    then fails, or infers another type for an extra key)."""
    try:
        table = pajson.read_json(
            pa.BufferReader(buffer),
            read_options=pajson.ReadOptions(use_threads=False, block_size=16 << 20),
            parse_options=pajson.ParseOptions(
                explicit_schema=pa.schema([pa.field(c, pa.string()) for c in string_columns]),
                unexpected_field_behavior="infer",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if table.num_rows != rows or any(t not in (pa.string(), pa.null()) for t in table.schema.types):
        return None  # e.g. an extra key inferred as a timestamp: read it in Python to keep its text
    return table


def _json_columns_python(good: list[bytes]) -> pa.Table:
    """Good lines read in Python: numbers keep their text, booleans become true/false, nested values JSON text."""
    values: dict[str, list[str | None]] = {}
    for n, line in enumerate(good):
        obj = json.loads(line, parse_float=Decimal)
        for key, value in obj.items():
            col = values.get(key)
            if col is None:
                col = values[key] = [None] * n
            col.append(_json_value(value))
        for col in values.values():
            if len(col) == n:
                col.append(None)
    if not values:
        return pa.table({"_rows": pa.nulls(len(good), pa.string())}).drop(["_rows"])
    return pa.Table.from_arrays([pa.array(v, pa.string()) for v in values.values()], names=list(values))


def read_jsonl(
    data: bytes, *, path: str = "landing file", encoding: str | None = None, string_columns: tuple[str, ...] = ()
) -> Decoded:
    """Decode a JSON-lines file (one object per line); a line that is not a JSON object is kept as malformed.

    Numbers keep their original text, booleans become ``true``/``false``, nested values become JSON text.
    ``string_columns`` are the columns the file is expected to have; one that is null (or absent) on every line is
    treated as absent (JSON cannot tell the two apart once read column-wise).
    """
    utf8, used = decode_text(data, encoding=encoding, path=path)
    if _blank(utf8):
        return _empty((), used, "empty file")
    read = _bracketed_lines(utf8, string_columns) if b"\r" not in utf8 else None
    if read is not None:
        table, numbers, bad = read
    else:
        good, numbers, bad = _triage_json_lines(_split_lines(utf8))
        table = _json_columns_arrow(pa.py_buffer(b"\n".join(good)), len(good), string_columns) if good else None
        if table is None:
            table = _json_columns_python(good)
    expected = set(string_columns)
    keep = [c for c in table.column_names if c not in expected or table[c].null_count < table.num_rows]
    table = table.select(keep)
    columns = tuple(clean_column_name(c, i) for i, c in enumerate(table.column_names))
    problems = header_problems(list(columns))
    if problems:
        raise SchemaError(path, "; ".join(problems))
    arrays = [c if c.type == pa.string() else c.cast(pa.string()) for c in table.columns]
    out = _assemble(arrays, np.array(numbers, np.int64), bad, columns)
    return Decoded(out, columns, used, out.num_rows, len(bad))


def _to_string(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    if column.type == pa.string():
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_json_value(v) for v in column.to_pylist()], pa.string())


def read_parquet(data: bytes, *, path: str = "landing file") -> Decoded:
    """Decode a Parquet file; every column is converted to strings (nested values as JSON text)."""
    try:
        raw = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise SchemaError(path, f"unreadable Parquet: {exc}") from None
    columns = tuple(clean_column_name(c, i) for i, c in enumerate(raw.column_names))
    problems = header_problems(list(columns))
    if problems:
        raise SchemaError(path, "; ".join(problems))
    good = [_to_string(c) for c in raw.columns]
    table = _assemble(good, np.arange(1, raw.num_rows + 1, dtype=np.int64), [], columns)
    return Decoded(table, columns, "binary", table.num_rows, 0, "" if table.num_rows else "no rows")


def read_landing_file(
    data: bytes, *, file_format: str, path: str = "landing file", options: dict[str, str] | None = None,
    string_columns: tuple[str, ...] = (),
) -> Decoded:
    """Decode one landing file of ``file_format`` (csv | jsonl | parquet) with reader ``options``."""
    opts = dict(options or {})
    if file_format == "csv":
        return read_csv(
            data,
            path=path,
            delimiter=opts.get("delimiter", ","),
            quote_char=opts.get("quote_char", '"'),
            escape_char=opts.get("escape_char"),
            encoding=opts.get("encoding"),
        )
    if file_format == "jsonl":
        return read_jsonl(data, path=path, encoding=opts.get("encoding"), string_columns=string_columns)
    if file_format == "parquet":
        return read_parquet(data, path=path)
    raise SchemaError(path, f"unknown file format {file_format!r} (expected csv, jsonl or parquet)")
