"""API benchmark: one uvicorn worker on 127.0.0.1 over a published gold of 1 million golden customers.

The gold is synthesized directly with pyarrow + deltalake (``api.sample_gold``: golden customers, xref with ~1.6
source records per customer, metrics, loyalty, 3 vouchers and 4 sale lines per customer) and published with
``lakehouse.manifest``; it is reused on later runs. The server is ``lakehouse serve`` (access log on, at INFO, to a
file). Load comes from ``wrk`` (Debian package ``wrk``), one thread, for three routes:

- ``lookup``   GET /v1/customers/lookup?source=online&source_id=C...   (source id -> golden record + source records)
- ``search``   GET /v1/customers/search?email=customer...@example.com  (normalized email search)
- ``vouchers`` GET /v1/customers/{golden_id}/vouchers

and two load shapes:

- **fixed rate 1,000 req/s**: wrk has no rate option (that is wrk2), so the Lua script paces it: wrk's ``delay()``
  hook hands out send slots 1 ms apart (a wall clock through LuaJIT's FFI ``gettimeofday``), shared by 32
  connections on one wrk thread, so the aggregate rate is capped at 1,000 req/s; wrk reports latency percentiles.
  wrk times a request from send to response; a slot missed while every connection waits on the server is dropped,
  not queued (closed loop, coordinated omission), so the achieved rate is reported and the p99 is a lower bound of
  what an open-loop client at 1,000 req/s would see.
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
from lakehouse.processes import stop_process, wait_http_ready  # noqa: E402

RESULTS = REPO / "bench" / "results" / "api.json"
KEY = "lh_bench-key-0123456789abcdefghijklmnopqrstuvwxyzABC"
TARGET_RATE = 1000
FIXED_CONNECTIONS = 32
SATURATION_CONNECTIONS = 32
SCENARIOS = ("lookup", "search", "vouchers")

# Request paths per scenario, for customer number n (Lua string.format and Python % share the format).
PATHS = {
    "lookup": "/v1/customers/lookup?source=online&source_id=C%07d",
    "search": "/v1/customers/search?email=customer%d%%40example.com",
    "vouchers": "/v1/customers/G%09d/vouchers",
}

PACER = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_usec; }} lh_timeval;
int gettimeofday(lh_timeval *tv, void *tz);
]]
local tv = ffi.new("lh_timeval")
local next_slot = 0
local interval = 1000 / {rate}
delay = function()
  ffi.C.gettimeofday(tv, nil)
  local now = tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
  if next_slot < now then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + interval
  return wait
end
"""

LUA = """
wrk.headers["X-API-Key"] = "{key}"
local counter = 0
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_server_cpu(pid: int, measure):
    """Run ``measure()`` and add the server's CPU time per request (contention-independent capacity estimate)."""
    before = cpu_seconds(pid)
    result = measure()
    used = cpu_seconds(pid) - before
    if result["requests"]:
        result["server_cpu_ms_per_request"] = round(used * 1000 / result["requests"], 3)
        result["server_cpu_share"] = round(used / result["seconds"], 2) if result["seconds"] else None
        result["implied_req_per_s_per_free_core"] = round(result["requests"] / used) if used else None
    return result


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
        stop_process(proc)


def wait_idle(pid: int, *, window_s: float = 2.0, max_share: float = 0.05, timeout_s: float = 600) -> float:
    """Wait until the server's background work after start (e.g. per-publication page aggregates) is done: its CPU
    use over a ``window_s`` window drops under ``max_share`` of a core. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if (cpu_seconds(pid) - before) / window_s < max_share:
            break
    return round(time.perf_counter() - t0, 1)


def index_bytes(port: int) -> int | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("lakehouse_api_index_bytes "):
                return int(float(line.split()[1]))
    return None


# -- wrk -------------------------------------------------------------------------------------------------------------
def run_wrk(port: int, scenario: str, customers: int, *, connections: int, seconds: float, rate: float | None,
            offset: int, workdir: Path) -> dict:
    delay = PACER.format(rate=rate) if rate else ""
    script = workdir / f"{scenario}.lua"
    script.write_text(LUA.format(key=KEY, offset=offset, customers=customers, path=PATHS[scenario], delay=delay))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    raw = json.loads(line[len("WRKJSON "):])
    return _summary(raw, connections, rate, " ".join(cmd))


def _summary(raw: dict, connections: int, rate: float | None, command: str) -> dict:
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
        "rate_cap_req_per_s": rate,
        "command": command,
    }


# -- Python fallback (no wrk) ---------------------------------------------------------------------------------------
async def _python_load(port: int, scenario: str, customers: int, connections: int, seconds: float,
                       rate: float | None, offset: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    stop_at = time.perf_counter() + seconds
    counter = [0]
    next_slot = [time.perf_counter()]

    async def pace() -> None:
        """Shared send slots 1/rate apart (missed slots are dropped, like the wrk pacer)."""
        now = time.perf_counter()
        next_slot[0] = max(next_slot[0], now)
        wait = next_slot[0] - now
        next_slot[0] += 1.0 / rate
        if wait > 0:
            await asyncio.sleep(wait)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                if rate:
                    await pace()
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
    return _summary(raw, connections, rate, "python asyncio generator")


def run_python(port: int, scenario: str, customers: int, *, connections: int, seconds: float, rate: float | None,
               offset: int, workdir: Path) -> dict:
    return asyncio.run(_python_load(port, scenario, customers, connections, seconds, rate, offset))


# -- the benchmark ---------------------------------------------------------------------------------------------------
def fixed_rate(run, port: int, scenario: str, customers: int, seconds: float, workdir: Path, *, pid: int) -> dict:
    """TARGET_RATE req/s (paced send slots), measured with the server's CPU time."""
    return with_server_cpu(pid, lambda: run(port, scenario, customers, connections=FIXED_CONNECTIONS, seconds=seconds,
                                            rate=TARGET_RATE, offset=1000, workdir=workdir))


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
        ready = wait_http_ready(port, proc, timeout_s=900, poll_s=0.5)
        load_s = time.perf_counter() - t0
        status = proc_status(proc.pid)
        idx = index_bytes(port)
        settled = wait_idle(proc.pid)
        settled_status = proc_status(proc.pid)
        results["server"].update({
            "background_work_settled_after_s": settled,
            "rss_settled_mb": round(settled_status["VmRSS"] / 1e6, 1),
            "ready_seconds": round(load_s, 1),
            "index_load_seconds": ready["load_seconds"],
            "manifest_version": ready["manifest_version"],
            "rss_idle_no_gold_mb": round(baseline / 1e6, 1),
            "rss_loaded_mb": round(status["VmRSS"] / 1e6, 1),
            "rss_peak_during_load_mb": round(status["VmHWM"] / 1e6, 1),
            "index_arrays_mb": round(idx / 1e6, 1) if idx else None,
        })
        print(f"server ready in {load_s:.1f}s (index {ready['load_seconds']}s), RSS {status['VmRSS'] / 1e6:.0f} MB "
              f"(peak {status['VmHWM'] / 1e6:.0f} MB), index arrays {idx / 1e6 if idx else 0:.0f} MB; background "
              f"work settled after {settled}s, RSS then {settled_status['VmRSS'] / 1e6:.0f} MB")
        for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
            la_before = load_average()
            # Warm up (first requests touch cold pages of the index).
            run(port, scenario, args.customers, connections=4, seconds=2, rate=None, offset=3, workdir=workdir)
            fixed = fixed_rate(run, port, scenario, args.customers, args.duration, workdir, pid=proc.pid)
            saturation = with_server_cpu(proc.pid, lambda: run(
                port, scenario, args.customers, connections=SATURATION_CONNECTIONS, seconds=args.duration,
                rate=None, offset=5000, workdir=workdir))
            results["scenarios"][scenario] = {"path": PATHS[scenario].replace("%%", "%"), "fixed_rate": fixed,
                                              "saturation": saturation,
                                              "load_average_before": la_before, "load_average_after": load_average()}
            print(f"{scenario:9s} ~{TARGET_RATE}/s: {fixed['req_per_s']:7.0f} req/s p50 {fixed['p50_ms']:6.2f} ms "
                  f"p99 {fixed['p99_ms']:6.2f} ms | saturation: {saturation['req_per_s']:7.0f} req/s "
                  f"p50 {saturation['p50_ms']:6.2f} ms p99 {saturation['p99_ms']:6.2f} ms "
                  f"(errors {fixed['errors'] + saturation['errors']}, load avg {la_before[0]}; server CPU "
                  f"{saturation.get('server_cpu_ms_per_request')} ms/req = "
                  f"{saturation.get('implied_req_per_s_per_free_core')} req/s per free core)")
        status = proc_status(proc.pid)
        results["server"]["rss_after_load_mb"] = round(status["VmRSS"] / 1e6, 1)
        per_million = (results["server"]["rss_loaded_mb"] * 1e6 - baseline) / (args.customers / 1e6)
        results["memory_per_million_customers_mb"] = round(per_million / 1e6, 1)
        results["memory_note"] = ("server RSS once the API index is loaded (/ready) minus the RSS of the same "
                                  "server with no gold (imports and app only), per million golden customers with the sample's "
                                  "~1.6 source records, 3 vouchers, 4 sale lines and 0.33 subscription candidates "
                                  "each; rss_settled_mb adds whatever the app computes per publication after "
                                  "that (the HTML pages' aggregates), rss_after_load_mb what the runs added; a reload "
                                  "briefly holds two snapshots (rss_peak_during_load_mb: the build's transient peak)")
    finally:
        stop_process(proc)
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
