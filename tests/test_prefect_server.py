"""Prefect end to end against a real local server (one per module): deploy prefect.yaml, run the ad-hoc pipeline
deployment through a process worker on a generated day, check the published gold and the artifacts through the API,
the cron deployment's scheduled runs, I/O-only retries, and a crash that leaves the manifest in force."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from lakehouse.processes import stop_process

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY1 = dt.date(2026, 1, 5)
DAY2 = DAY1 + dt.timedelta(days=1)
STARTUP_TIMEOUT_S = 180
RUN_TIMEOUT_S = 600

pytestmark = pytest.mark.flow


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process we started, by its PID."""
    stop_process(proc, grace_s=30)


class Server:
    """A running Prefect server: its API URL, environment for child processes, and log folder."""

    def __init__(self, url: str, env: dict[str, str], logs: Path) -> None:
        self.url, self.env, self.logs = url, env, logs

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.logs / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A Prefect server on 127.0.0.1 and a free port, PREFECT_HOME in tmp, telemetry off; stopped by PID."""
    base = tmp_path_factory.mktemp("prefect")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(base / "home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",  # the tests use the API only; skips building the UI bundle
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    log = open(base / "server.log", "w")
    # `lakehouse server` execs `prefect server start --host 127.0.0.1 --port P` (telemetry off), so PID is the server's
    proc = subprocess.Popen(
        [str(BIN / "lakehouse"), "server", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start:\n{(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(url, env, base)
    finally:
        try:
            from prefect.logging.handlers import APILogHandler

            APILogHandler.flush()  # send this process's buffered run logs while the server is still up
        except Exception:  # noqa: BLE001 - best effort
            pass
        _stop(proc)
        log.close()


@pytest.fixture
def prefect_api(prefect_server, monkeypatch):
    """Point this process's Prefect client at the test server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_server.url)
    # this process's run logs stay local: nothing is left to send when the server stops
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url, PREFECT_LOGGING_TO_API_ENABLED: False}):
        yield prefect_server


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _artifacts(flow_run_id) -> list:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


# -- in-process flows against the server -----------------------------------------------------------------------------
@pytest.fixture
def fake_layers(monkeypatch):
    from test_prefect_flows import FakeLayers

    fake = FakeLayers()
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def test_server_runs_with_telemetry_off_and_its_home_in_tmp(prefect_server):
    settings = httpx.get(f"{prefect_server.url}/admin/settings", timeout=10).json()
    assert settings["server"]["analytics_enabled"] is False
    assert settings["home"] == prefect_server.env["PREFECT_HOME"]


def test_pipeline_flow_posts_artifacts_and_tags_runs_with_its_flow_run_id(prefect_api, settings, fake_layers, monkeypatch):
    from flows import prefect_flows

    monkeypatch.setattr(prefect_flows, "load_settings", lambda: settings)
    built = []
    monkeypatch.setattr(prefect_flows, "build_docs", lambda s: built.append(s) or "/docs/_data_docs/site/index.html")
    state = prefect_flows.pipeline(day=DAY1, return_state=True)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    assert set(fake_layers.flow_run_ids) == {str(flow_run_id)}  # record_runs picks it up from flow_run_scope
    arts = {a.key: a for a in _artifacts(flow_run_id)}
    assert {"ingest-summary", "ingest-counts", "refine-summary", "refine-counts", "publish-summary", "publish-counts",
            "data-docs"} <= set(arts)
    assert arts["publish-summary"].type == "markdown" and "# publish 2026-01-05" in arts["publish-summary"].data
    assert arts["ingest-counts"].type == "table" and "ingest.all" in arts["ingest-counts"].data
    assert "file:///docs/_data_docs/site/index.html" in arts["data-docs"].data and len(built) == 1
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    expected = {"ingest-bronze-2026-01-05", "refine-orders-2026-01-05", "publish-gold-2026-01-05"}
    deadline = time.monotonic() + 60  # task run states reach the server as events, a moment after the flow ends
    with _client() as client:
        while True:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            names = {t.name for t in tasks}
            if expected <= names or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert expected <= names


def test_a_failed_layer_fails_the_flow_run_with_a_failure_artifact(prefect_api, settings, fake_layers, monkeypatch):
    from flows import prefect_flows
    from flows.locks import held_locks
    from lakehouse.errors import QualityGateFailed

    monkeypatch.setattr(prefect_flows, "load_settings", lambda: settings)
    error = QualityGateFailed("silver.orders: rule order_total_not_negative failed on 3 rows")
    error.rules = [{"name": "order_total_not_negative", "severity": "fail", "success": False, "unexpected_count": 3}]
    fake_layers.fail_on[("refine", DAY2)] = error
    state = prefect_flows.pipeline(day=DAY2, return_state=True)
    assert state.is_failed()
    arts = {a.key: a for a in _artifacts(state.state_details.flow_run_id)}
    assert "FAILED" in arts["refine-summary"].data and "order_total_not_negative" in arts["refine-summary"].data
    assert "publish-summary" not in arts  # publish never ran
    assert held_locks(settings) == []


def test_units_retry_on_io_errors_only(prefect_api):
    from prefect import flow

    from flows.prefect_flows import prefect_runner
    from lakehouse.errors import LakehouseError

    attempts = {"io": 0, "data": 0}

    def flaky_io():
        attempts["io"] += 1
        if attempts["io"] == 1:
            raise ConnectionResetError("connection reset by peer")
        return []

    def bad_data():
        attempts["data"] += 1
        raise LakehouseError("landing file x.csv: column `qty` missing")

    @flow(name="retry-probe")
    def probe(kind: str):
        return prefect_runner("ingest", kind, DAY1, flaky_io if kind == "io" else bad_data)

    assert probe("io", return_state=True).is_completed()
    assert attempts["io"] == 2
    assert probe("data", return_state=True).is_failed()
    assert attempts["data"] == 1


# -- deployments, worker, the real pipeline --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory):
    """Generate a small landing day, deploy prefect.yaml with `lakehouse deploy`, and start `lakehouse worker`."""
    from generator import generate
    from lakehouse.settings import load_settings

    data_root = tmp_path_factory.mktemp("lakehouse") / "lh"
    settings = load_settings(data_root=str(data_root), spark_remote=None)
    generate(settings, start=DAY1, days=2, customers=60, orders_per_day=25, seed=7, bad_share=0.02, formats={},
             progress=False)
    env = {k: v for k, v in prefect_server.env.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_DATA_ROOT"] = str(data_root)
    done = subprocess.run([str(BIN / "lakehouse"), "deploy", "--api-url", prefect_server.url], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    log = open(prefect_server.logs / "worker.log", "w")
    worker = subprocess.Popen([str(BIN / "lakehouse"), "worker", "--api-url", prefect_server.url], env=env, cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        yield types.SimpleNamespace(settings=settings, env=env, worker=worker)
    finally:
        _stop(worker)
        log.close()


def _wait_final(flow_run_id, server: Server):
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with _client() as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run still {run.state} after {RUN_TIMEOUT_S}s\n{server.log_tail('worker.log')}")
            time.sleep(2)


def test_cron_deployment_creates_scheduled_runs_for_yesterday(prefect_api, deployed):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    with _client() as client:
        daily = client.read_deployment_by_name("pipeline/daily")
        (schedule,) = daily.schedules
        assert schedule.schedule.cron == "30 2 * * *" and schedule.active
        assert daily.parameters.get("timezone") == schedule.schedule.timezone
        deadline = time.monotonic() + 90
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[daily.id])))
            scheduled = [r for r in runs if r.state is not None and r.state.is_scheduled()]
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert scheduled, "the scheduler created no runs for pipeline/daily"
    now = dt.datetime.now(dt.timezone.utc)
    for run in scheduled:
        start = run.expected_start_time
        assert start > now - dt.timedelta(minutes=5)
        assert (start.hour, start.minute) == (2, 30)
        assert run.parameters.get("day") is None  # the flow computes yesterday from the scheduled time


def test_adhoc_pipeline_deployment_publishes_gold_with_artifacts(prefect_api, deployed):
    from prefect.deployments import run_deployment

    from lakehouse.manifest import latest_manifest

    flow_run = run_deployment("pipeline/ad-hoc", parameters={"day": DAY1.isoformat()}, timeout=0)
    final = _wait_final(flow_run.id, prefect_api)
    assert final.state.is_completed(), f"{final.state}\n{prefect_api.log_tail('worker.log', 120)}"

    manifest = latest_manifest(deployed.settings)
    assert manifest is not None and manifest.run_date == DAY1.isoformat()
    assert {"gold.golden_customers", "gold.fact_sales", "gold.loyalty_scores"} <= set(manifest.tables)
    from deltalake import DeltaTable

    fact = manifest.table("gold.fact_sales")
    published = DeltaTable(fact.location, version=fact.delta_version).to_pyarrow_table(columns=["sales_key"])
    assert published.num_rows > 0 and published.num_rows == (fact.rows if fact.rows is not None else published.num_rows)

    arts = {a.key: a for a in _artifacts(flow_run.id)}
    assert {"ingest-summary", "ingest-counts", "refine-summary", "refine-counts", "publish-summary", "publish-counts",
            "data-docs"} <= set(arts)
    assert "bronze.pos_transactions" in arts["ingest-counts"].data
    assert f"manifest in force: **v{manifest.version}**" in arts["publish-summary"].data

    from lakehouse.catalog import PIPELINE_RUNS

    runs = DeltaTable(PIPELINE_RUNS.location(deployed.settings)).to_pyarrow_table(
        columns=["layer", "flow_run_id", "run_date"]).to_pylist()
    layers = {r["layer"] for r in runs if r["flow_run_id"] == str(flow_run.id)}
    assert len(layers) >= 3, layers  # bronze, silver and gold rows all carry the flow run id


def test_crash_before_the_manifest_keeps_the_last_publication_and_a_rerun_completes(
    prefect_api, deployed, spark, monkeypatch
):
    """Runs after the ad-hoc deployment test (same data root): day 2 crashes in publish, then is rerun."""
    from deltalake import DeltaTable

    from flows import orchestration as orch
    from flows.locks import held_locks
    from lakehouse import manifest as manifest_mod

    settings = deployed.settings
    before = manifest_mod.latest_manifest(settings)
    assert before is not None and before.run_date == DAY1.isoformat()

    def crash(*args, **kwargs):
        raise RuntimeError("power cut before the manifest was written")

    publish_mod = orch.layer_module("publish")  # imported before patching, so it keeps the real function after
    with monkeypatch.context() as patch:
        patch.setattr(manifest_mod, "write_manifest", crash)
        if hasattr(publish_mod, "write_manifest"):
            patch.setattr(publish_mod, "write_manifest", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            orch.run_day(settings, DAY2)
    after_crash = manifest_mod.latest_manifest(settings)
    assert after_crash.version == before.version  # readers still see the last publication
    for name in before.tables:
        ref = before.table(name)
        table = DeltaTable(ref.location, version=ref.delta_version, storage_options=settings.delta_storage_options() or None)
        if ref.rows is not None:
            assert table.to_pyarrow_table().num_rows == ref.rows, name
    assert held_locks(settings) == []  # the crash released the day

    result = orch.run_day(settings, DAY2)
    final = manifest_mod.latest_manifest(settings)
    assert final.version == before.version + 1 and final.run_date == DAY2.isoformat()
    assert result.manifest_version == final.version
