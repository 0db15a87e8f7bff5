"""Crash points: named places where a test can kill the process (SIGKILL) to prove the pipeline survives it.

The flows call :func:`crash_point` at meaningful moments (after staging, after a bronze append before its ledger
rows, after a silver MERGE, between gold table writes, before and after the manifest is written, after every Delta
commit). It does nothing unless ``LAKEHOUSE_CRASH_AT`` names that point:

- ``LAKEHOUSE_CRASH_AT=ingest.bronze_appended`` kills the process the first time the point is reached;
- ``LAKEHOUSE_CRASH_AT=ingest.bronze_appended:3`` kills it the third time (counted per process);
- several points may be given, comma-separated; the first one reached (at its count) fires.

The kill is ``SIGKILL`` to the process itself: no ``finally`` block, ``atexit`` handler or buffered write runs, and
the embedded Sail server (a thread of the same process) dies with it, exactly like a power cut or an OOM kill.
Set ``LAKEHOUSE_CRASH_LOG=<file>`` to append every point reached (``name count``) to a file: the crash tests use it
to list the points a run passes through.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV_CRASH_AT = "LAKEHOUSE_CRASH_AT"
ENV_CRASH_LOG = "LAKEHOUSE_CRASH_LOG"

#: Every crash point the code base calls (the crash tests check each one is reachable and survivable).
CRASH_POINTS: dict[str, str] = {
    "ingest.staged": "a bronze table's new files are decoded into staging Parquet; nothing written to Delta yet",
    "ingest.bronze_appended": "rows appended to a bronze table, its file-ledger rows not yet written",
    "ingest.ledger_written": "a day's bronze rows and file-ledger rows written (one ledger commit after the day's "
                             "last table), its pipeline_runs rows not yet written",
    "ingest.tables_done": "every bronze table of a day loaded, that day's pipeline_runs rows not yet written",
    "refine.quarantined": "a silver table's quarantine rows MERGEd, the silver MERGE not yet done",
    "refine.silver_merged": "a silver table MERGEd, accounting and table-scope rules not yet run",
    "refine.lines_refreshed": "earlier order lines took their order's new header, order totals not yet refreshed",
    "refine.tables_done": "every silver table of the call refined, pipeline_runs rows not yet written",
    "publish.identity_resolved": "identity step done; of the gold tables, only the ones that need neither identity "
                                 "nor another gold table rebuilt yet",
    "publish.table_written": "one gold table overwritten (or MERGEd), the next ones not yet",
    "publish.gated": "every gold table written and gated, no manifest written yet",
    "publish.manifest_written": "the new manifest is published, pipeline_runs rows not yet written",
    "manifest.temp_written": "the manifest's temporary file is written, not yet linked to its final name",
    "manifest.linked": "the manifest has its final name, the temporary file is not yet removed",
    "delta.committed": "a Delta commit (append, overwrite, MERGE or DELETE) just finished",
}

_counts: dict[str, int] = {}
_lock = threading.Lock()


def parse_crash_at(value: str | None) -> dict[str, int]:
    """``name[:nth],...`` -> {name: nth}; raises ValueError on a malformed entry or an unknown point."""
    out: dict[str, int] = {}
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, nth = part.partition(":")
        name = name.strip()
        if name not in CRASH_POINTS:
            raise ValueError(f"{ENV_CRASH_AT}: unknown crash point {name!r} (known: {', '.join(sorted(CRASH_POINTS))})")
        count = int(nth) if nth.strip() else 1
        if count < 1:
            raise ValueError(f"{ENV_CRASH_AT}: the count of {name!r} must be >= 1, got {count}")
        out[name] = count
    return out


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``LAKEHOUSE_CRASH_AT`` names ``name`` (at this occurrence); else no-op."""
    wanted = os.environ.get(ENV_CRASH_AT)
    log = os.environ.get(ENV_CRASH_LOG)
    if not wanted and not log:
        return
    with _lock:
        count = _counts[name] = _counts.get(name, 0) + 1
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{name} {count}\n")
    if wanted and parse_crash_at(wanted).get(name) == count:
        sys.stdout.flush()
        sys.stderr.write(f"crash point {name}:{count} reached: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def reset_counts() -> None:
    """Forget how often each point was reached (for in-process tests)."""
    with _lock:
        _counts.clear()
