"""Landing writer: serializes string columns as CSV, JSON lines or Parquet, injects the planned defects, splits big
tables into files of at most :data:`MAX_ROWS_PER_FILE` records, and logs every bad record it wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from generator import defects as D
from lakehouse.entities import entity as entity_schema
from lakehouse.storage import Storage

MAX_ROWS_PER_FILE = 250_000
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
_NEEDS_QUOTES = r'[,"\r\n]'


@dataclass(frozen=True, slots=True)
class BadRecord:
    """One injected defect: where it is (file relative to the landing root, 1-based record number) and what."""

    source: str
    entity: str
    ingest_date: str
    file: str
    line_number: int  # 1-based record number in the file, header excluded (bronze ``_line_number``); 0 = whole file
    kind: str
    column: str
    detail: str
    business_key: str


BAD_RECORD_COLUMNS = ("source", "entity", "ingest_date", "file", "line_number", "kind", "column", "detail", "business_key")


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(values: list[str | None]) -> str:
    """One CSV record with minimal quoting (the same rule the vectorized writer uses)."""
    return ",".join(_csv_field(v) for v in values)


def _escape_json(arr: pa.Array) -> pa.Array:
    if not pc.any(pc.match_substring_regex(arr, r'["\\\x00-\x1f]')).as_py():
        return arr
    out = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
    for ch, rep in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        out = pc.replace_substring(out, ch, rep)
    return out


def _csv_lines(columns: dict[str, pa.Array]) -> pa.Array:
    """One CSV line per row, each ending in a newline (minimal quoting, null = empty field)."""
    args: list = []
    for i, arr in enumerate(columns.values()):
        if arr.null_count:
            arr = pc.fill_null(arr, "")
        if pc.any(pc.match_substring_regex(arr, _NEEDS_QUOTES)).as_py():
            needs = pc.match_substring_regex(arr, _NEEDS_QUOTES)
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
            arr = pc.if_else(needs, quoted, arr)
        if i:
            args.append(",")
        args.append(arr)
    args.append("\n")
    return pc.binary_join_element_wise(*args, "")


def _json_lines(columns: dict[str, pa.Array]) -> pa.Array:
    """One JSON object per row, each ending in a newline; every value a JSON string, or null."""
    args: list = []
    literal = "{"
    for i, (name, arr) in enumerate(columns.items()):
        key = ("," if i else "") + f'"{name}":'
        esc = _escape_json(arr)
        if arr.null_count == 0:
            args += [literal + key + '"', esc]
            literal = '"'
        else:
            quoted = pc.fill_null(pc.binary_join_element_wise('"', esc, '"', ""), "null")
            args += [literal + key, quoted]
            literal = ""
    args.append(literal + "}\n")
    return pc.binary_join_element_wise(*args, "")


def _joined_bytes(lines: pa.Array, newline_at_end: bool = True) -> bytes:
    """The concatenation of a string array's values (lines that already end in a newline) as bytes."""
    if len(lines) == 0:
        return b""
    if lines.offset:
        lines = pa.concat_arrays([lines])
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    out = memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]].tobytes()
    return out if newline_at_end else out[:-1]


class LandingWriter:
    """Writes landing files for one generation run and keeps the counts and the bad-record log."""

    def __init__(self, storage: Storage, formats: dict[str, str], *, seed: int, bad_share: float) -> None:
        self.storage = storage
        self.formats = formats
        self.seed = seed
        self.bad_share = bad_share
        self.rows: Counter[tuple[str, str]] = Counter()
        self.bad_by_kind: Counter[str] = Counter()
        self.bad_by_entity: Counter[tuple[str, str, str]] = Counter()
        self.eligible_rows = 0
        self.files: list[str] = []
        self.bad_records: list[BadRecord] = []
        self._file_no: defaultdict[tuple[str, str, dt.date], int] = defaultdict(int)

    def clear_day(self, sources: dict[str, str], day: dt.date) -> None:
        """Remove the landing folders of a day this run writes (a rerun replaces the day, no stale files stay)."""
        from lakehouse.entities import ENTITIES

        for source, kind in sources.items():
            for spec in ENTITIES:
                if spec.kind == kind:
                    self.storage.delete_dir(self.storage.landing_dir(source, spec.entity, day))

    def write(self, source: str, entity: str, day: dt.date, columns: dict[str, pa.Array], *, kind: str | None = None,
              inject: bool = True) -> None:
        """Write one table of a day (split into files of at most MAX_ROWS_PER_FILE records), with defects."""
        kind = kind or source
        n = len(next(iter(columns.values()))) if columns else 0
        for start in range(0, n, MAX_ROWS_PER_FILE):
            size = min(MAX_ROWS_PER_FILE, n - start)
            piece = {c: a.slice(start, size) for c, a in columns.items()}
            self._write_piece(source, kind, entity, day, piece, inject)

    def _write_piece(self, source: str, kind: str, entity: str, day: dt.date, cols: dict[str, pa.Array],
                     inject: bool) -> None:
        file_format = self.formats[source]
        key = (source, entity, day)
        self._file_no[key] += 1
        file_no = self._file_no[key]
        name = f"{entity}-{file_no:04d}.{EXTENSIONS[file_format]}"
        rel = f"{source}/{entity}/ingest_date={day.isoformat()}/{name}"
        uri = f"{self.storage.landing_dir(source, entity, day)}/{name}"
        n = len(next(iter(cols.values())))
        schema = entity_schema(kind, entity)
        words = [self.seed, 0xBAD, day.toordinal(), zlib.crc32(f"{source}/{entity}".encode()), file_no]
        rng = np.random.default_rng(words)
        r = random.Random(int(rng.integers(2**63)))
        kinds = D.eligible_kinds(kind, entity, file_format) if inject else ()
        rows, kind_idx = D.plan(rng, n, self.bad_share, kinds)
        if kinds:
            self.eligible_rows += n
        log: list[tuple[int, str, str, str, int]] = []  # (row, kind, column, detail, copies-of-row or -1)

        def key_of(row: int) -> str:
            return "|".join(str(cols[c][row].as_py() or "") for c in schema.business_key if c in cols)

        # 1. value defects: replace single values, column by column
        value_defects = D.VALUE_DEFECTS.get((kind, entity), {})
        changes: defaultdict[str, dict[int, str]] = defaultdict(dict)
        malformed_rows: list[int] = []
        duplicate_rows: list[int] = []
        for row, ki in zip(rows.tolist(), kind_idx.tolist()):
            k = kinds[ki]
            if k == D.MALFORMED:
                malformed_rows.append(row)
            elif k == D.DUPLICATE:
                duplicate_rows.append(row)
            else:
                vd = r.choice(value_defects[k])
                state = r.getrandbits(64)
                old = cols[vd.column][row].as_py()
                new = vd.make(old, random.Random(state), day)
                changes[vd.column][row] = new
                detail = f"{vd.column}: {old!r} -> {new!r}"
                for other in vd.also:
                    if other in cols:
                        changes[other][row] = vd.make(cols[other][row].as_py(), random.Random(state), day)
                        detail += f"; {other} moved the same way"
                log.append((row, k, vd.column, detail, -1))
        for column, by_row in changes.items():
            mask = np.zeros(n, dtype=bool)
            idx = np.array(sorted(by_row), dtype=np.int64)
            mask[idx] = True
            cols[column] = pc.replace_with_mask(cols[column], pa.array(mask), pa.array([by_row[i] for i in idx], pa.string()))

        # 2. duplicates: an exact copy of a record placed somewhere after it in the same file
        order_keys = np.arange(n, dtype=np.float64) * 2
        source_rows = np.arange(n, dtype=np.int64)
        if duplicate_rows:
            dup = np.array(duplicate_rows, dtype=np.int64)
            later = np.array([r.randint(i, max(i, n - 2)) for i in duplicate_rows], dtype=np.float64)
            order_keys = np.concatenate([order_keys, later * 2 + 1])
            source_rows = np.concatenate([source_rows, dup])
        perm = np.argsort(order_keys, kind="stable")
        order = source_rows[perm]
        is_copy = perm >= n  # an original always sorts before its copies
        position_of_original = np.empty(n, dtype=np.int64)
        position_of_original[order[~is_copy]] = np.flatnonzero(~is_copy)
        for pos in np.flatnonzero(is_copy).tolist():
            src = int(order[pos])
            log.append((src, D.DUPLICATE, "", f"copy of record {position_of_original[src] + 1}", pos))

        # 3. serialize, then malformed lines replace records in place
        truncated_last = False
        if file_format == "parquet":
            table = pa.table({c: a.take(pa.array(order)) for c, a in cols.items()})
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="snappy")
            payload = buf.getvalue()
        else:
            lines = _csv_lines(cols) if file_format == "csv" else _json_lines(cols)
            lines = lines.take(pa.array(order))
            if malformed_rows:
                texts: dict[int, str] = {}
                last_src = int(order[-1])
                if (file_format == "csv" and r.random() < 0.3 and last_src not in rows.tolist()
                        and not is_copy[-1]):
                    # An export cut off mid-record: the last line ends inside an open quote.
                    malformed_rows = malformed_rows[1:] + [last_src]
                    truncated_last = True
                for row in malformed_rows:
                    pos = int(position_of_original[row])
                    values = [cols[c][row].as_py() for c in cols]
                    if truncated_last and row == malformed_rows[-1]:
                        cut = r.randint(1, len(values) - 2)
                        partial = values[cut] or "x"
                        text = csv_line(values[:cut]) + ',"' + partial[: max(1, len(partial) // 2)]
                        detail = "unbalanced quote (truncated last line)"
                    elif file_format == "csv":
                        text, detail = self._bad_csv(r, values)
                    else:
                        full = lines[pos].as_py().rstrip("\n")
                        text = full[: max(2, len(full) // 2)]
                        detail = "truncated JSON object"
                    texts[pos] = text + "\n"
                    log.append((row, D.MALFORMED, "", detail, pos))
                mask = np.zeros(len(order), dtype=bool)
                positions = sorted(texts)
                mask[positions] = True
                lines = pc.replace_with_mask(lines, pa.array(mask), pa.array([texts[p] for p in positions], pa.string()))
            body = _joined_bytes(lines, newline_at_end=not truncated_last)
            if file_format == "csv":
                payload = (csv_line(list(cols)) + "\n").encode() + body
            else:
                payload = body
        self.storage.write_bytes(uri, payload)
        self.files.append(uri)
        self.rows[(source, entity)] += len(order)

        for row, k, column, detail, pos in log:
            position = int(position_of_original[row]) if pos < 0 else pos
            self._log(BadRecord(source, entity, day.isoformat(), rel, position + 1, k, column, detail, key_of(row)))
        extra = [c for c in cols if c not in schema.columns]
        if extra:
            self._log(BadRecord(source, entity, day.isoformat(), rel, 0, D.SCHEMA_DRIFT, ",".join(extra),
                                f"extra column(s): {', '.join(extra)}", ""))

    def _log(self, rec: BadRecord) -> None:
        self.bad_records.append(rec)
        self.bad_by_kind[rec.kind] += 1
        self.bad_by_entity[(rec.source, rec.entity, rec.kind)] += 1

    @staticmethod
    def _bad_csv(r: random.Random, values: list[str | None]) -> tuple[str, str]:
        x = r.random()
        if x < 0.4:
            cut = r.randint(1, len(values) - 1)
            return csv_line(values[:cut]), f"{cut} of {len(values)} fields"
        if x < 0.7:
            return csv_line(values) + ",", f"{len(values) + 1} fields (trailing delimiter)"
        # An unquoted value with a comma inside (an address, a name), as a hand-made export would write it.
        i = r.randrange(len(values))
        v = values[i] or ""
        broken = v.replace(" ", ", ", 1) if " " in v else v + ",x"
        fields = [_csv_field(x) for x in values]
        fields[i] = broken.replace('"', "")
        line = ",".join(fields)
        if len(next(csv.reader([line]))) == len(values):
            line += ","
        return line, f"unquoted comma in field {i + 1}"

    def bad_records_table(self) -> pa.Table:
        """The bad-record log as a table (sorted by file and line)."""
        recs = sorted(self.bad_records, key=lambda b: (b.file, b.line_number, b.kind))
        return pa.table({c: pa.array([str(getattr(b, c)) for b in recs], pa.string()) for c in BAD_RECORD_COLUMNS})


def csv_bytes(table: pa.Table) -> bytes:
    """A whole table as CSV (header, minimal quoting, ``\\n`` line ends); used for the truth files."""
    cols = {name: pc.cast(table.column(name).combine_chunks(), pa.string()) for name in table.column_names}
    header = (csv_line(list(cols)) + "\n").encode()
    if table.num_rows == 0:
        return header
    return header + _joined_bytes(_csv_lines(cols))
