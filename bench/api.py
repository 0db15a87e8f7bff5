"""API benchmark: one uvicorn worker on 127.0.0.1 over a published gold of 1 million golden customers.

The gold is synthesized directly with pyarrow + deltalake (``api.sample_gold``: golden customers, xref with ~1.6
source records per customer, metrics, loyalty, 3 vouchers and 4 sale lines per customer) and published with
``lakehouse.manifest``; it is reused on later runs. The server is ``lakehouse serve`` (access log on, at INFO, to a
file). Load comes from ``wrk`` (Debian package ``wrk``), one thread, for three routes:

- ``lookup``   GET /v1/customers/lookup?source=online&source_id=C...   (source id -> golden record + source records)
- ``search``   GET /v1/customers/search?email=customer...@example.com  (normalized email search)
- ``vouchers`` GET /v1/customers/{golden_id}/vouchers

and two load shapes:

- **fixed rate ~1,000 req/s**: wrk has no rate option (that is wrk2), so each of 10 connections waits a fixed pause
  after every response (wrk's Lua ``delay()``); a 3-second pilot calibrates the pause until the achieved rate is
  ~1,000 req/s, then the measured run reports wrk's latency percentiles. wrk times a request from send to response,
  without the pause; this is closed-loop, so a server stall delays later sends instead of queueing them
  (coordinated omission): the p99 here is a lower bound of what an open-loop client at 1,000 req/s would see.
- **saturation**: 32 connections, no pause; requests/s and latency at the highest rate one worker sustains.

Without ``wrk`` a Python asyncio generator (keep-alive HTTP/1.1, same shapes) is used instead; the JSON says which.
Prints a table and writes ``bench/results/api.json`` (req/s, p50/p99, server RSS, memory per million customers).

    .venv/bin/python bench/api.py                        # 1,000,000 customers, 15 s per measurement
    .venv/bin/python bench/api.py --customers 100000 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.sample_gold import publish_manifest, write_sample_gold  # noqa: E402
from api.security import hash_key  # noqa: E402
from lakehouse.settings import load_settings  # noqa: E402

RESULTS = REPO / "bench" / "results" / "api.json"
KEY = "lh_bench-key-0123456789abcdefghijklmnopqrstuvwxyzABC"
TARGET_RATE = 1000
FIXED_CONNECTIONS = 10
SATURATION_CONNECTIONS = 32
SCENARIOS = ("lookup", "search", "vouchers")

# Request paths per scenario, for customer number n (Lua string.format and Python % share the format).
PATHS = {
    "lookup": "/v1/customers/lookup?source=online&source_id=C%07d",
    "search": "/v1/customers/search?email=customer%d%%40example.com",
    "vouchers": "/v1/customers/G%09d/vouchers",
}

LUA = """
wrk.headers["X-API-Key"] = "{key}"
local counter = 0
local pause = {pause_ms}
request = function()
  counter = counter + 1
  local n = (counter * 104729 + {offset}) % {customers}
  return wrk.format("GET", string.format("{path}", n))
end
{delay}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"non_2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def build_gold(data_root: Path, customers: int) -> dict:
    """Write and publish the synthetic gold, or reuse it when the same size was built before."""
    marker = data_root / "bench_api_gold.json"
    settings = load_settings(data_root=str(data_root))
    if marker.exists() and json.loads(marker.read_text()).get("customers") == customers:
        info = json.loads(marker.read_text())
        info["reused"] = True
        return info
    if data_root.exists():
        shutil.rmtree(data_root)
    t0 = time.perf_counter()
    tables = write_sample_gold(settings, customers=customers)
    version = publish_manifest(settings, tables)
    info = {"customers": customers, "manifest_version": version, "build_seconds": round(time.perf_counter() - t0, 1),
            "rows": {name: t.rows for name, t in tables.items()}}
    marker.write_text(json.dumps(info))
    info["reused"] = False
    return info


def start_server(data_root: Path, port: int, log_path: Path) -> subprocess.Popen:
    """``lakehouse serve`` in its own process (one worker), keys configured as hashes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({
        "LAKEHOUSE_DATA_ROOT": str(data_root),
        "LAKEHOUSE_MODE": "production",
        "LAKEHOUSE_API_KEYS": json.dumps([{"name": "bench", "hash": hash_key(KEY), "scopes": ["read", "pii"]}]),
    })
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "info"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def idle_rss(workdir: Path) -> int:
    """RSS of the same server with nothing published (imports, app, no gold): the baseline for memory per customer."""
    port = free_port()
    proc = start_server(workdir / "empty", port, workdir / "idle.log")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
        time.sleep(1.0)
        return proc_status(proc.pid)["VmRSS"]
    finally:
        stop_server(proc)


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready (see its log)")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout_s}s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def index_bytes(port: int) -> int | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("lakehouse_api_index_bytes "):
                return int(float(line.split()[1]))
    return None


# -- wrk -------------------------------------------------------------------------------------------------------------
def run_wrk(port: int, scenario: str, customers: int, *, connections: int, seconds: float, pause_ms: float,
            offset: int, workdir: Path) -> dict:
    delay = f"delay = function() return {pause_ms:.3f} end" if pause_ms > 0 else ""
    script = workdir / f"{scenario}.lua"
    script.write_text(LUA.format(key=KEY, pause_ms=pause_ms, offset=offset, customers=customers,
                                 path=PATHS[scenario], delay=delay))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    raw = json.loads(line[len("WRKJSON "):])
    return _summary(raw, connections, pause_ms, " ".join(cmd))


def _summary(raw: dict, connections: int, pause_ms: float, command: str) -> dict:
    seconds = raw["duration_us"] / 1e6
    errors = raw["non_2xx"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "req_per_s": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "p999_ms": round(raw["p999_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "errors": errors,
        "connections": connections,
        "pause_ms": round(pause_ms, 3),
        "command": command,
    }


# -- Python fallback (no wrk) ---------------------------------------------------------------------------------------
async def _python_load(port: int, scenario: str, customers: int, connections: int, seconds: float, pause_ms: float,
                       offset: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    stop_at = time.perf_counter() + seconds
    counter = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                counter[0] += 1
                n = (counter[0] * 104729 + offset) % customers
                path = PATHS[scenario] % n
                request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n".encode()
                t0 = time.perf_counter()
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors[0] += 1
                if pause_ms > 0:
                    await asyncio.sleep(pause_ms / 1000)
        finally:
            writer.close()

    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t_start
    lat = sorted(latencies)

    def pct(p: float) -> int:
        return int(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e6) if lat else 0

    raw = {"requests": len(lat), "duration_us": int(elapsed * 1e6), "non_2xx": errors[0], "connect_errors": 0,
           "read_errors": 0, "write_errors": 0, "timeouts": 0, "p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99),
           "p999_us": pct(99.9), "max_us": int(lat[-1] * 1e6) if lat else 0}
    return _summary(raw, connections, pause_ms, "python asyncio generator")


def run_python(port: int, scenario: str, customers: int, *, connections: int, seconds: float, pause_ms: float,
               offset: int, workdir: Path) -> dict:
    return asyncio.run(_python_load(port, scenario, customers, connections, seconds, pause_ms, offset))


# -- the benchmark ---------------------------------------------------------------------------------------------------
def fixed_rate(run, port: int, scenario: str, customers: int, seconds: float, workdir: Path) -> dict:
    """Calibrate the per-connection pause to ~TARGET_RATE req/s with short pilots, then measure."""
    pause = FIXED_CONNECTIONS * 1000.0 / TARGET_RATE  # ms, before subtracting the latency
    pilots = []
    for attempt in range(4):
        pilot = run(port, scenario, customers, connections=FIXED_CONNECTIONS, seconds=3, pause_ms=pause,
                    offset=7 + attempt, workdir=workdir)
        pilots.append({"pause_ms": pilot["pause_ms"], "req_per_s": pilot["req_per_s"]})
        if pilot["req_per_s"] <= 0:
            break
        per_request_ms = FIXED_CONNECTIONS * 1000.0 / pilot["req_per_s"]  # pause + latency + overhead, measured
        overhead = per_request_ms - pause
        if abs(pilot["req_per_s"] - TARGET_RATE) / TARGET_RATE < 0.03:
            break
        pause = max(0.1, FIXED_CONNECTIONS * 1000.0 / TARGET_RATE - overhead)
    result = run(port, scenario, customers, connections=FIXED_CONNECTIONS, seconds=seconds, pause_ms=pause,
                 offset=1000, workdir=workdir)
    result["calibration"] = pilots
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--data-root", default=str(Path(tempfile.gettempdir()) / "lakehouse_bench_api"),
                        help="where the synthetic gold is built (reused when the size matches)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    data_root = Path(args.data_root) / f"{args.customers}"
    gold = build_gold(data_root, args.customers)
    print(f"gold: {args.customers:,} customers ({'reused' if gold['reused'] else 'built in %ss' % gold['build_seconds']})")

    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    run = run_wrk if use_wrk else run_python
    generator = "wrk " + subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0] \
        if use_wrk else "python asyncio (wrk not installed: apt-get install -y wrk)"
    if not use_wrk:
        print("wrk not found: falling back to the Python asyncio load generator (apt-get install -y wrk)")

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench_api_"))
    log_path = workdir / "server.log"
    baseline = idle_rss(workdir)
    t0 = time.perf_counter()
    proc = start_server(data_root, port, log_path)
    results: dict = {
        "benchmark": "api",
        "customers": args.customers,
        "gold": gold,
        "load_generator": generator,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "server": {"command": "lakehouse serve --host 127.0.0.1 --port <free> (uvicorn, 1 worker, uvloop+httptools, "
                              "access log at INFO)", "pid": proc.pid},
        "targets": {"lookup_p99_ms_at_1000_rps": 10.0, "lookup_saturation_rps": 3000.0},
        "scenarios": {},
    }
    try:
        ready = wait_ready(port, proc, timeout_s=900)
        load_s = time.perf_counter() - t0
        status = proc_status(proc.pid)
        idx = index_bytes(port)
        results["server"].update({
            "ready_seconds": round(load_s, 1),
            "index_load_seconds": ready["load_seconds"],
            "manifest_version": ready["manifest_version"],
            "rss_idle_no_gold_mb": round(baseline / 1e6, 1),
            "rss_loaded_mb": round(status["VmRSS"] / 1e6, 1),
            "rss_peak_during_load_mb": round(status["VmHWM"] / 1e6, 1),
            "index_arrays_mb": round(idx / 1e6, 1) if idx else None,
        })
        print(f"server ready in {load_s:.1f}s (index {ready['load_seconds']}s), RSS {status['VmRSS'] / 1e6:.0f} MB "
              f"(peak {status['VmHWM'] / 1e6:.0f} MB), index arrays {idx / 1e6 if idx else 0:.0f} MB")
        for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
            la_before = load_average()
            # Warm up (first requests touch cold pages of the index).
            run(port, scenario, args.customers, connections=4, seconds=2, pause_ms=0, offset=3, workdir=workdir)
            fixed = fixed_rate(run, port, scenario, args.customers, args.duration, workdir)
            saturation = run(port, scenario, args.customers, connections=SATURATION_CONNECTIONS,
                             seconds=args.duration, pause_ms=0, offset=5000, workdir=workdir)
            results["scenarios"][scenario] = {"path": PATHS[scenario].replace("%%", "%"), "fixed_rate": fixed,
                                              "saturation": saturation,
                                              "load_average_before": la_before, "load_average_after": load_average()}
            print(f"{scenario:9s} ~{TARGET_RATE}/s: {fixed['req_per_s']:7.0f} req/s p50 {fixed['p50_ms']:6.2f} ms "
                  f"p99 {fixed['p99_ms']:6.2f} ms | saturation: {saturation['req_per_s']:7.0f} req/s "
                  f"p50 {saturation['p50_ms']:6.2f} ms p99 {saturation['p99_ms']:6.2f} ms "
                  f"(errors {fixed['errors'] + saturation['errors']}, load avg {la_before[0]})")
        status = proc_status(proc.pid)
        results["server"]["rss_after_load_mb"] = round(status["VmRSS"] / 1e6, 1)
        per_million = (status["VmRSS"] - baseline) / (args.customers / 1e6)
        results["memory_per_million_customers_mb"] = round(per_million / 1e6, 1)
        results["memory_note"] = ("server RSS after the runs minus the RSS of the same server with no gold "
                                  "(imports and app only), per million golden customers with the sample's "
                                  "~1.6 source records, 3 vouchers, 4 sale lines and 0.33 subscription candidates "
                                  "each; a reload briefly holds two snapshots (rss_peak_during_load_mb shows the "
                                  "build's transient peak)")
    finally:
        stop_server(proc)
        results["server"]["log_tail"] = log_path.read_text()[-600:] if log_path.exists() else ""
    lookup = results["scenarios"].get("lookup")
    if lookup:
        results["targets_met"] = {
            "lookup_p99_at_1000_rps": lookup["fixed_rate"]["p99_ms"] <= 10.0,
            "lookup_saturation_3000_rps": lookup["saturation"]["req_per_s"] >= 3000.0,
        }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"memory per million customers: {results.get('memory_per_million_customers_mb')} MB; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
