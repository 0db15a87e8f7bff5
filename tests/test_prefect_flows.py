"""Orchestration without a Prefect server: day locks, backfill resume, retry policy, yesterday, S3 landing adapter,
prefect.yaml entrypoints, and the CLI's pipeline/backfill commands (layer functions replaced by recording fakes)."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml

from flows import orchestration as orch
from flows.locks import DayLock, DayLocked, LockRow, LockTable, held_locks
from lakehouse.errors import EngineUnreachable, LakehouseError, QualityGateFailed
from lakehouse.runs import TableRun, current_flow_run_id

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 1, 3)


# -- fake layers -----------------------------------------------------------------------------------------------------
class FakeLayers:
    """Recording stand-ins for flows.ingest / flows.refine / flows.publish (same signatures as the real ones)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dt.date, str]] = []
        self.fail_on: dict[tuple[str, dt.date], BaseException] = {}
        self.sleep_s = 0.0
        self.flow_run_ids: list[str | None] = []

    def _run(self, layer: str, day, what: str) -> list[TableRun]:
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
        self.calls.append((layer, day, what))
        self.flow_run_ids.append(current_flow_run_id())
        if self.sleep_s:
            time.sleep(self.sleep_s)
        exc = self.fail_on.get((layer, day))
        if exc is not None:
            raise exc
        return [TableRun(run_id=f"{layer}-1", layer=layer, table_name=f"{layer}.{what}", run_date=day, rows_in=5,
                         rows_out=4, rows_quarantined=1)]

    def modules(self) -> dict[str, types.ModuleType]:
        ingest = types.ModuleType("flows.ingest")
        ingest.ingest_day = lambda settings, day, *, sources=None, entities=None, run_id=None: self._run(
            "ingest", day, ",".join(sources or ["all"]))
        ingest.ingest_days = lambda settings, days, *, sources=None, entities=None: [
            r for d in days for r in ingest.ingest_day(settings, d, sources=sources, entities=entities)]
        refine = types.ModuleType("flows.refine")
        refine.refine_day = lambda settings, day, *, tables=None, run_id=None: self._run(
            "refine", day, ",".join(tables or ["all"]))
        refine.refine_days = lambda settings, days, *, tables=None: [
            r for d in days for r in refine.refine_day(settings, d, tables=tables)]
        publish = types.ModuleType("flows.publish")
        publish.publish_day = lambda settings, day, *, tables=None, run_id=None: self._run("publish", day, "gold")
        publish.publish_days = lambda settings, days, *, tables=None: [
            r for d in days for r in publish.publish_day(settings, d)]
        return {"flows.ingest": ingest, "flows.refine": refine, "flows.publish": publish}

    def days(self, layer: str) -> list[dt.date]:
        out: list[dt.date] = []
        for lyr, day, _ in self.calls:
            if lyr == layer and (not out or out[-1] != day):
                out.append(day)
        return out


@pytest.fixture
def fake_layers(monkeypatch):
    fake = FakeLayers()
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


# -- day lock --------------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_lock_blocks_the_same_day_names_the_holder_and_frees_on_release(settings):
    first = DayLock(settings, DAY).acquire()
    with pytest.raises(DayLocked, match=r"day=2026-01-03 is held by .*pid"):
        DayLock(settings, DAY).acquire()
    other_day = DayLock(settings, DAY + dt.timedelta(days=1)).acquire()  # another day is independent
    assert {r.lock_key for r in held_locks(settings)} == {"day=2026-01-03", "day=2026-01-04"}
    first.release()
    DayLock(settings, DAY).acquire().release()
    other_day.release()
    assert held_locks(settings) == []


@pytest.mark.unit
def test_lock_waits_for_the_holder_when_asked(settings):
    holder = DayLock(settings, DAY).acquire()
    threading.Timer(0.6, holder.release).start()
    t0 = time.monotonic()
    waiter = DayLock(settings, DAY, wait_s=10, poll_s=0.1).acquire()
    assert 0.5 < time.monotonic() - t0 < 8
    waiter.release()


def _write_lock_row(settings, **fields) -> None:
    table, rows = LockTable(settings).snapshot()
    now = dt.datetime.now(dt.timezone.utc)
    row = dict(lock_key="day=2026-01-03", owner="ghost", host="elsewhere", pid=1, flow_run_id=None, acquired_at=now,
               expires_at=now + dt.timedelta(hours=1))
    row.update(fields)
    assert LockTable(settings).swap(table, [*rows, LockRow(**row)])


@pytest.mark.unit
def test_lock_of_a_crashed_local_process_or_an_expired_lock_is_taken_over(settings):
    import socket
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock_row(settings, host=socket.gethostname(), pid=dead.pid)
    lock = DayLock(settings, DAY).acquire()
    assert lock.took_over is not None and lock.took_over.pid == dead.pid
    lock.release()

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    _write_lock_row(settings, expires_at=past)
    lock = DayLock(settings, DAY).acquire()
    assert lock.took_over is not None and lock.took_over.owner == "ghost"
    lock.release()

    _write_lock_row(settings)  # alive on another host and not expired: respected
    with pytest.raises(DayLocked, match="ghost"):
        DayLock(settings, DAY).acquire()


@pytest.mark.unit
@pytest.mark.s3
def test_lock_and_backfill_progress_work_on_s3(s3_settings):
    from flows.locks import lock_storage_options

    assert lock_storage_options(s3_settings)["conditional_put"] == "etag"  # put-if-absent commits, no unsafe rename
    lock = DayLock(s3_settings, DAY).acquire()
    with pytest.raises(DayLocked):
        DayLock(s3_settings, DAY).acquire()
    lock.release()
    DayLock(s3_settings, DAY).acquire().release()
    orch.mark_day(s3_settings, "bf", DAY, "done")
    orch.mark_day(s3_settings, "bf", DAY + dt.timedelta(days=1), "failed")
    assert orch.completed_days(s3_settings, "bf") == {DAY}


def _race(root: str, barrier, results) -> None:
    from lakehouse.settings import load_settings

    lock = DayLock(load_settings(data_root=root), DAY)
    lock.table.snapshot()  # imports and first read done before the start line
    barrier.wait()
    won = lock.try_acquire() is None
    results.put(won)
    if won:
        time.sleep(3.0)  # hold it while the others look
        lock.release()


@pytest.mark.unit
def test_racing_processes_exactly_one_wins(settings):
    root = str(Path(settings.warehouse_root).parent)
    DayLock(settings, DAY - dt.timedelta(days=9)).acquire().release()  # the table exists: race on the lock, not create
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(root, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert sorted(outcomes) == [False, False, True]


@pytest.mark.unit
def test_two_pipelines_for_the_same_day_never_run_at_once(settings, fake_layers):
    fake_layers.sleep_s = 0.4
    errors: list[BaseException] = []

    def run(day):
        try:
            orch.run_day(settings, day, layers=("publish",))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in (DAY, DAY, DAY + dt.timedelta(days=1))]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], DayLocked)
    assert sorted(d for _, d, _ in fake_layers.calls) == [DAY, DAY + dt.timedelta(days=1)]
    assert held_locks(settings) == []


# -- pipeline and backfill -------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_pipeline_runs_layers_in_order_in_coarse_units(settings, fake_layers):
    from lakehouse.catalog import SILVER_TABLES

    result = orch.run_day(settings, DAY)
    layers = [c[0] for c in fake_layers.calls]
    assert layers == sorted(layers, key=orch.LAYERS.index)
    refine_units = [what for layer, _, what in fake_layers.calls if layer == "refine"]
    assert refine_units == [t.name for t in SILVER_TABLES] or refine_units == ["all"]
    assert [layer for layer in result.runs] == list(orch.LAYERS)
    assert held_locks(settings) == []


@pytest.mark.unit
def test_ingest_is_one_unit_in_process_and_one_task_per_source_under_prefect(settings, monkeypatch):
    import flows.ingest as ingest
    from lakehouse.storage import Storage

    storage = Storage(settings)
    for source, entity in (("online", "orders"), ("pos", "members")):
        storage.makedirs(storage.landing_dir(source, entity, DAY))
    assert [u.name for u in orch.layer_units(settings, "ingest", DAY)] == ["online", "pos"]
    assert [u.name for u in orch.layer_units(settings, "ingest", DAY, split=False)] == ["bronze"]

    calls: list = []
    monkeypatch.setattr(ingest, "ingest_day", lambda settings_, day, **kw: calls.append(kw["sources"]) or [])
    orch.run_layer(settings, "ingest", DAY)  # in-process: every source in one call
    assert calls == [None]
    calls.clear()
    orch.run_layer(settings, "ingest", DAY, runner=lambda layer, unit, day, call: call())  # a task per source
    assert calls == [["online"], ["pos"]]


@pytest.mark.unit
def test_refine_is_one_unit_in_process_and_one_task_per_table_under_prefect(settings, monkeypatch):
    import flows.refine as refine
    from lakehouse.catalog import SILVER_TABLES

    names = [t.name for t in SILVER_TABLES]
    assert [u.name for u in orch.layer_units(settings, "refine", DAY)] == names
    assert [u.name for u in orch.layer_units(settings, "refine", DAY, split=False)] == ["silver"]

    calls: list = []
    monkeypatch.setattr(refine, "refine_day",
                        lambda settings_, day, *, tables=None, run_id=None: calls.append(tables) or [])
    orch.run_layer(settings, "refine", DAY)  # in-process: every table in one call (side by side)
    orch.run_layer(settings, "refine", DAY, tables=["orders", "silver.events"])
    assert calls == [None, ["orders", "silver.events"]]
    calls.clear()
    orch.run_layer(settings, "refine", DAY, runner=lambda layer, unit, day, call: call())  # a task per table
    assert calls == [[n] for n in names]


@pytest.mark.unit
def test_a_failed_layer_stops_the_day_and_frees_the_lock(settings, fake_layers):
    fake_layers.fail_on[("refine", DAY)] = QualityGateFailed("rule x failed on silver.orders")
    with pytest.raises(QualityGateFailed):
        orch.run_day(settings, DAY)
    assert "publish" not in {c[0] for c in fake_layers.calls}
    assert held_locks(settings) == []


@pytest.mark.unit
def test_backfill_interrupted_on_day_7_of_10_resumes_from_day_7(settings, fake_layers):
    start, end = dt.date(2026, 1, 1), dt.date(2026, 1, 10)
    day7 = dt.date(2026, 1, 7)
    fake_layers.fail_on[("publish", day7)] = RuntimeError("worker killed")
    with pytest.raises(RuntimeError):
        orch.run_backfill(settings, start, end)
    assert fake_layers.days("publish") == orch.date_range(start, day7)
    assert orch.completed_days(settings, orch.default_backfill_id(start, end)) == set(orch.date_range(start, day7 - dt.timedelta(days=1)))

    fake_layers.calls.clear()
    del fake_layers.fail_on[("publish", day7)]
    out = orch.run_backfill(settings, start, end)
    assert fake_layers.days("ingest") == orch.date_range(day7, end)  # continues from day 7, in order
    assert out.skipped == orch.date_range(start, day7 - dt.timedelta(days=1))
    assert orch.completed_days(settings, out.backfill_id) == set(orch.date_range(start, end))

    fake_layers.calls.clear()
    again = orch.run_backfill(settings, start, end, resume=False)  # --restart: every day again
    assert len(again.results) == 10 and fake_layers.days("publish") == orch.date_range(start, end)


# -- retry policy, parameters ----------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    "exc, retry",
    [
        (OSError("connection reset"), True),
        (ConnectionError("refused"), True),
        (TimeoutError("slow"), True),
        (EngineUnreachable("sc://x unreachable"), True),
        (LakehouseError("landing file x: column `qty` missing"), False),
        (QualityGateFailed("rule failed"), False),
        (ValueError("bad number"), False),
        (KeyError("col"), False),
    ],
)
def test_only_io_errors_are_retried(exc, retry):
    from flows.prefect_flows import is_io_error

    assert is_io_error(exc) is retry


@pytest.mark.unit
def test_botocore_errors_and_wrapped_io_errors_are_io():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from flows.prefect_flows import is_io_error

    assert is_io_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_io_error(ClientError({"Error": {"Code": "SlowDown"}}, "GetObject"))
    try:
        try:
            raise OSError("disk")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert is_io_error(outer)


@pytest.mark.unit
@pytest.mark.parametrize(
    "now, tz, expected",
    [
        ("2026-01-04T02:30:00+00:00", "UTC", "2026-01-03"),
        ("2026-01-04T00:30:00+00:00", "America/New_York", "2026-01-02"),  # still Jan 3 in New York
        ("2026-01-03T23:30:00+00:00", "Asia/Tokyo", "2026-01-03"),  # already Jan 4 in Tokyo
        ("2026-07-01T23:30:00+00:00", "Europe/London", "2026-07-01"),  # BST: already Jul 2
    ],
)
def test_yesterday_is_computed_in_the_configured_time_zone(now, tz, expected):
    assert orch.yesterday(tz, dt.datetime.fromisoformat(now)) == dt.date.fromisoformat(expected)


@pytest.mark.unit
def test_unknown_time_zone_is_a_sentence():
    with pytest.raises(LakehouseError, match="unknown time zone 'Mars/Olympus'"):
        orch.yesterday("Mars/Olympus")


@pytest.mark.unit
def test_flows_run_as_plain_python_without_a_server(settings, fake_layers, monkeypatch):
    from flows import prefect_flows

    monkeypatch.setattr(prefect_flows, "load_settings", lambda: settings)
    monkeypatch.setattr(prefect_flows, "publish_docs_link", lambda settings, layers: None)
    out = prefect_flows.pipeline.fn(day="2026-01-03")
    assert out["day"] == "2026-01-03" and set(out["tables"]) == set(orch.LAYERS)
    out = prefect_flows.backfill.fn(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 2))
    assert out["ran"] == ["2026-01-01", "2026-01-02"]
    assert prefect_flows.main(["refine", "day=2026-01-04", 'tables=["orders"]']) == 0  # python -m flows.prefect_flows
    assert ("refine", dt.date(2026, 1, 4), "orders") in fake_layers.calls
    assert set(fake_layers.flow_run_ids) == {None}


# -- CLI -------------------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_cli_pipeline_and_backfill_call_the_plain_functions(settings, fake_layers, monkeypatch, capsys):
    from lakehouse import cli

    monkeypatch.setenv("LAKEHOUSE_DATA_ROOT", str(Path(settings.warehouse_root).parent))
    assert cli.main(["pipeline", "--date", "2026-01-03"]) == 0
    assert "pipeline 2026-01-03:" in capsys.readouterr().out
    fake_layers.fail_on[("refine", dt.date(2026, 1, 2))] = QualityGateFailed("rule y failed")
    assert cli.main(["backfill", "--start", "2026-01-01", "--end", "2026-01-03"]) == 2
    assert "rule y failed" in capsys.readouterr().err
    del fake_layers.fail_on[("refine", dt.date(2026, 1, 2))]
    assert cli.main(["backfill", "--start", "2026-01-01", "--end", "2026-01-03"]) == 0
    out = capsys.readouterr().out
    assert "1 day(s) already done by an earlier attempt were skipped" in out and "2 day(s) run" in out


# -- prefect.yaml ----------------------------------------------------------------------------------------------------
def _prefect_yaml() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


@pytest.mark.unit
def test_every_prefect_yaml_entrypoint_imports_as_a_flow():
    from prefect.flows import load_flow_from_entrypoint

    deployments = _prefect_yaml()["deployments"]
    assert {(d["entrypoint"].rsplit(":", 1)[1], d["name"]) for d in deployments} >= {
        ("pipeline", "daily"), ("pipeline", "ad-hoc"), ("ingest", "ad-hoc"), ("refine", "ad-hoc"),
        ("publish", "ad-hoc"), ("backfill", "range"),
    }
    for d in deployments:
        path, name = d["entrypoint"].split(":")
        assert (REPO / path).exists()
        loaded = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        assert loaded.name == name
        assert d["work_pool"]["name"] == "lakehouse"
        assert set(d.get("parameters") or {}) <= set(loaded.parameters.properties)


@pytest.mark.unit
def test_prefect_yaml_daily_schedule_and_no_git_clone():
    from prefect.client.schemas.schedules import CronSchedule

    doc = _prefect_yaml()
    daily = next(d for d in doc["deployments"] if d["name"] == "daily")
    (schedule,) = daily["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # valid cron and zone
    assert daily["parameters"]["timezone"] == schedule["timezone"]  # "yesterday" in the schedule's zone
    steps = [next(iter(step)) for section in ("build", "push", "pull") for step in (doc.get(section) or [])]
    steps += [next(iter(step)) for d in doc["deployments"] for section in ("build", "push", "pull")
              for step in (d.get(section) or [])]
    assert not [s for s in steps if "git" in s]  # the code is on the machine: no clone
    assert [next(iter(step)) for step in doc["pull"]] == ["prefect.deployments.steps.set_working_directory"]


# -- S3 landing through prefect-aws ---------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.s3
def test_s3_bucket_adapter_lists_and_fetches_like_storage(s3_settings):
    from flows.s3_landing import S3BucketStorage, landing_storage
    from lakehouse.storage import Storage

    base = Storage(s3_settings)
    folder = base.landing_dir("pos", "members", DAY)
    base.write_bytes(f"{folder}/members-0001.csv", b"member_id,full_name\n1,Ann\n")
    base.write_bytes(f"{folder}/members-0002.csv", b"member_id,full_name\n2,Bob\n3,Cy\n")
    base.write_bytes(f"{folder}/_partial.csv", b"x")
    base.write_bytes(base.landing_dir("online", "orders", DAY) + "/orders-0001.csv", b"order_id\n1\n")
    adapter = landing_storage(s3_settings)
    assert isinstance(adapter, S3BucketStorage)
    assert adapter.block.bucket_name == s3_settings.landing_root[5:].split("/")[0]
    root = s3_settings.landing_root
    assert adapter.list_dirs(root) == ["online", "pos"] == base.list_dirs(root)
    assert adapter.list_dirs(f"{root}/pos") == ["members"]
    assert adapter.landing_dates("pos", "members") == [DAY]
    assert adapter.list_files(folder) == base.list_files(folder)  # same URIs and fingerprints as the ledger's
    assert [f.name for f in adapter.list_files(folder)] == ["members-0001.csv", "members-0002.csv"]
    assert adapter.read_bytes(f"{folder}/members-0002.csv") == b"member_id,full_name\n2,Bob\n3,Cy\n"
    assert adapter.is_dir(folder) and not adapter.is_dir(f"{folder}-nope")
    assert adapter.exists(f"{folder}/members-0001.csv") and not adapter.exists(f"{folder}/nope.csv")


@pytest.mark.unit
def test_local_landing_keeps_plain_storage(settings):
    from flows.s3_landing import S3BucketStorage, landing_storage

    assert not isinstance(landing_storage(settings), S3BucketStorage)


@pytest.mark.flow
@pytest.mark.s3
def test_ingest_on_s3_lists_and_fetches_landing_through_the_s3_bucket_block(s3_settings, spark, monkeypatch):
    from flows.s3_landing import S3BucketStorage
    from generator import generate
    from lakehouse import delta
    from lakehouse.catalog import bronze_table

    generate(s3_settings, start=DAY, days=1, customers=20, orders_per_day=6, seed=3, bad_share=0.0, formats={},
             progress=False)
    fetched: list[str] = []
    real_read = S3BucketStorage.read_bytes
    monkeypatch.setattr(S3BucketStorage, "read_bytes", lambda self, uri: fetched.append(uri) or real_read(self, uri))

    runs = orch.run_layer(s3_settings, "ingest", DAY)
    assert {r.table_name for r in runs} >= {"bronze.pos_transactions", "bronze.online_orders", "bronze.clickstream_events"}
    assert sum(r.files_loaded for r in runs) == len(fetched) > 0  # every loaded file came through the block
    assert all(uri.startswith(s3_settings.landing_root) for uri in fetched)
    orders = delta.read_table(spark, bronze_table("online", "orders"), s3_settings)
    assert orders.where("_parse_error IS NULL").count() == next(r.rows_out for r in runs if r.table_name == "bronze.online_orders")

    again = orch.run_layer(s3_settings, "ingest", DAY)  # same fingerprints through the block: nothing reloaded
    assert sum(r.files_loaded for r in again) == 0 and sum(r.files_skipped for r in again) == sum(r.files_loaded for r in runs)
