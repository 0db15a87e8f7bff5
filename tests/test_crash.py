"""Crash safety: kill the pipeline process (SIGKILL) at many points of ingest, refine and publish, rerun, and check.

Every run is a subprocess ``python -m lakehouse.cli <command> --date D`` with ``LAKEHOUSE_CRASH_AT=<point>[:<nth>]``
(see :mod:`lakehouse.faults`); it must die by SIGKILL (return code -9). The crash runs of one scenario form a
*chain*: each starts from the state the previous crash left, so one final rerun proves recovery from all of them,
and the checks after each crash prove that no crashed state is ever inconsistent:

- after every crash: no duplicate key in any bronze, silver, quarantine or gold table; every ledger-loaded file has
  exactly its ledger row count in bronze; every recorded run row balances; the publication in force is either the
  previous one or the new one, complete (table by table equal to a clean run's publication), every table version it
  lists readable, and the API's own loader (``api.repository.GoldRepository``) serves it with no orphan rows;
- once a run has passed a layer: bronze == ledger (ingest), silver + quarantine + deduplicated == bronze (refine);
- after the final rerun: its run rows balance, and bronze, silver, quarantine, the ledger and the published gold
  equal those of a clean run without crashes (volatile columns such as run ids and wall-clock times excluded).

All runs of all scenarios use one data-root path (absolute paths are recorded in the ledger, bronze lineage and the
manifest), restored from snapshots between scenarios. One generated landing dataset (two small days) is shared.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import cli_env
from lakehouse.catalog import GOLD_TABLES, SILVER_TABLES
from lakehouse.faults import CRASH_POINTS

pytestmark = [pytest.mark.flow]

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
RUN_TIMEOUT_S = 900
# A chain runs many pipelines; on a loaded 2-core machine one clean pipeline of the small day takes 60-120 s.
CHAIN_TIMEOUT_S = 5400

# Columns that legitimately differ between two runs over the same data (run ids, wall-clock times).
VOLATILE = {
    "bronze": {"_ingested_at", "_run_id"},
    "silver": {"_run_id", "_ingested_at"},
    "system.quarantine": {"run_id", "quarantined_at"},
    "system.file_ledger": {"run_id", "loaded_at"},
    "gold": {"run_id", "_run_id", "published_at", "computed_at", "built_at", "updated_at_run", "changed_at"},
}
JSON_VOLATILE_KEYS = {"_run_id", "_ingested_at", "run_id"}
SILVER_KEYS = {s.name: s.keys for s in SILVER_TABLES}
GOLD_KEYS = {s.name: s.keys for s in GOLD_TABLES}


# ---------------------------------------------------------------------------------------------------------------
# Running the CLI in a subprocess
# ---------------------------------------------------------------------------------------------------------------
class Workspace:
    """One active data root (always the same path), the shared landing files, and saved snapshots."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "lh"
        self.landing_src = base / "landing_src"
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timings: list[tuple[str, float]] = []
        self._n = 0

    def fresh(self) -> None:
        """An empty warehouse with the shared landing files (mtimes kept, so file fingerprints are identical)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        shutil.copytree(self.landing_src, self.root / "landing", copy_function=shutil.copy2)

    def save(self, name: str) -> None:
        shutil.rmtree(self.base / f"snap_{name}", ignore_errors=True)
        shutil.copytree(self.root, self.base / f"snap_{name}", copy_function=shutil.copy2, symlinks=True)

    def restore(self, name: str) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.base / f"snap_{name}", self.root, copy_function=shutil.copy2, symlinks=True)

    def run(self, *args: str, crash: str | None = None, crash_log: Path | None = None) -> subprocess.CompletedProcess:
        """``python -m lakehouse.cli *args`` on the active root; with ``crash`` it must die by SIGKILL."""
        env = cli_env(self.root, PYTHONUNBUFFERED="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        if crash:
            env["LAKEHOUSE_CRASH_AT"] = crash
        if crash_log:
            env["LAKEHOUSE_CRASH_LOG"] = str(crash_log)
        self._n += 1
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT_S,
        )
        label = f"{' '.join(args)}" + (f" @ {crash}" if crash else "")
        self.timings.append((label, time.perf_counter() - t0))
        (self.logs / f"{self._n:03d}.log").write_text(
            f"$ {label}\nrc={proc.returncode} in {self.timings[-1][1]:.1f}s\n{proc.stdout}\n{proc.stderr}")
        if crash:
            assert proc.returncode == -signal.SIGKILL, (
                f"{label}: expected death by SIGKILL at the crash point, got rc={proc.returncode} "
                f"(point never reached?)\n{_tail(proc)}"
            )
            assert f"crash point {crash.split(',')[0].split(':')[0]}" in proc.stderr
        else:
            assert proc.returncode == 0, f"{label}: failed with rc={proc.returncode}\n{_tail(proc)}"
        return proc


def _tail(proc: subprocess.CompletedProcess, n: int = 40) -> str:
    lines = [ln for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if " WARN " not in ln]
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------------------------------------------
# Reading state with delta-rs (never Spark: the test process does not need an engine)
# ---------------------------------------------------------------------------------------------------------------
def _read(path: Path | str, version: int | None = None) -> pa.Table:
    from deltalake import DeltaTable

    return DeltaTable(str(path), version=version).to_pyarrow_table()


def _tables(root: Path, layer: str) -> dict[str, Path]:
    folder = root / "warehouse" / layer
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if (p / "_delta_log").is_dir() and any((p / "_delta_log").glob("*.json"))}


def _hashable(value, *, json_column: bool = False):
    if json_column and isinstance(value, str):
        try:
            doc = json.loads(value)
        except ValueError:
            return value
        return _hashable(doc)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items() if k not in JSON_VOLATILE_KEYS))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


JSON_COLUMNS = {"row_json", "index_key", "business_key", "gate_results"}


def digest(table: pa.Table, drop: set[str]) -> Counter:
    """The table's rows as a multiset of hashable tuples (volatile columns dropped, JSON columns parsed)."""
    cols = sorted(c for c in table.column_names if c not in drop)
    data = table.select(cols).to_pylist()
    return Counter(tuple((c, _hashable(r[c], json_column=c in JSON_COLUMNS)) for c in cols) for r in data)


def _dupes(table: pa.Table, keys: tuple[str, ...]) -> list:
    if not keys or table.num_rows == 0:
        return []
    missing = [k for k in keys if k not in table.column_names]
    assert not missing, f"key columns {missing} missing"
    counts = Counter(tuple(_hashable(v) for v in row) for row in zip(*(table.column(k).to_pylist() for k in keys)))
    return [k for k, n in counts.items() if n > 1][:5]


def latest_manifest(root: Path) -> dict | None:
    folder = root / "warehouse" / "gold" / "_manifest"
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith("v") and p.name.endswith(".json"))
    return json.loads((folder / names[-1]).read_text()) if names else None


def manifest_versions(root: Path) -> list[int]:
    folder = root / "warehouse" / "gold" / "_manifest"
    if not folder.is_dir():
        return []
    return sorted(int(p.name[1:11]) for p in folder.iterdir() if p.name.startswith("v") and p.name.endswith(".json"))


def published_gold(root: Path, manifest: dict) -> dict[str, pa.Table]:
    """Every table of a publication, at its listed Delta version (each must exist and be readable)."""
    out = {}
    for name, ref in manifest["tables"].items():
        location = Path(ref["location"])
        assert location.is_relative_to(root), f"{name} lives outside the data root: {location}"
        out[name] = _read(location, int(ref["delta_version"]))
        if ref.get("rows") is not None:
            assert out[name].num_rows == ref["rows"], f"{name}: manifest says {ref['rows']} rows, table has {out[name].num_rows}"
    return out


def gold_digest(tables: dict[str, pa.Table]) -> dict[str, Counter]:
    return {name: digest(t, VOLATILE["gold"]) for name, t in tables.items()}


def state_digest(root: Path) -> dict[str, Counter]:
    """Normalized contents of bronze, silver, quarantine, the ledger and the published gold."""
    out: dict[str, Counter] = {}
    for name, path in _tables(root, "bronze").items():
        out[f"bronze.{name}"] = digest(_read(path), VOLATILE["bronze"])
    for name, path in _tables(root, "silver").items():
        out[f"silver.{name}"] = digest(_read(path), VOLATILE["silver"])
    system = _tables(root, "system")
    for name in ("quarantine", "file_ledger"):
        if name in system:
            out[f"system.{name}"] = digest(_read(system[name]), VOLATILE[f"system.{name}"])
    manifest = latest_manifest(root)
    if manifest is not None:
        out.update(gold_digest(published_gold(root, manifest)))
    return out


def describe_difference(actual: dict[str, Counter], expected: dict[str, Counter]) -> str:
    lines = []
    for name in sorted(set(actual) | set(expected)):
        a, e = actual.get(name), expected.get(name)
        if a is None or e is None:
            lines.append(f"{name}: {'missing' if a is None else 'unexpected'}")
        elif a != e:
            extra, lost = a - e, e - a
            lines.append(f"{name}: {sum(extra.values())} rows not in the clean run, {sum(lost.values())} clean-run rows "
                         f"missing; e.g. unexpected {list(extra)[:1]} / missing {list(lost)[:1]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------
def check_consistent(root: Path, *, allowed_gold: list[dict[str, Counter] | None]) -> None:
    """Invariants every state must satisfy, crashed or not (see the module docstring)."""
    # Bronze: (_source_file, _line_number) unique; ledger-loaded files have exactly their rows.
    bronze = {name: _read(path) for name, path in _tables(root, "bronze").items()}
    for name, t in bronze.items():
        assert not _dupes(t, ("_source_file", "_line_number")), f"bronze.{name}: duplicate rows {_dupes(t, ('_source_file', '_line_number'))}"
    system = _tables(root, "system")
    if "file_ledger" in system:
        ledger = _read(system["file_ledger"]).to_pylist()
        loaded = [e for e in ledger if e["status"] == "loaded"]
        keys = Counter((e["file_path"], e["fingerprint"]) for e in loaded)
        assert all(n == 1 for n in keys.values()), f"a file was loaded twice: {[k for k, n in keys.items() if n > 1]}"
        per_file: Counter = Counter()
        for t in bronze.values():
            per_file.update(t.column("_source_file").to_pylist())
        for e in loaded:
            assert per_file[e["file_path"]] == e["rows"], (
                f"{e['file_path']}: ledger says {e['rows']} rows loaded, bronze has {per_file[e['file_path']]}")
    # Silver keys unique; quarantine holds each (table, index key, row) once.
    for name, path in _tables(root, "silver").items():
        dupes = _dupes(_read(path), SILVER_KEYS[name])
        assert not dupes, f"silver.{name}: duplicate keys {dupes}"
    if "quarantine" in system:
        q = _read(system["quarantine"])
        dupes = _dupes(q, ("source_table", "index_key", "row_json"))
        assert not dupes, f"system.quarantine: rows held twice {dupes}"
    # Every recorded run row balances.
    if "pipeline_runs" in system:
        bad = [r for r in _read(system["pipeline_runs"]).to_pylist() if not r["balanced"]]
        assert not bad, f"unbalanced run rows: {[(r['table_name'], r['rows_in'], r['rows_out']) for r in bad][:5]}"
    check_publication(root, allowed_gold=allowed_gold)


def check_publication(root: Path, *, allowed_gold: list[dict[str, Counter] | None]) -> None:
    """The publication in force is one of ``allowed_gold`` (None: nothing published), complete and consistent."""
    # Readers skip in-flight temporaries: every name they consider is a complete JSON manifest.
    manifest = latest_manifest(root)
    if manifest is None:
        assert None in allowed_gold, "nothing is published, but a publication was expected"
        return
    tables = published_gold(root, manifest)
    got = gold_digest(tables)
    expected = [g for g in allowed_gold if g is not None]
    assert any(got == g for g in expected), (
        f"publication v{manifest['version']} ({manifest['run_date']}) matches no complete clean publication:\n"
        + "\n".join(describe_difference(got, g) for g in expected))
    for name, t in tables.items():
        dupes = _dupes(t, GOLD_KEYS.get(name.removeprefix("gold."), ()))
        assert not dupes, f"{name} v{manifest['tables'][name]['delta_version']}: duplicate keys {dupes}"
    # Cross-table consistency of the published set.
    ids = set(tables["gold.golden_customers"].column("golden_id").to_pylist())
    for name in ("gold.customer_xref", "gold.customer_metrics", "gold.loyalty_scores", "gold.voucher_recommendations",
                 "gold.subscription_candidates", "gold.fact_sales"):
        if name in tables:
            orphans = {g for g in tables[name].column("golden_id").to_pylist() if g is not None} - ids
            assert not orphans, f"{name}: golden ids not in gold.golden_customers: {sorted(orphans)[:5]}"
    if "gold.loyalty_scores" in tables and "gold.customer_metrics" in tables:
        assert set(tables["gold.loyalty_scores"].column("golden_id").to_pylist()) == set(
            tables["gold.customer_metrics"].column("golden_id").to_pylist())
    skus = set(tables["gold.dim_product"].column("sku").to_pylist())
    assert {s for s in tables["gold.fact_sales"].column("sku").to_pylist() if s is not None} <= skus
    as_of = {str(d) for d in tables["gold.loyalty_scores"].column("as_of_date").to_pylist()}
    assert as_of <= {manifest["run_date"]}, f"loyalty scores as of {as_of} in a publication for {manifest['run_date']}"
    check_api_serves(root, manifest, tables)


def check_api_serves(root: Path, manifest: dict, tables: dict[str, pa.Table]) -> None:
    """The API's repository loads exactly this publication and every child row belongs to a served customer."""
    from api.repository import GoldRepository
    from lakehouse.settings import load_settings

    repo = GoldRepository(load_settings(data_root=str(root), spark_remote=None), poll_interval_s=3600)
    assert repo.refresh(), f"the API did not load publication v{manifest['version']}: {repo.last_error}"
    snap = repo.snapshot
    assert snap.version == manifest["version"]
    assert snap.n == tables["gold.golden_customers"].num_rows
    for attr, name in (("loyalty", "gold.loyalty_scores"), ("metrics", "gold.customer_metrics"),
                       ("vouchers", "gold.voucher_recommendations"), ("subscriptions", "gold.subscription_candidates")):
        served = sum(len(getattr(snap, attr).rows(c)) for c in range(snap.n))
        assert served == tables[name].num_rows, f"API serves {served} rows of {name}, the publication has {tables[name].num_rows}"
    for gid in tables["gold.loyalty_scores"].column("golden_id").to_pylist()[:20]:
        row = snap.customer_row(gid)
        assert row is not None and snap.loyalty.first(row) is not None and snap.metrics.first(row) is not None


def check_ingested(root: Path, day: dt.date) -> None:
    """Once ingest finished: every landing file of the day is in the ledger and bronze == ledger-loaded rows."""
    landing = {str(p) for p in (root / "landing").rglob(f"ingest_date={day.isoformat()}/*") if p.is_file()}
    ledger = [e for e in _read(_tables(root, "system")["file_ledger"]).to_pylist() if e["ingest_date"] == day]
    assert landing == {e["file_path"] for e in ledger}, f"ledger and landing differ: {landing ^ {e['file_path'] for e in ledger}}"
    expected: Counter = Counter()
    for e in ledger:
        if e["status"] == "loaded":
            expected[e["table_name"]] += e["rows"]
    for name, path in _tables(root, "bronze").items():
        t = _read(path)
        rows = sum(1 for d in t.column("ingest_date").to_pylist() if d == day)
        assert rows == expected[f"bronze.{name}"], f"bronze.{name} {day}: {rows} rows, ledger says {expected[f'bronze.{name}']}"
        loaded = {e["file_path"] for e in ledger if e["status"] == "loaded"}
        stray = {f for f, d in zip(t.column("_source_file").to_pylist(), t.column("ingest_date").to_pylist())
                 if d == day and f not in loaded}
        assert not stray, f"bronze.{name}: rows of files the ledger does not list as loaded: {stray}"


def _latest_runs(root: Path, layer: str, day: dt.date) -> dict[str, dict]:
    rows = [r for r in _read(_tables(root, "system")["pipeline_runs"]).to_pylist()
            if r["layer"] == layer and r["run_date"] == day]
    out: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: _utc(r["started_at"])):
        out[r["table_name"]] = r
    return out


def check_refined(root: Path, day: dt.date, reference_runs: dict[str, dict]) -> None:
    """Once refine finished: per silver table, silver + quarantined + deduplicated == bronze rows of its feeds."""
    from flows.refine import feeds_for
    from lakehouse.settings import load_settings
    from transforms.silver.tables import TABLES

    settings = load_settings(data_root=str(root), spark_remote=None)
    bronze = {f"bronze.{n}": p for n, p in _tables(root, "bronze").items()}
    silver = _tables(root, "silver")
    q = _read(_tables(root, "system")["quarantine"]).to_pylist()
    latest = _latest_runs(root, "silver", day)
    for name, table in TABLES.items():
        qualified = f"silver.{name}"
        bronze_in = 0
        for feed in feeds_for(settings, table):
            if feed.bronze.qualified in bronze:
                bronze_in += sum(1 for d in _read(bronze[feed.bronze.qualified]).column("ingest_date").to_pylist() if d == day)
        silver_rows = sum(1 for d in _read(silver[name]).column("ingest_date").to_pylist() if d == day) if name in silver else 0
        quarantined = sum(1 for r in q if r["source_table"] == qualified and r["ingest_date"] == day and r["released_run_id"] is None)
        ref = reference_runs[qualified]
        assert bronze_in == ref["rows_in"], f"{qualified} {day}: {bronze_in} bronze rows feed it, a clean run read {ref['rows_in']}"
        assert silver_rows + quarantined + ref["rows_deduplicated"] == bronze_in, (
            f"{qualified} {day}: silver {silver_rows} + quarantined {quarantined} + deduplicated {ref['rows_deduplicated']} "
            f"!= bronze {bronze_in}")
        run = latest.get(qualified)
        assert run is not None and run["balanced"] and run["rows_in"] == bronze_in, f"{qualified}: last run row {run}"
        assert run["rows_quarantined"] == quarantined


def check_final(ws: Workspace, reference: dict, since: dt.datetime) -> None:
    """After the final rerun: its run rows balance and the state equals the clean run's."""
    runs = [r for r in _read(_tables(ws.root, "system")["pipeline_runs"]).to_pylist() if _utc(r["started_at"]) >= since]
    assert runs, "the rerun recorded no run rows"
    assert {r["layer"] for r in runs} >= {"bronze", "silver", "publish"}
    bad = [(r["table_name"], r["status"], r["message"]) for r in runs if not r["balanced"] or r["status"] in ("failed", "error")]
    assert not bad, f"rerun run rows not balanced or failed: {bad}"
    got = state_digest(ws.root)
    assert got == reference["state"], "state after crash + rerun differs from a clean run:\n" + describe_difference(got, reference["state"])


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: the landing dataset and the clean reference runs
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    from generator import generate
    from lakehouse.settings import load_settings

    base = tmp_path_factory.mktemp("crash")
    w = Workspace(base)
    gen = load_settings(data_root=str(base / "gen"), spark_remote=None)
    generate(gen, start=DAY1, days=2, customers=40, orders_per_day=20, seed=7, bad_share=0.05, formats={}, progress=False)
    shutil.copytree(Path(gen.landing_root), w.landing_src, copy_function=shutil.copy2)
    yield w
    print("\ncrash test timings (s):\n" + "\n".join(f"  {s:6.1f}  {label}" for label, s in w.timings))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.timezone.utc) if ts.tzinfo is None else ts


@pytest.fixture(scope="module")
def reference(ws: Workspace) -> dict:
    """Clean runs: day 1 from empty, then day 2 on top; their states, publications and points reached."""
    ws.fresh()
    log1, log2 = ws.logs / "points_day1.txt", ws.logs / "points_day2.txt"
    ws.run("pipeline", "--date", DAY1.isoformat(), crash_log=log1)
    ref: dict = {"day1": {"state": state_digest(ws.root)}}
    ref["day1"]["gold"] = gold_digest(published_gold(ws.root, latest_manifest(ws.root)))
    ref["day1"]["silver_runs"] = _latest_runs(ws.root, "silver", DAY1)
    check_consistent(ws.root, allowed_gold=[ref["day1"]["gold"]])
    check_ingested(ws.root, DAY1)
    check_refined(ws.root, DAY1, ref["day1"]["silver_runs"])
    ws.save("day1")
    ws.run("pipeline", "--date", DAY2.isoformat(), crash_log=log2)
    ref["day2"] = {"state": state_digest(ws.root), "gold": gold_digest(published_gold(ws.root, latest_manifest(ws.root))),
                   "silver_runs": _latest_runs(ws.root, "silver", DAY2)}
    assert ref["day2"]["gold"] != ref["day1"]["gold"], "day 2 must change gold, or 'old vs new publication' proves nothing"
    check_consistent(ws.root, allowed_gold=[ref["day2"]["gold"]])
    check_ingested(ws.root, DAY2)
    check_refined(ws.root, DAY2, ref["day2"]["silver_runs"])
    ref["points"] = Counter(line.split()[0] for log in (log1, log2) for line in log.read_text().splitlines())
    ref["points_day1"] = Counter(line.split()[0] for line in log1.read_text().splitlines())
    return ref


# ---------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_crash_point_kills_only_at_the_named_occurrence(tmp_path):
    code = (
        "from lakehouse.faults import crash_point\n"
        "for i in range(3):\n"
        "    crash_point('refine.silver_merged'); print('passed', i, flush=True)\n"
    )
    env = {**os.environ, "LAKEHOUSE_CRASH_AT": "refine.silver_merged:2", "LAKEHOUSE_CRASH_LOG": str(tmp_path / "log")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split("\n")[:1] == ["passed 0"] and "passed 1" not in proc.stdout
    assert (tmp_path / "log").read_text().splitlines() == ["refine.silver_merged 1", "refine.silver_merged 2"]
    env["LAKEHOUSE_CRASH_AT"] = "no.such_point"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "unknown crash point" in proc.stderr


@pytest.mark.timeout(CHAIN_TIMEOUT_S)
def test_every_crash_point_is_reached_by_a_clean_pipeline(reference):
    assert set(reference["points"]) == set(CRASH_POINTS), (
        f"never reached: {set(CRASH_POINTS) - set(reference['points'])}; unknown: {set(reference['points']) - set(CRASH_POINTS)}")


# Day 1 from an empty warehouse: (command, crash point, what has certainly finished when it fires).
DAY1_CHAIN: list[tuple[str, str, str]] = [
    ("pipeline", "ingest.staged:1", ""),                  # first bronze table staged, nothing in Delta
    ("pipeline", "ingest.bronze_appended:1", ""),         # bronze rows without ledger rows
    ("pipeline", "delta.committed:4", ""),                # somewhere in the online unit
    ("pipeline", "ingest.bronze_appended:3", ""),
    ("pipeline", "ingest.ledger_written:1", ""),          # the day's ledger rows written, its run rows not
    ("pipeline", "ingest.tables_done:1", ""),             # the day's tables done, their run rows not recorded
    ("pipeline", "ingest.staged:12", ""),                 # last bronze table staged
    ("pipeline", "refine.quarantined:1", "ingest"),       # a first table quarantined, its silver MERGE not done
    ("pipeline", "refine.silver_merged:1", "ingest"),     # a silver MERGE done, accounting not run
    ("pipeline", "refine.silver_merged:2", "ingest"),     # before the points every refine reaches: tables are
    ("pipeline", "refine.quarantined:3", "ingest"),       # refined side by side, so which ones are merged when
    ("pipeline", "refine.quarantined:6", "ingest"),       # a crash fires varies; each table's quarantine MERGE
    ("pipeline", "refine.lines_refreshed:1", "ingest"),   # runs every time, lines refresh runs every time
    ("pipeline", "refine.tables_done:1", "ingest"),       # every silver table done, their run rows not recorded
    ("pipeline", "publish.identity_resolved:1", "refine"),
    ("publish", "publish.table_written:8", "refine"),      # fact_sales written (after the 7 built beside identity)
    ("publish", "manifest.temp_written:1", "refine"),      # first manifest: temp file only
]

# Day 2 on top of day 1's publication (v1): the publication in force must stay v1 or become day 2's, complete.
DAY2_CHAIN: list[tuple[str, str, str]] = [
    ("pipeline", "ingest.bronze_appended:2", ""),
    ("pipeline", "refine.silver_merged:3", "ingest"),
    ("pipeline", "publish.table_written:3", "refine"),     # a dimension (built beside identity)
    ("publish", "publish.table_written:11", "refine"),     # the MERGEd score history
    ("publish", "publish.table_written:19", "refine"),     # every table rewritten, not yet published
    ("publish", "publish.gated:1", "refine"),              # gated, no manifest yet
    ("publish", "manifest.linked:1", "refine"),            # day 2 published, temp file left behind
    ("publish", "publish.manifest_written:1", "refine"),   # published again, run rows not recorded
]


def _run_chain(ws: Workspace, reference: dict, day: dt.date, chain, allowed_gold) -> None:
    key = "day1" if day == DAY1 else "day2"
    for command, point, finished in chain:
        ws.run(command, "--date", day.isoformat(), crash=point)
        try:
            check_consistent(ws.root, allowed_gold=allowed_gold)
        except AssertionError as exc:
            ws.save(f"failed_{key}")  # kept under the test's tmp folder for a post-mortem
            raise AssertionError(f"after the crash at {point} ({command} {day}): {exc}") from None
        if finished in ("ingest", "refine"):
            check_ingested(ws.root, day)
        if finished == "refine":
            check_refined(ws.root, day, reference[key]["silver_runs"])
    since = _now()
    ws.run("pipeline", "--date", day.isoformat())
    try:
        check_consistent(ws.root, allowed_gold=[reference[key]["gold"]])
        check_ingested(ws.root, day)
        check_refined(ws.root, day, reference[key]["silver_runs"])
        check_final(ws, reference[key], since)
    except AssertionError:
        ws.save(f"failed_{key}_final")
        raise


@pytest.mark.timeout(CHAIN_TIMEOUT_S)
def test_day1_survives_crashes_in_ingest_refine_and_publish(ws, reference):
    ws.fresh()
    _run_chain(ws, reference, DAY1, DAY1_CHAIN, allowed_gold=[None, reference["day1"]["gold"]])


@pytest.mark.timeout(CHAIN_TIMEOUT_S)
def test_day2_crashes_never_expose_a_partial_publication(ws, reference):
    ws.restore("day1")
    _run_chain(ws, reference, DAY2, DAY2_CHAIN, allowed_gold=[reference["day1"]["gold"], reference["day2"]["gold"]])
    assert len(DAY1_CHAIN) + len(DAY2_CHAIN) >= 20
    versions = manifest_versions(ws.root)
    assert versions == list(range(1, len(versions) + 1)), f"manifest versions have gaps: {versions}"


@pytest.mark.timeout(CHAIN_TIMEOUT_S)
def test_backfill_resumes_from_the_crashed_day(ws, reference):
    """A backfill killed on its second day skips the finished first day on resume and completes the second."""
    ws.fresh()
    args = ("backfill", "--start", DAY1.isoformat(), "--end", DAY2.isoformat())
    # The crash fires in day 2: its silver tables refined, their run rows not recorded (counts run over both days).
    nth = reference["points_day1"]["refine.tables_done"] + 1
    ws.run(*args, crash=f"refine.tables_done:{nth}")
    check_consistent(ws.root, allowed_gold=[reference["day1"]["gold"]])
    runs_before = _read(_tables(ws.root, "system")["pipeline_runs"]).to_pylist()
    since = _now()
    proc = ws.run(*args)
    assert "1 day(s) already done by an earlier attempt were skipped" in proc.stdout
    runs = _read(_tables(ws.root, "system")["pipeline_runs"]).to_pylist()
    assert not [r for r in runs if _utc(r["started_at"]) >= since and r["run_date"] == DAY1], "day 1 was run again"
    assert len(runs) > len(runs_before)
    progress = _read(ws.root / "warehouse" / "system" / "backfill_progress").to_pylist()
    done = sorted(r["run_date"] for r in progress if r["status"] == "done")
    assert done == [DAY1, DAY2]
    check_consistent(ws.root, allowed_gold=[reference["day2"]["gold"]])
    check_final(ws, reference["day2"], since)



def _land(root: Path, source: str, entity: str, day: dt.date, header: list[str], rows: list[list[str]]) -> None:
    folder = root / "landing" / source / entity / f"ingest_date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header), *(",".join(r) for r in rows)]
    (folder / f"{entity}-0001.csv").write_text("\n".join(lines) + "\n")


def _land_cancellation_days(root: Path) -> None:
    """Day 1: order ORD-1 (placed) with one line. Day 2: ORD-1 cancelled, and a new order ORD-2 with one line."""
    orders = "order_id customer_id order_ts status channel device_type currency shipping_postcode updated_at".split()
    lines = "order_id line_number sku quantity unit_price discount_amount line_total updated_at".split()
    _land(root, "online", "orders", DAY1, orders,
          [["ORD-1", "C-1", "2026-01-01T10:00:00Z", "placed", "web", "desktop", "GBP", "LS1 1AA", "2026-01-01T10:00:00Z"]])
    _land(root, "online", "order_lines", DAY1, lines,
          [["ORD-1", "1", "1000001", "2", "5.00", "0.00", "10.00", "2026-01-01T10:00:00Z"]])
    _land(root, "online", "orders", DAY2, orders,
          [["ORD-1", "C-1", "2026-01-01T10:00:00Z", "cancelled", "web", "desktop", "GBP", "LS1 1AA", "2026-01-02T09:00:00Z"],
           ["ORD-2", "C-1", "2026-01-02T11:00:00Z", "placed", "web", "desktop", "GBP", "LS1 1AA", "2026-01-02T11:00:00Z"]])
    _land(root, "online", "order_lines", DAY2, lines,
          [["ORD-2", "1", "1000001", "1", "5.00", "0.00", "5.00", "2026-01-02T11:00:00Z"]])


def _line_state(root: Path, order_id: str) -> tuple:
    rows = [r for r in _read(root / "warehouse" / "silver" / "order_lines").to_pylist() if r["order_id"] == order_id]
    return tuple((r["line_number"], r["order_status"], r["line_type"]) for r in rows)


@pytest.mark.timeout(CHAIN_TIMEOUT_S)
def test_a_crash_between_orders_and_lines_still_refreshes_earlier_lines(tmp_path):
    """Day 2 cancels a day-1 order. Refine day 2 is killed right after silver.orders is MERGEd (before the lines);
    the rerun must still give the day-1 line its order's new status, as a clean refine of day 2 does."""
    states = {}
    for name in ("clean", "crashed"):
        w = Workspace(tmp_path / name)
        w.root.mkdir(parents=True)
        _land_cancellation_days(w.root)
        for day in (DAY1, DAY2):
            w.run("ingest", "--date", day.isoformat())
        w.run("refine", "--date", DAY1.isoformat())
        assert _line_state(w.root, "ORD-1") == ((1, "placed", "sale"),)
        if name == "crashed":  # silver.orders is the first table with day-2 changes: its MERGE is the first one
            w.run("refine", "--date", DAY2.isoformat(), crash="refine.silver_merged:1")
            assert {r["order_id"]: r["status"] for r in _read(w.root / "warehouse" / "silver" / "orders").to_pylist()} == {
                "ORD-1": "cancelled", "ORD-2": "placed"}, "the crash must fire after the orders MERGE"
        w.run("refine", "--date", DAY2.isoformat())
        states[name] = (_line_state(w.root, "ORD-1"), _line_state(w.root, "ORD-2"))
    assert states["clean"] == (((1, "cancelled", "cancelled"),), ((1, "placed", "sale"),)), states["clean"]
    assert states["crashed"] == states["clean"], (
        f"after the crash and rerun the day-1 line kept its old header: {states['crashed'][0]} "
        f"(a clean run gives {states['clean'][0]})")
