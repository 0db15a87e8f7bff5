"""API soak (issue 8, item 5): ``lakehouse serve`` under a fixed request rate for minutes while the pipeline publishes
three more times, in child processes through the ``lakehouse`` CLI.

Opt-in: it runs only with ``LAKEHOUSE_SOAK=1`` (the default test run skips it), e.g.

    LAKEHOUSE_SOAK=1 .venv/bin/python -m pytest -q tests/test_soak.py                           # 10 min at 500 req/s
    LAKEHOUSE_SOAK=1 LAKEHOUSE_SOAK_SECONDS=120 .venv/bin/python -m pytest -q tests/test_soak.py  # a short try

Set-up: the generator lands four small days; ``lakehouse pipeline`` ingests, refines and publishes the first (manifest
v1) before the server starts. The server is ``lakehouse serve`` (uvicorn, one worker, production mode, one hashed key,
access log on) on 127.0.0.1 and a free port, polling the manifest folder every second; it is stopped by PID.

Load: an open-loop asyncio client in this process sends requests at fixed send slots ``1/rate`` apart over a pool of
keep-alive connections (a slot whose connection is busy waits for one: its queueing counts in the "scheduled"
latency, so a stall cannot hide behind coordinated omission). The routes are mixed (lookup by source id, golden
record, loyalty, vouchers, summary, search by email) and use only ids of the first publication. Every response is
recorded: status, ``X-Manifest-Version``, latency, and whether the body names the expected golden id.

Publications: during the load, ``lakehouse pipeline --date D`` runs for days 2, 3 and 4 (ingest, refine, publish of
the landed day) as child processes, started at 15 s, 35 % and 60 % of the duration (each after the previous one
ended). The load lasts ``LAKEHOUSE_SOAK_SECONDS`` and, if the last publication is not yet seen by clients then, goes
on until it is (at most ``EXTRA_SECONDS`` more; the achieved duration is reported).

Checks:
- zero errors: every response is 2xx, carries a numeric manifest version and names the expected customer. A
  404 or a different golden id would be accepted only if the publication named in the response header really lacks
  that id (read back with deltalake); the count of such explained answers is reported (expected: 0, golden ids are
  stable across these publications). Transport errors and timeouts are errors. The server's own request counters
  (/metrics) must agree with the client's count, and its log must hold no ERROR line or traceback.
- the version never goes backwards: a response must carry a version >= the highest version any client had received
  before that request was sent (causal order, across all connections).
- each publication is picked up: the versions seen by clients are exactly v1 and the three published ones.
- flat memory: warm-up ends once the first in-load publication is picked up AND ``WARMUP_SECONDS`` (default 60) of
  load have passed; the server's RSS at the end of the load must be within 10 % of its RSS at the end of warm-up.

The figures go to ``bench/results/soak.json`` (``LAKEHOUSE_SOAK_OUTPUT`` overrides) before the assertions, so a
failing run leaves its evidence too. A run shorter than the issue's 10 minutes writes them to its pytest temp folder
instead, so a short try never replaces the recorded result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import urllib.request
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import quote

import pytest

from tests.conftest import REPO, free_port
from lakehouse.processes import stop_process, wait_http_ready

SOAK = os.environ.get("LAKEHOUSE_SOAK", "") == "1"
SECONDS = float(os.environ.get("LAKEHOUSE_SOAK_SECONDS", "600"))
RATE = float(os.environ.get("LAKEHOUSE_SOAK_RATE", "500"))
CONNECTIONS = int(os.environ.get("LAKEHOUSE_SOAK_CONNECTIONS", "32"))
WARMUP_SECONDS = float(os.environ.get("LAKEHOUSE_SOAK_WARMUP_SECONDS", "60"))
RECORDED_SECONDS = 600.0  # the 10 minutes: only a run this long replaces bench/results/soak.json by default
OUTPUT = os.environ.get("LAKEHOUSE_SOAK_OUTPUT")
EXTRA_SECONDS = 300.0  # longest the load may run past SECONDS waiting for the last publication to be picked up
MAX_RSS_GROWTH = 0.10
REQUEST_TIMEOUT_S = 10.0


KEY = "lh_soak-test-key-0123456789abcdefghijklmnopqrstuvw"
START = dt.date(2026, 1, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(4)]  # day 1 before the load, days 2-4 published during it
GENERATE = ["--customers", "300", "--orders-per-day", "60", "--seed", "7", "--bad-share", "0.01"]
# Share of each route in the mix (the brief's five routes plus the customer 360).
MIX = {"lookup": 30, "customer": 20, "loyalty": 15, "vouchers": 15, "summary": 5, "search": 15}


# -- processes -------------------------------------------------------------------------------------------------------
def child_env(data_root: Path, **extra: str) -> dict[str, str]:
    """This environment without any LAKEHOUSE_ setting, plus the data root (and ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({"LAKEHOUSE_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1", **extra})
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lakehouse.cli", *args]


def run_cli(args: list[str], env: dict[str, str], log: Path) -> float:
    """Run a ``lakehouse`` command to completion (output to ``log``); its wall seconds. Fails the test on error."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode
    assert rc == 0, f"{' '.join(args[2:])} exited {rc}: {log.read_text()[-2000:]}"
    return time.perf_counter() - t0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def get_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


# -- the published gold, read back independently of the API -------------------------------------------------------
@dataclass
class Published:
    """The ids a publication serves: golden ids, loyalty ids, source id -> golden id, email -> golden ids."""

    version: int
    golden: set[str]
    loyalty: set[str]
    xref: dict[tuple[str, str], str]
    email: dict[str, set[str]]


def read_publication(data_root: Path, version: int) -> Published:
    from deltalake import DeltaTable

    from lakehouse.manifest import read_manifest
    from lakehouse.settings import load_settings

    manifest = read_manifest(load_settings(data_root=str(data_root)), version)

    def rows(name: str, columns: list[str]) -> list[dict]:
        ref = manifest.table(name)
        return DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table(columns=columns).to_pylist()

    golden = rows("golden_customers", ["golden_id", "email"])
    email: dict[str, set[str]] = defaultdict(set)
    for r in golden:
        if r["email"]:
            email[r["email"]].add(r["golden_id"])
    return Published(
        version=version,
        golden={r["golden_id"] for r in golden},
        loyalty={r["golden_id"] for r in rows("loyalty_scores", ["golden_id"])},
        xref={(r["source_system"], r["source_customer_id"]): r["golden_id"]
              for r in rows("customer_xref", ["source_system", "source_customer_id", "golden_id"])},
        email=dict(email),
    )


def manifest_versions(data_root: Path) -> list[int]:
    from lakehouse.manifest import list_versions
    from lakehouse.settings import load_settings

    return list_versions(load_settings(data_root=str(data_root)))


@dataclass(frozen=True)
class Target:
    """One request of the mix: route, path, the key it asks about and the golden id its body must name."""

    route: str
    path: str
    key: tuple[str, ...]
    expect: str


def stable_ids(pubs: list[Published]) -> Published:
    """The ids every one of ``pubs`` serves the same way (golden ids retired by an identity merge are left out)."""
    first, rest = pubs[0], pubs[1:]
    return Published(
        version=first.version,
        golden={g for g in first.golden if all(g in p.golden for p in rest)},
        loyalty={g for g in first.loyalty if all(g in p.loyalty for p in rest)},
        xref={k: g for k, g in first.xref.items() if all(p.xref.get(k) == g for p in rest)},
        email={e: gs for e, gs in first.email.items() if all(p.email.get(e) == gs for p in rest)},
    )


def targets(pub: Published, seed: int = 8) -> list[Target]:
    """A shuffled request cycle over ids of ``pub``, in the proportions of MIX."""
    per_route: dict[str, list[Target]] = {
        "lookup": [Target("lookup", f"/v1/customers/lookup?source={quote(s)}&source_id={quote(i)}", (s, i), g)
                   for (s, i), g in sorted(pub.xref.items())],
        "customer": [Target("customer", f"/v1/customers/{g}", (g,), g) for g in sorted(pub.golden)],
        "loyalty": [Target("loyalty", f"/v1/customers/{g}/loyalty", (g,), g) for g in sorted(pub.loyalty)],
        "vouchers": [Target("vouchers", f"/v1/customers/{g}/vouchers", (g,), g) for g in sorted(pub.golden)],
        "summary": [Target("summary", f"/v1/customers/{g}/summary", (g,), g) for g in sorted(pub.golden)],
        "search": [Target("search", f"/v1/customers/search?email={quote(e, safe='')}", (e,), sorted(gs)[0])
                   for e, gs in sorted(pub.email.items())],
    }
    rnd = random.Random(seed)
    cycle: list[Target] = []
    for route, weight in MIX.items():
        pool = per_route[route]
        assert pool, f"publication v{pub.version} has nothing to ask for route {route}"
        cycle += [rnd.choice(pool) for _ in range(weight * 20)]
    rnd.shuffle(cycle)
    return cycle


def explained(anomaly: dict, pub: Published) -> bool:
    """True when a non-200 or unexpected answer is right for the publication its header names."""
    route, key, status, body = anomaly["route"], tuple(anomaly["key"]), anomaly["status"], anomaly["body"]
    if route == "lookup":
        golden = pub.xref.get(key)
    elif route == "search":
        golden = next(iter(sorted(pub.email.get(key[0], ()))), None)
    elif route == "loyalty":
        golden = key[0] if key[0] in pub.loyalty else None
    else:
        golden = key[0] if key[0] in pub.golden else None
    if golden is None:
        return status == 404 or (route == "search" and status == 200 and '"items":[]' in body)
    return status == 200 and f'"golden_id":"{golden}"' in body


# -- the load ---------------------------------------------------------------------------------------------------------
@dataclass
class Publication:
    day: str
    scheduled_s: float
    started_s: float | None = None
    finished_s: float | None = None
    exit_code: int | None = None
    version: int | None = None
    manifest_seen_s: float | None = None
    picked_up_s: float | None = None


@dataclass
class Soak:
    port: int
    server_pid: int
    cycle: list[Target]
    data_root: Path
    workdir: Path
    rate: float = RATE
    seconds: float = SECONDS
    connections: int = CONNECTIONS
    publisher: Callable[[], Awaitable[None]] | None = None  # default: the three pipeline runs (self._publish)
    # results
    service_s: array = field(default_factory=lambda: array("d"))
    scheduled_s: array = field(default_factory=lambda: array("d"))
    statuses: Counter = field(default_factory=Counter)
    per_route: dict = field(default_factory=lambda: defaultdict(lambda: {"requests": 0, "lat": array("d")}))
    transport_errors: Counter = field(default_factory=Counter)
    missing_version: int = 0
    regressions: list = field(default_factory=list)
    anomalies: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    max_version: int = -1
    sent: int = 0
    completed: int = 0
    rss: list = field(default_factory=list)
    publications: list = field(default_factory=list)
    t0: float = 0.0
    load_seconds: float = 0.0
    max_in_flight: int = 0
    in_flight: int = 0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def _request(self, conn: list, target: Target) -> tuple[int, int | None, bytes]:
        reader, writer = conn
        writer.write(f"GET {target.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, version = 0, None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"x-manifest-version":
                text = value.strip()
                version = int(text) if text.isdigit() else None
        body = await reader.readexactly(length)
        return status, version, body

    async def _one(self, idle: asyncio.Queue, scheduled: float, target: Target) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        conn = await idle.get()
        sent = time.perf_counter()
        floor = self.max_version
        try:
            status, version, body = await asyncio.wait_for(self._request(conn, target), REQUEST_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, then the connection is replaced
            self.transport_errors[exc.__class__.__name__] += 1
            conn[1].close()
            try:
                conn[:] = await self._connect()
            except OSError as again:
                self.transport_errors[f"reconnect {again.__class__.__name__}"] += 1
            idle.put_nowait(conn)
            self.in_flight -= 1
            return
        idle.put_nowait(conn)
        self.in_flight -= 1
        done = time.perf_counter()
        self.completed += 1
        self.service_s.append(done - sent)
        self.scheduled_s.append(done - scheduled)
        stats = self.per_route[target.route]
        stats["requests"] += 1
        stats["lat"].append(done - sent)
        self.statuses[status] += 1
        t = done - self.t0
        if version is None:
            self.missing_version += 1
        else:
            seen = self.versions.setdefault(version, {"first_s": t, "last_s": t, "responses": 0})
            seen["last_s"] = t
            seen["responses"] += 1
            if version < floor:
                self.regressions.append({"at_s": round(t, 3), "version": version, "floor": floor,
                                         "route": target.route})
            self.max_version = max(self.max_version, version)
        if status != 200 or f'"golden_id":"{target.expect}"'.encode() not in body:
            self.anomalies.append({"at_s": round(t, 3), "route": target.route, "key": list(target.key),
                                   "expect": target.expect, "status": status, "version": version,
                                   "body": body[:2000].decode("utf-8", "replace")})

    async def _publish(self) -> None:
        """Run the pipeline for days 2-4, one after the other, each no earlier than its scheduled start."""
        from_s = [15.0, 0.35 * self.seconds, 0.60 * self.seconds]
        env = child_env(self.data_root)
        for day, at in zip(DAYS[1:], from_s):
            pub = Publication(day=day.isoformat(), scheduled_s=at)
            self.publications.append(pub)
            await asyncio.sleep(max(0.0, at - self.now()))
            before = max(manifest_versions(self.data_root))
            pub.started_s = self.now()
            with open(self.workdir / f"pipeline_{day}.log", "w") as log:
                proc = await asyncio.create_subprocess_exec(*cli("pipeline", "--date", day.isoformat()), cwd=REPO,
                                                            env=env, stdout=log, stderr=subprocess.STDOUT)
                while proc.returncode is None:  # note when the manifest appears (before the child exits)
                    if pub.manifest_seen_s is None and max(manifest_versions(self.data_root)) > before:
                        pub.manifest_seen_s = self.now()
                    try:
                        await asyncio.wait_for(proc.wait(), 0.2)
                    except asyncio.TimeoutError:
                        pass
                pub.exit_code = proc.returncode
            pub.finished_s = self.now()
            after = max(manifest_versions(self.data_root))
            if pub.exit_code != 0 or after <= before:
                return  # reported and asserted by the test
            pub.version = after
            if pub.manifest_seen_s is None:
                pub.manifest_seen_s = pub.finished_s
            while self.max_version < after:
                await asyncio.sleep(0.05)
            pub.picked_up_s = self.versions[after]["first_s"]
        await asyncio.sleep(10.0)  # some load on the last publication before the end

    async def _sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append((round(self.now(), 2), rss_bytes(self.server_pid)))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def run(self) -> None:
        """Send at the fixed rate until the duration is over and the last publication was picked up."""
        idle: asyncio.Queue = asyncio.Queue()
        for _ in range(self.connections):
            idle.put_nowait(list(await self._connect()))
        loop_tasks: set[asyncio.Task] = set()
        stop = asyncio.Event()
        self.t0 = time.perf_counter()
        sampler = asyncio.create_task(self._sample_rss(stop))
        publisher = asyncio.create_task((self.publisher or self._publish)())
        i = 0
        n = len(self.cycle)
        while True:
            elapsed = self.now()
            if elapsed >= self.seconds and (publisher.done() or elapsed >= self.seconds + EXTRA_SECONDS):
                break
            due = int(elapsed * self.rate) + 1
            while i < due:
                task = asyncio.create_task(self._one(idle, self.t0 + i / self.rate, self.cycle[i % n]))
                loop_tasks.add(task)
                task.add_done_callback(loop_tasks.discard)
                i += 1
            await asyncio.sleep(0.001)
        self.sent = i
        self.load_seconds = self.now()
        if loop_tasks:
            await asyncio.wait(loop_tasks, timeout=REQUEST_TIMEOUT_S * 2)
        stop.set()
        await sampler
        if not publisher.done():
            publisher.cancel()
        while not idle.empty():
            idle.get_nowait()[1].close()


def run_soak(soak: Soak) -> None:
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(soak.run())
    except ImportError:
        asyncio.run(soak.run())


# -- figures -----------------------------------------------------------------------------------------------------------
def pct(values: array, p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)


def latency(values: array) -> dict:
    return {"p50_ms": pct(values, 50), "p90_ms": pct(values, 90), "p99_ms": pct(values, 99),
            "p999_ms": pct(values, 99.9), "max_ms": round(max(values) * 1000, 2) if values else None}


def server_counts(metrics_text: str) -> Counter:
    """Requests by status on /v1 routes, from the server's /metrics."""
    counts: Counter = Counter()
    for line in metrics_text.splitlines():
        if line.startswith("lakehouse_api_requests_total{") and 'route="/v1/' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[int(status)] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def _output_path(tmp_path: Path) -> Path:
    if OUTPUT:
        return Path(OUTPUT)
    if SECONDS >= RECORDED_SECONDS:
        return REPO / "bench" / "results" / "soak.json"
    return tmp_path / "soak.json"


@pytest.mark.soak
@pytest.mark.flow
@pytest.mark.skipif(not SOAK, reason="opt-in soak test: set LAKEHOUSE_SOAK=1 (LAKEHOUSE_SOAK_SECONDS, default 600)")
@pytest.mark.timeout(int(SECONDS + EXTRA_SECONDS + 900))
def test_api_soak_under_fixed_rate_with_three_publications(tmp_path):
    """500 req/s for 10 minutes (configurable) over three real publications: no errors, versions only move forward,
    every publication reaches clients, RSS at the end within 10 % of RSS after warm-up."""
    from api.security import hash_key

    generate = cli("generate", "--start", START.isoformat(), "--days", str(len(DAYS)), *GENERATE, "--quiet")
    t_setup = time.perf_counter()
    # Rehearsal: the same four days through the pipeline in another folder, to learn which ids all four publications
    # serve (an identity merge retires golden ids: asking for one afterwards is a correct 404, not a soak error).
    rehearsal_root = tmp_path / "rehearsal"
    run_cli(generate, child_env(rehearsal_root), tmp_path / "rehearsal_generate.log")
    rehearsal_s = run_cli(cli("pipeline", "--start", DAYS[0].isoformat(), "--end", DAYS[-1].isoformat()),
                          child_env(rehearsal_root), tmp_path / "rehearsal_pipeline.log")
    assert manifest_versions(rehearsal_root) == [1, 2, 3, 4]
    rehearsed = [read_publication(rehearsal_root, v) for v in (1, 2, 3, 4)]
    stable = stable_ids(rehearsed)

    data_root = tmp_path / "lh"
    env = child_env(data_root)
    generate_s = run_cli(generate, env, tmp_path / "generate.log")
    first_publish_s = run_cli(cli("pipeline", "--date", DAYS[0].isoformat()), env, tmp_path / "pipeline_first.log")
    assert manifest_versions(data_root) == [1]
    first = read_publication(data_root, 1)
    assert first.golden == rehearsed[0].golden and first.xref == rehearsed[0].xref, \
        "the pipeline built a different v1 from the same generated day than in the rehearsal"
    cycle = targets(stable)

    port = free_port()
    server_env = child_env(data_root, LAKEHOUSE_MODE="production", LAKEHOUSE_API_POLL_INTERVAL_S="1",
                           LAKEHOUSE_API_KEYS=json.dumps([{"name": "soak", "hash": hash_key(KEY),
                                                           "scopes": ["read", "pii"]}]))
    server_log = tmp_path / "server.log"
    with open(server_log, "w") as log:
        proc = subprocess.Popen(cli("serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"),
                                cwd=REPO, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    soak = Soak(port=port, server_pid=proc.pid, cycle=cycle, data_root=data_root, workdir=tmp_path)
    load_avg_before = os.getloadavg()
    try:
        t_ready = time.perf_counter()
        ready = wait_http_ready(port, proc)
        ready_s = time.perf_counter() - t_ready
        assert ready["manifest_version"] == 1
        cpu_before = cpu_seconds(proc.pid)
        client_cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        run_soak(soak)
        client_cpu = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu_s = cpu_seconds(proc.pid) - cpu_before
        metrics_text = get_text(port, "/metrics")
        ready_end = get_json(port, "/ready")
        assert proc.poll() is None, f"the server exited with {proc.returncode} during the soak"
    finally:
        stop_process(proc)
    load_avg_after = os.getloadavg()

    # Every anomaly is judged against the publication its response names.
    publications_read: dict[int, Published] = {1: first}
    unexplained, explained_count = [], 0
    for a in soak.anomalies:
        v = a["version"]
        if v is not None and v not in publications_read and v in manifest_versions(data_root):
            publications_read[v] = read_publication(data_root, v)
        if v is not None and v in publications_read and explained(a, publications_read[v]):
            explained_count += 1
        else:
            unexplained.append(a)

    pubs = soak.publications
    published_versions = [p.version for p in pubs]
    seen_versions = sorted(soak.versions)
    first_pickup = pubs[0].picked_up_s if pubs and pubs[0].picked_up_s is not None else None
    warmup_end = max(WARMUP_SECONDS, first_pickup) if first_pickup is not None else None
    rss_warm = next(((t, r) for t, r in soak.rss if warmup_end is not None and t >= warmup_end), None)
    rss_end = soak.rss[-1] if soak.rss else None
    growth = (rss_end[1] - rss_warm[1]) / rss_warm[1] if rss_warm and rss_end else None
    after_warm = [r for t, r in soak.rss if warmup_end is not None and t >= warmup_end]
    server_side = server_counts(metrics_text)
    log_text = server_log.read_text(errors="replace")
    log_problems = [ln for ln in log_text.splitlines()
                    if " ERROR " in ln or " CRITICAL " in ln or "Traceback" in ln][:20]
    non_2xx = sum(n for s, n in soak.statuses.items() if not 200 <= s < 300)
    errors = len(unexplained) + sum(soak.transport_errors.values()) + soak.missing_version + len(soak.regressions)

    figures = {
        "benchmark": "api_soak",
        "command": "LAKEHOUSE_SOAK=1 LAKEHOUSE_SOAK_SECONDS=%g .venv/bin/python -m pytest -q tests/test_soak.py"
                   % SECONDS,
        "config": {"seconds": SECONDS, "rate_req_per_s": RATE, "connections": CONNECTIONS,
                   "warmup": f"until the first in-load publication is picked up by clients and >= {WARMUP_SECONDS:g} "
                             "s of load", "route_mix_percent": MIX, "request_timeout_s": REQUEST_TIMEOUT_S,
                   "server": "lakehouse serve (uvicorn, 1 worker, uvloop+httptools, production mode, access log at "
                             "INFO to a file), manifest poll every 1 s",
                   "client": "open-loop asyncio (uvloop) in the pytest process, fixed send slots, keep-alive pool"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_avg_before],
                    "load_average_after": [round(x, 2) for x in load_avg_after]},
        "gold": {"generate": " ".join(GENERATE) + f" --days {len(DAYS)} --start {START}",
                 "v1_golden_customers": len(first.golden), "v1_source_records": len(first.xref),
                 "customers_at_end": ready_end.get("customers"),
                 "distinct_requests_in_cycle": len(set(cycle)),
                 "ids_asked": "golden ids, loyalty ids, source ids and emails served identically by all four "
                              "publications (learnt from a rehearsal of the same days in another folder)",
                 "v1_golden_ids_left_out_as_retired_later": len(rehearsed[0].golden - stable.golden),
                 "v1_source_ids_left_out_as_moved_later": len(rehearsed[0].xref) - len(stable.xref),
                 "rehearsal_pipeline_seconds_4_days": round(rehearsal_s, 1),
                 "generate_seconds": round(generate_s, 1), "first_pipeline_seconds": round(first_publish_s, 1),
                 "server_ready_seconds": round(ready_s, 1),
                 "setup_seconds": round(t_ready - t_setup, 1)},
        "load": {
            "seconds": round(soak.load_seconds, 1), "requests_sent": soak.sent, "responses": soak.completed,
            "rate_achieved_req_per_s": round(soak.completed / soak.load_seconds, 1) if soak.load_seconds else 0,
            "status_counts": {str(k): v for k, v in sorted(soak.statuses.items())},
            "max_in_flight": soak.max_in_flight,
            "latency_from_send": latency(soak.service_s),
            "latency_from_scheduled_slot": latency(soak.scheduled_s),
            "per_route": {r: {"requests": s["requests"], **latency(s["lat"])} for r, s in sorted(soak.per_route.items())},
            "server_cpu_seconds": round(server_cpu_s, 1),
            "server_cpu_ms_per_request": round(server_cpu_s * 1000 / soak.completed, 3) if soak.completed else None,
            "client_cpu_seconds": round(client_cpu.ru_utime + client_cpu.ru_stime
                                        - client_cpu_before.ru_utime - client_cpu_before.ru_stime, 1),
        },
        "errors": {
            "total": errors, "non_2xx": non_2xx, "transport": dict(soak.transport_errors),
            "missing_version_header": soak.missing_version, "version_regressions": len(soak.regressions),
            "unexplained_answers": len(unexplained), "explained_by_publication": explained_count,
            "examples": (unexplained + soak.regressions)[:10],
            "explained_examples": [a for a in soak.anomalies if a not in unexplained][:5],
            "server_metrics_v1_status_counts": {str(k): v for k, v in sorted(server_side.items())},
            "server_log_problem_lines": log_problems,
        },
        "publications": [
            {**{k: round(x, 2) if isinstance(x, float) else x for k, x in p.__dict__.items()},
             "pipeline_seconds": round(p.finished_s - p.started_s, 1) if p.finished_s else None,
             "pickup_after_manifest_s": round(p.picked_up_s - p.manifest_seen_s, 2)
             if p.picked_up_s is not None and p.manifest_seen_s is not None else None}
            for p in pubs],
        "versions_seen": {str(v): {k: round(x, 2) if isinstance(x, float) else x for k, x in d.items()}
                          for v, d in sorted(soak.versions.items())},
        "memory": {
            "warmup_end_s": round(warmup_end, 1) if warmup_end is not None else None,
            "rss_after_warmup_mb": round(rss_warm[1] / 1e6, 1) if rss_warm else None,
            "rss_after_warmup_at_s": rss_warm[0] if rss_warm else None,
            "rss_end_mb": round(rss_end[1] / 1e6, 1) if rss_end else None,
            "rss_end_at_s": rss_end[0] if rss_end else None,
            "growth_percent": round(growth * 100, 2) if growth is not None else None,
            "limit_percent": MAX_RSS_GROWTH * 100,
            "rss_max_after_warmup_mb": round(max(after_warm) / 1e6, 1) if after_warm else None,
            "rss_min_after_warmup_mb": round(min(after_warm) / 1e6, 1) if after_warm else None,
            "rss_start_mb": round(soak.rss[0][1] / 1e6, 1) if soak.rss else None,
            "rss_every_10s_mb": [[t, round(r / 1e6, 1)] for t, r in soak.rss[::10]],
        },
    }
    figures["passed"] = {
        "zero_errors": errors == 0 and non_2xx == 0,
        "versions_never_backwards": not soak.regressions,
        "every_publication_picked_up": seen_versions == [1, *published_versions] and None not in published_versions,
        "flat_memory": growth is not None and abs(growth) <= MAX_RSS_GROWTH,
        "rate_held": soak.load_seconds > 0 and soak.completed / soak.load_seconds >= 0.98 * RATE,
    }
    output = _output_path(tmp_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"soak figures: {output}")

    assert len(pubs) == 3 and all(p.exit_code == 0 for p in pubs), \
        f"a pipeline run failed: {[p.__dict__ for p in pubs]} (logs in {tmp_path})"
    assert None not in published_versions and published_versions == sorted(set(published_versions)), published_versions
    assert soak.completed == soak.sent, f"{soak.sent - soak.completed} requests got no response"
    assert not soak.transport_errors, f"transport errors: {dict(soak.transport_errors)}"
    assert soak.missing_version == 0, f"{soak.missing_version} responses without a numeric X-Manifest-Version"
    assert not unexplained, f"{len(unexplained)} wrong answers, e.g. {unexplained[:3]}"
    assert non_2xx == 0 and not soak.anomalies, \
        f"{len(soak.anomalies)} answers differ from the rehearsal (right for their publication, but the pipeline " \
        f"did not repeat the rehearsal's identity), e.g. {soak.anomalies[:3]}"
    assert not soak.regressions, f"version went backwards: {soak.regressions[:5]}"
    assert seen_versions == [1, *published_versions], f"clients saw {seen_versions}, published {published_versions}"
    assert server_side.get(200, 0) == soak.statuses.get(200, 0) and sum(server_side.values()) == soak.completed, \
        f"server counted {dict(server_side)}, client {dict(soak.statuses)}"
    assert not log_problems, f"server log: {log_problems}"
    assert figures["passed"]["rate_held"], f"achieved {figures['load']['rate_achieved_req_per_s']} req/s of {RATE}"
    assert growth is not None and abs(growth) <= MAX_RSS_GROWTH, f"RSS after warm-up -> end: {figures['memory']}"


# -- the checks themselves can fail (fast, always run) ------------------------------------------------------------
def _published(version: int, golden: set[str], xref: dict, loyalty: set[str] | None = None) -> Published:
    return Published(version=version, golden=golden, loyalty=golden if loyalty is None else loyalty, xref=xref,
                     email={f"{g}@example.com": {g} for g in golden})


@pytest.mark.unit
def test_stable_ids_leave_out_retired_and_moved_ids():
    v1 = _published(1, {"g1", "g2", "g3"}, {("pos", "1"): "g1", ("pos", "2"): "g2", ("pos", "3"): "g3"})
    v2 = _published(2, {"g1", "g3"}, {("pos", "1"): "g1", ("pos", "2"): "g3", ("pos", "3"): "g3"}, loyalty={"g3"})
    stable = stable_ids([v1, v2])
    assert stable.golden == {"g1", "g3"} and stable.loyalty == {"g3"}
    assert stable.xref == {("pos", "1"): "g1", ("pos", "3"): "g3"}
    assert set(stable.email) == {"g1@example.com", "g3@example.com"}


@pytest.mark.unit
def test_an_answer_is_explained_only_by_what_its_publication_serves():
    pub = _published(3, {"g1"}, {("pos", "1"): "g1", ("pos", "2"): "g1"})

    def anomaly(route, key, status, body=""):
        return {"route": route, "key": list(key), "status": status, "body": body}

    assert explained(anomaly("customer", ["g2"], 404), pub)             # retired id: 404 is right
    assert not explained(anomaly("customer", ["g1"], 404), pub)         # served id: 404 is an error
    assert not explained(anomaly("customer", ["g2"], 500), pub)
    assert explained(anomaly("lookup", ["pos", "2"], 200, '{"golden_id":"g1"}'), pub)  # moved to g1 in v3
    assert not explained(anomaly("lookup", ["pos", "2"], 200, '{"golden_id":"g9"}'), pub)
    assert not explained(anomaly("loyalty", ["g1"], 404), pub)


@pytest.mark.unit
def test_soak_client_counts_every_bad_answer(tmp_path):
    """The load client against a fake server that misbehaves on purpose: a version going backwards, 404s, answers
    without a version header and with the wrong customer are all caught, and every request is accounted for."""
    served = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            n = served[0]
            served[0] += 1
            golden = head.split()[1].decode().rsplit("/", 1)[1]
            status, version = 200, (1 if 100 <= n < 110 else 2 if n >= 50 else 1)  # 100-109 go back to v1
            if n % 97 == 13:
                status = 404
            if n % 101 == 7:
                version = None
            if n % 89 == 5:
                golden = "someone-else"
            body = f'{{"golden_id":"{golden}"}}'.encode()
            extra = f"x-manifest-version: {version}\r\n" if version is not None else ""
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)
            await writer.drain()
        writer.close()

    async def main() -> Soak:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cycle = [Target("customer", f"/v1/customers/g{i}", (f"g{i}",), f"g{i}") for i in range(7)]
        soak = Soak(port=port, server_pid=os.getpid(), cycle=cycle, data_root=tmp_path, workdir=tmp_path, rate=200,
                    seconds=1.5, connections=4, publisher=lambda: asyncio.sleep(0))
        await soak.run()
        server.close()
        return soak

    soak = asyncio.run(main())
    assert soak.sent >= 250 and soak.completed == soak.sent == served[0]
    assert soak.regressions and {r["version"] for r in soak.regressions} == {1}
    assert soak.missing_version == len([n for n in range(served[0]) if n % 101 == 7])
    assert soak.statuses[404] == len([n for n in range(served[0]) if n % 97 == 13])
    wrong = [a for a in soak.anomalies if a["status"] == 200]
    assert len(wrong) == len([n for n in range(served[0]) if n % 89 == 5 and n % 97 != 13])
    assert set(soak.versions) == {1, 2} and soak.rss
