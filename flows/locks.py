"""Day locks: two pipeline runs for the same day never run at once, with or without a Prefect server.

The lock is a row in the Delta table ``system.pipeline_locks`` (lock_key, owner, host, pid, flow_run_id, acquired_at,
expires_at). Every change is a compare-and-swap on the Delta log, done with delta-rs: read the table at version ``v``,
write the new state as version ``v + 1`` with no commit retries. The log's put-if-absent commit lets exactly one of
two racing writers win; the loser re-reads and sees the winner's row. (Spark writes cannot do this: a Sail append
is rebased onto a newer version silently.) A lock expires after its TTL, and a lock whose owner process is gone
(same host, dead PID) is taken over at once, so a crashed run never blocks the rerun that completes it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from lakehouse.catalog import TableSpec
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

PIPELINE_LOCKS = TableSpec(
    "system", "pipeline_locks", keys=("lock_key",),
    description="Locks held by running pipelines: one row per locked day, with owner and expiry.",
)

LOCK_SCHEMA = pa.schema(
    [
        ("lock_key", pa.string()),
        ("owner", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("flow_run_id", pa.string()),
        ("acquired_at", pa.timestamp("us", tz="UTC")),
        ("expires_at", pa.timestamp("us", tz="UTC")),
    ]
)

DEFAULT_TTL_S = 6 * 3600.0
_VACUUM_EVERY = 50  # versions between clean-ups of the files older states left behind


class DayLocked(LakehouseError):
    """Another run holds the lock of this day."""


def day_key(day: dt.date) -> str:
    """The lock key of a pipeline day."""
    return f"day={day.isoformat()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_storage_options(settings: Settings) -> dict[str, str] | None:
    """delta-rs options for the lock table: on S3, conditional PUT (If-None-Match) instead of an unsafe rename."""
    opts = dict(settings.delta_storage_options())
    if not opts:
        return None
    if str(settings.warehouse_root).startswith("s3://"):
        opts.pop("AWS_S3_ALLOW_UNSAFE_RENAME", None)
        opts["conditional_put"] = "etag"
    return opts


@dataclass(frozen=True)
class LockRow:
    """One held lock."""

    lock_key: str
    owner: str
    host: str
    pid: int
    flow_run_id: str | None
    acquired_at: dt.datetime
    expires_at: dt.datetime

    def stale(self, now: dt.datetime | None = None) -> bool:
        """Expired, or owned by a process of this host that no longer exists."""
        now = now or _now()
        if self.expires_at <= now:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

    def describe(self) -> str:
        run = f", flow run {self.flow_run_id}" if self.flow_run_id else ""
        return (
            f"{self.lock_key} is held by {self.owner} (pid {self.pid} on {self.host}{run}) since "
            f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, until {self.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )


class LockTable:
    """Compare-and-swap access to ``system.pipeline_locks``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = PIPELINE_LOCKS.location(settings)
        self.options = lock_storage_options(settings)

    def _load(self):
        """The table at its latest version, created empty on first use."""
        from deltalake import DeltaTable, write_deltalake
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            pass
        if not self.uri.startswith("s3://"):
            os.makedirs(self.uri, exist_ok=True)
        try:
            write_deltalake(self.uri, LOCK_SCHEMA.empty_table(), mode="error", storage_options=self.options,
                            name="pipeline_locks", description=PIPELINE_LOCKS.description)
        except Exception:  # noqa: BLE001 - another process created it first; read theirs
            pass
        return DeltaTable(self.uri, storage_options=self.options)

    def snapshot(self):
        """(delta table at version v, rows at v)."""
        table = self._load()
        rows = [LockRow(**r) for r in table.to_pyarrow_table().cast(LOCK_SCHEMA).to_pylist()]
        return table, rows

    def rows(self) -> list[LockRow]:
        """Every lock row at the latest version."""
        return self.snapshot()[1]

    def swap(self, table, rows: list[LockRow]) -> bool:
        """Write ``rows`` as the next version after ``table``'s; False when another writer got there first."""
        from deltalake import CommitProperties, write_deltalake
        from deltalake.exceptions import CommitFailedError

        data = pa.Table.from_pylist([r.__dict__ for r in rows], schema=LOCK_SCHEMA)
        version = table.version() + 1
        try:
            write_deltalake(table, data, mode="overwrite", commit_properties=CommitProperties(max_commit_retries=0))
        except CommitFailedError:
            return False
        if version % _VACUUM_EVERY == 0:
            self._vacuum()
        return True

    def _vacuum(self) -> None:
        from deltalake import DeltaTable

        try:
            DeltaTable(self.uri, storage_options=self.options).vacuum(
                retention_hours=0, enforce_retention_duration=False, dry_run=False
            )
        except Exception:  # noqa: BLE001 - clean-up is best effort; correctness does not depend on it
            pass


class DayLock:
    """A lock on one pipeline day; use as a context manager. ``wait_s`` = how long to wait for a busy day."""

    def __init__(
        self,
        settings: Settings,
        day: dt.date,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        wait_s: float = 0.0,
        poll_s: float = 1.0,
        flow_run_id: str | None = None,
        key: str | None = None,
    ) -> None:
        self.table = LockTable(settings)
        self.key = key or day_key(day)
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.flow_run_id = flow_run_id
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self.took_over: LockRow | None = None

    def _mine(self, acquired_at: dt.datetime | None = None) -> LockRow:
        now = _now()
        return LockRow(
            lock_key=self.key, owner=self.owner, host=self.host, pid=self.pid, flow_run_id=self.flow_run_id,
            acquired_at=acquired_at or now, expires_at=now + dt.timedelta(seconds=self.ttl_s),
        )

    def try_acquire(self) -> LockRow | None:
        """Take the lock if it is free (or stale); return the row of the live holder otherwise."""
        while True:
            table, rows = self.table.snapshot()
            now = _now()
            holder = next((r for r in rows if r.lock_key == self.key), None)
            if holder is not None and holder.owner != self.owner and not holder.stale(now):
                return holder
            keep = [r for r in rows if r.lock_key != self.key and not r.stale(now)]
            if self.table.swap(table, [*keep, self._mine()]):
                if holder is not None and holder.owner != self.owner:
                    self.took_over = holder
                self.held = True
                return None

    def acquire(self) -> "DayLock":
        """Take the lock, waiting up to ``wait_s``; raise :class:`DayLocked` naming the holder otherwise."""
        deadline = time.monotonic() + self.wait_s
        while True:
            holder = self.try_acquire()
            if holder is None:
                return self
            if time.monotonic() >= deadline:
                raise DayLocked(
                    f"another run is already processing this day: {holder.describe()}. Wait for it to finish; "
                    "a crashed run's lock is taken over as soon as its process is gone (same host) or at its expiry."
                )
            time.sleep(self.poll_s)

    def renew(self) -> None:
        """Push the expiry ``ttl_s`` into the future (call between long steps)."""
        while self.held:
            table, rows = self.table.snapshot()
            mine = next((r for r in rows if r.lock_key == self.key and r.owner == self.owner), None)
            if mine is None:
                self.held = False
                raise DayLocked(f"the lock {self.key} was taken over by another run after it expired")
            others = [r for r in rows if r.lock_key != self.key]
            if self.table.swap(table, [*others, self._mine(mine.acquired_at)]):
                return

    def release(self) -> None:
        """Drop the lock (no-op when not held or already taken over)."""
        while self.held:
            table, rows = self.table.snapshot()
            if not any(r.lock_key == self.key and r.owner == self.owner for r in rows):
                break
            if self.table.swap(table, [r for r in rows if not (r.lock_key == self.key and r.owner == self.owner)]):
                break
        self.held = False

    def __enter__(self) -> "DayLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def held_locks(settings: Settings) -> list[LockRow]:
    """Locks currently held (stale rows excluded)."""
    from lakehouse.delta import table_exists

    if not table_exists(PIPELINE_LOCKS, settings):
        return []
    return [r for r in LockTable(settings).rows() if not r.stale()]
