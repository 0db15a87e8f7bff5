"""Pages benchmark: server-side page latency over a published gold of 1 million golden customers.

The gold is synthesized with pyarrow + deltalake: ``api.sample_gold`` (golden customers, xref with ~1.6 source records
per customer, metrics, loyalty, 3 vouchers each) plus ``api.pages.sample`` (4 sale/return lines per customer with
times over 90 days, the daily sales, funnel and product marts, identity links and changes, and ``system.pipeline_runs``
/ ``system.quarantine`` for 90 days), published with ``lakehouse.manifest``; it is reused on later runs. The server is
``lakehouse serve`` (one uvicorn worker on 127.0.0.1, production mode, hashed keys). One keep-alive client signs in
and requests each page in turn, sequentially (no concurrency: this is page load latency, not throughput), with a
warm-up first; the latency is the full response (status 200 checked, body read).

Scenarios: overview, customer search page, search by email, search by name (no postcode: the token index), customer
360 (random customers), identity, pipeline health, quarantine drill-down. Also measured: how long after start-up the
first page is served (the repository's load plus the pages' one-off aggregation) and the aggregation time itself.

    .venv/bin/python bench/pages.py                       # 1,000,000 customers, 200 requests per scenario
    .venv/bin/python bench/pages.py --customers 100000 --requests 50

Writes ``bench/results/pages.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.pages.sample import write_page_gold, write_system_tables  # noqa: E402
from api.sample_gold import golden_id, publish_manifest, sample_customer, write_sample_gold  # noqa: E402
from api.security import hash_key  # noqa: E402
from lakehouse.settings import load_settings  # noqa: E402
from lakehouse.processes import stop_process  # noqa: E402

RESULTS = REPO / "bench" / "results" / "pages.json"
KEY = "lh_bench-pages-key-0123456789abcdefghijklmnopqrstuv"
READER = "lh_bench-pages-reader-0123456789abcdefghijklmnopqrs"
DAYS = 90
TARGET_P95_MS = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_gold(data_root: Path, customers: int) -> dict:
    """Write and publish the synthetic gold, or reuse it when the same size was built before."""
    marker = data_root / "bench_pages_gold.json"
    settings = load_settings(data_root=str(data_root))
    if marker.exists() and json.loads(marker.read_text()).get("customers") == customers:
        info = json.loads(marker.read_text())
        info["reused"] = True
        return info
    if data_root.exists():
        shutil.rmtree(data_root)
    t0 = time.perf_counter()
    tables = write_sample_gold(settings, customers=customers)
    tables.update(write_page_gold(settings, customers=customers, days=DAYS))
    write_system_tables(settings, days=DAYS, tables=40, quarantined=min(customers // 20, 50_000))
    version = publish_manifest(settings, tables)
    info = {"customers": customers, "manifest_version": version, "build_seconds": round(time.perf_counter() - t0, 1),
            "rows": {name: t.rows for name, t in tables.items()}}
    marker.write_text(json.dumps(info))
    info["reused"] = False
    return info


def start_server(data_root: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({
        "LAKEHOUSE_DATA_ROOT": str(data_root),
        "LAKEHOUSE_MODE": "production",
        "LAKEHOUSE_API_KEYS": json.dumps([{"name": "bench", "hash": hash_key(KEY), "scopes": ["read", "pii"]},
                                          {"name": "reader", "hash": hash_key(READER), "scopes": ["read"]}]),
    })
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"], cwd=REPO, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--data-root", default=str(Path(tempfile.gettempdir()) / "lakehouse_bench_pages"))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    data_root = Path(args.data_root) / str(args.customers)
    gold = build_gold(data_root, args.customers)
    print(f"gold: {args.customers:,} customers ({'reused' if gold['reused'] else 'built in %ss' % gold['build_seconds']})")
    workdir = Path(tempfile.mkdtemp(prefix="bench_pages_"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.perf_counter()
    proc = start_server(data_root, port, workdir / "server.log")
    results: dict = {}
    try:
        client = httpx.Client(base_url=base, timeout=120.0, cookies={"lh_pages_key": KEY})
        ready_s = None
        deadline = time.time() + 1800
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {workdir / 'server.log'}")
            try:
                r = client.get("/pages/overview")
                if r.status_code == 200:
                    ready_s = time.perf_counter() - t_start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        if ready_s is None:
            raise RuntimeError("pages not ready in 30 minutes")
        footer = re.search(r"page aggregates built [^<]* in ([0-9.]+) s", r.text)
        aggregation_s = float(footer.group(1)) if footer else None
        ready = client.get("/ready").json()
        print(f"first page after {ready_s:.1f}s (gold load {ready.get('load_seconds')}s, page aggregation {aggregation_s}s)")

        rng = random.Random(7)
        n = args.customers
        first_rule = re.search(r'href="(/pages/pipeline/quarantine\?[^"]+)"', client.get("/pages/pipeline").text)
        drill = first_rule.group(1).replace("&amp;", "&") if first_rule else None

        def post_search(q: str, postcode: str = "") -> httpx.Response:
            return client.post("/pages/customers", data={"q": q, "postcode": postcode}, headers={"origin": base})

        scenarios = {
            "overview": lambda: client.get("/pages/overview"),
            "customers": lambda: client.get("/pages/customers"),
            "search_email": lambda: post_search(sample_customer(rng.randrange(n))["email"]),
            "search_name": lambda: post_search(sample_customer(rng.randrange(n))["full_name"]),
            "customer_360": lambda: client.get(f"/pages/customers/{golden_id(rng.randrange(n))}"),
            "identity": lambda: client.get("/pages/identity"),
            "pipeline": lambda: client.get("/pages/pipeline"),
        }
        if drill:
            scenarios["quarantine_drilldown"] = lambda: client.get(drill)
        load_before = os.getloadavg()
        for name, call in scenarios.items():
            for _ in range(args.warmup):
                assert call().status_code == 200, name
            times, sizes = [], []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                resp = call()
                body = resp.content
                times.append((time.perf_counter() - t0) * 1000)
                if resp.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {resp.status_code}")
                sizes.append(len(body))
            results[name] = {
                "requests": len(times), "p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                "p99_ms": round(pct(times, 99), 1), "max_ms": round(max(times), 1),
                "mean_ms": round(statistics.fmean(times), 1), "html_kb": round(statistics.fmean(sizes) / 1024, 1),
                "under_target": pct(times, 95) < TARGET_P95_MS,
            }
            print(f"  {name:22s} p50 {results[name]['p50_ms']:7.1f} ms  p95 {results[name]['p95_ms']:7.1f} ms  "
                  f"p99 {results[name]['p99_ms']:7.1f} ms  ({results[name]['html_kb']} KB)")
        rss = rss_bytes(proc.pid)
        client.close()
    finally:
        stop_process(proc)
    out = {
        "benchmark": "pages",
        "what": "sequential page loads (one keep-alive client, signed in with a read+pii key) against `lakehouse serve`, "
                "one uvicorn worker, over a synthetic published gold; latency = full response, status 200",
        "customers": args.customers,
        "gold": {k: v for k, v in gold.items() if k != "reused"} | {"reused": gold["reused"]},
        "first_page_after_start_s": round(ready_s, 1),
        "gold_load_s": ready.get("load_seconds"),
        "page_aggregation_s": aggregation_s,
        "server_rss_mb": round(rss / 2**20),
        "target_p95_ms": TARGET_P95_MS,
        "all_under_target": all(s["under_target"] for s in results.values()),
        "scenarios": results,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg(), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"all p95 under {TARGET_P95_MS:.0f} ms: {out['all_under_target']} -> {args.out}")
    return 0 if out["all_under_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
