"""Run records: one row per table per layer run in ``system.pipeline_runs``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields

from lakehouse import delta
from lakehouse.catalog import PIPELINE_RUNS
from lakehouse.settings import Settings

PIPELINE_RUNS_SCHEMA = (
    "run_id string, flow_run_id string, layer string, table_name string, run_date date, "
    "rows_in long, rows_out long, rows_quarantined long, rows_deduplicated long, rows_rejected long, "
    "files_loaded long, files_skipped long, files_rejected long, gate_results string, balanced boolean, "
    "status string, message string, started_at timestamp, duration_s double"
)


def new_run_id(layer: str) -> str:
    """A sortable, unique run id such as ``ingest-20260103T101500-3f2a9c``."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{layer}-{now}-{uuid.uuid4().hex[:6]}"


@dataclass
class TableRun:
    """What one layer did to one table for one day."""

    run_id: str
    layer: str
    table_name: str
    run_date: dt.date
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    rows_rejected: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    gate_results: list[dict] = field(default_factory=list)
    status: str = "ok"
    message: str = ""
    flow_run_id: str | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    duration_s: float = 0.0

    @property
    def balanced(self) -> bool:
        """rows_in == rows_out + rows_quarantined + rows_deduplicated + rows_rejected."""
        return self.rows_in == self.rows_out + self.rows_quarantined + self.rows_deduplicated + self.rows_rejected

    def as_row(self) -> dict:
        """The run as a ``system.pipeline_runs`` row (gate results as JSON)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: it deep-copies the gate results
        row["gate_results"] = json.dumps(self.gate_results, default=str)
        row["balanced"] = self.balanced
        row["started_at"] = self.started_at.replace(tzinfo=None)
        return row


_current_flow_run_id: ContextVar[str | None] = ContextVar("lakehouse_flow_run_id", default=None)


@contextmanager
def flow_run_scope(flow_run_id: str | None):
    """Within this block, run rows recorded without a flow_run_id get this one (the orchestrator sets it)."""
    token = _current_flow_run_id.set(flow_run_id)
    try:
        yield
    finally:
        _current_flow_run_id.reset(token)


def current_flow_run_id() -> str | None:
    """The flow run id set by :func:`flow_run_scope`, if any."""
    return _current_flow_run_id.get()


def record_runs(spark, settings: Settings, runs: list[TableRun]) -> None:
    """Append run rows to ``system.pipeline_runs``."""
    if not runs:
        return
    for r in runs:
        if r.flow_run_id is None:
            r.flow_run_id = _current_flow_run_id.get()
    cols = [c.split()[0] for c in PIPELINE_RUNS_SCHEMA.split(", ")]
    rows = [tuple(row[c] for c in cols) for row in (r.as_row() for r in runs)]
    df = spark.createDataFrame(rows, PIPELINE_RUNS_SCHEMA)
    delta.append(df, PIPELINE_RUNS, settings)
