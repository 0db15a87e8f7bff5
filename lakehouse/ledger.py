"""The bronze file ledger (``system.file_ledger``): every landing file bronze has seen, loaded or rejected.

Keyed by (file_path, fingerprint): a file already *loaded* with the same fingerprint (size and modification time) is
never loaded again. A *rejected* file is tried again on the next run (so fixing a mapping or re-exporting the file
is enough). Ledger rows are appended after the bronze append of their batch; see :mod:`flows.ingest` for how a crash
between the two is repaired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import astuple, dataclass, field, fields

from lakehouse import delta
from lakehouse.catalog import FILE_LEDGER
from lakehouse.settings import Settings

LEDGER_SCHEMA = (
    "file_path string, fingerprint string, source string, entity string, table_name string, ingest_date date, "
    "file_format string, encoding string, size_bytes long, rows long, malformed_rows long, extra_columns string, "
    "status string, reason string, run_id string, loaded_at timestamp"
)

LOADED = "loaded"
REJECTED = "rejected"


@dataclass(frozen=True)
class LedgerEntry:
    """One landing file as bronze saw it in one run."""

    file_path: str
    fingerprint: str
    source: str
    entity: str
    table_name: str
    ingest_date: dt.date
    file_format: str
    encoding: str | None
    size_bytes: int
    rows: int
    malformed_rows: int
    extra_columns: str  # comma-separated drift / unmapped columns ("" when none)
    status: str  # loaded | rejected
    reason: str  # why rejected; notes for loaded files (empty file, encoding fallback)
    run_id: str
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


assert [f.name for f in fields(LedgerEntry)] == [c.split()[0] for c in LEDGER_SCHEMA.split(", ")]


def loaded_fingerprints(spark, settings: Settings, *, ingest_date: dt.date | None = None) -> set[tuple[str, str]]:
    """(file_path, fingerprint) of every file loaded into bronze (optionally only from one day's folders)."""
    if not delta.table_exists(FILE_LEDGER, settings):
        return set()
    df = delta.read_table(spark, FILE_LEDGER, settings).where(f"status = '{LOADED}'")
    if ingest_date is not None:
        df = df.where(f"ingest_date = DATE'{ingest_date.isoformat()}'")
    return {(r[0], r[1]) for r in df.select("file_path", "fingerprint").collect()}


def record_files(spark, settings: Settings, entries: list[LedgerEntry]) -> None:
    """Append ledger rows (one Delta commit)."""
    if not entries:
        return
    rows = [astuple(e) for e in entries]  # loaded_at is timezone-aware, so Spark stores the right instant
    delta.append(spark.createDataFrame(rows, LEDGER_SCHEMA), FILE_LEDGER, settings)


def read_ledger(spark, settings: Settings):
    """The whole ledger as a DataFrame (empty with the ledger schema when nothing was ingested yet)."""
    return delta.read_or_empty(spark, FILE_LEDGER, settings, LEDGER_SCHEMA)
