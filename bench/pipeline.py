"""Benchmark: the whole pipeline (landing -> bronze -> silver -> gold + publish) on Sail, then on classic Apache Spark.

    .venv/bin/python bench/pipeline.py                          # ~1M order lines, 7 days; three engine runs
    .venv/bin/python bench/pipeline.py --order-lines 50000      # a quick run
    .venv/bin/python bench/pipeline.py --engines sail-delta     # Sail only (no JVM needed)
    .venv/bin/python bench/pipeline.py --engines sail-delta --repeat 3   # the median of three runs, with the spread

Steps:

1. **landing**: ``lakehouse generate`` (a subprocess) lands N days of every source at the asked scale: about
   ``--order-lines`` order lines in total (online + POS) with matching customers, clickstream and inventory.
2. For each engine configuration, in a fresh warehouse over the same landing files, a child process runs the layers
   through the pipeline's own entry points (``flows.orchestration.run_layer``): **bronze** = ingest every day,
   **silver** = refine every day, **gold** = publish the last day (identity, every gold table, the gold gates and the
   manifest). Per layer it measures wall time, CPU time of the process *and* the engine (Sail runs in-process; the
   JVM of Apache Spark is a child process whose CPU is read from /proc), the peak resident memory of process + JVM
   (sampled every 0.2 s), and rows/s (input rows of the layer / wall time). With ``--refine-batch-days N`` silver
   runs as a catch-up (``lakehouse refine --batch-days N``: N consecutive days as one batch per table), and bronze
   ingests every day in one call (``lakehouse ingest`` over the date range), the way a new warehouse or one behind by
   several days is filled; the default runs both day by day like the daily pipeline.
3. Engine configurations (``--engines``):
   - ``sail-delta``: embedded Sail, Delta tables (the headline figure);
   - ``sail-parquet`` and ``spark-parquet``: Sail and Apache Spark 4.2 (JVM ``pyspark``, ``local[2]`` through Spark
     Connect, started by :mod:`lakehouse.spark`) with ``LAKEHOUSE_TABLE_FORMAT=parquet``: the same flows, the engine
     reading and writing plain Parquet (no Delta jars here), MERGE/DELETE emulated copy-on-write (see
     :mod:`lakehouse.parquet_tables`). Their ratio per layer is the like-for-like engine comparison. The Spark run uses
     the ``.venv-spark`` virtualenv (:mod:`bench.spark_venv`; built on first use).
4. The runs must agree: row counts of every silver and gold table are compared between engines.

Before the first engine, every landing file is read once, so that all engines read landing from the page cache.

Prints a table and writes ``bench/results/pipeline.json``. The machine's load average is reported with the figures.
This machine's speed drifts by a fifth or more between runs minutes apart, so one run says little about a change:
``--repeat N`` runs every engine N times on the same landing (interleaved, each from an empty warehouse), reports
each engine's median run (by pipeline wall time; the ratios use it too) and records every run's layer times under
``repeats``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import generate_landing, machine_probe  # noqa: E402

LAYERS = ("bronze", "silver", "gold")
ENGINES = {
    "sail-delta": {"remote": None, "format": "delta", "python": "base"},
    "sail-parquet": {"remote": None, "format": "parquet", "python": "base"},
    "spark-parquet": {"remote": "local[2]", "format": "parquet", "python": "spark"},
}
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------------------------
# /proc accounting: CPU and resident memory of this process and its descendants (the JVM of Apache Spark)
# ---------------------------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _cpu_s(pid: int) -> float:
    """user + system CPU seconds of one process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


class Meter:
    """Wall, CPU (this process and every descendant, e.g. the JVM) and peak RSS of the tree, per measured block."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, sum(_rss_bytes(p) for p in _tree(self.pid)))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: this process (Python + embedded Sail) and its descendants (the JVM)."""
        own = _cpu_s(self.pid)
        children = sum(_cpu_s(p) for p in _tree(self.pid)[1:])
        return {"process": own, "children": children}

    def measure(self, name: str, fn):
        """Run ``fn()`` and return (its result, the figures of the block)."""
        self.peak = sum(_rss_bytes(p) for p in _tree(self.pid))
        cpu0, thread0, wall0 = self.cpu(), time.thread_time(), time.perf_counter()
        result = fn()
        wall = time.perf_counter() - wall0
        cpu1, thread1 = self.cpu(), time.thread_time()
        self.peak = max(self.peak, sum(_rss_bytes(p) for p in _tree(self.pid)))
        process_cpu = cpu1["process"] - cpu0["process"]
        jvm_cpu = cpu1["children"] - cpu0["children"]
        return result, {
            "layer": name,
            "wall_s": round(wall, 2),
            "cpu_s": round(process_cpu + jvm_cpu, 2),
            "cpu_process_s": round(process_cpu, 2),
            "cpu_python_main_thread_s": round(thread1 - thread0, 2),
            "cpu_jvm_s": round(jvm_cpu, 2),
            "peak_rss_mb": round(self.peak / 2**20),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }

    def close(self) -> None:
        self._stop.set()


class QueryProfiler:
    """Counts and times every Spark Connect round trip (execute, analyze, config) by the repository code that made it:
    ``file:function`` of the innermost frame in this repository, per layer."""

    KINDS = ("_execute_and_fetch", "_analyze", "config")

    def __init__(self) -> None:
        self.layer = "setup"
        self.calls: dict[tuple[str, str, str], list] = {}
        self._depth = threading.local()

    def install(self) -> None:
        """Wrap the Spark Connect client's round-trip methods (this process only)."""
        from pyspark.sql.connect.client.core import SparkConnectClient

        for kind in self.KINDS:
            orig = getattr(SparkConnectClient, kind)

            def wrapper(*a, _orig=orig, _kind=kind, **k):
                depth = getattr(self._depth, "n", 0)
                self._depth.n = depth + 1
                t0 = time.perf_counter()
                try:
                    return _orig(*a, **k)
                finally:
                    self._depth.n = depth
                    if depth == 0:
                        self._record(_kind, time.perf_counter() - t0)

            setattr(SparkConnectClient, kind, wrapper)

    def _record(self, kind: str, seconds: float) -> None:
        frame, site = sys._getframe(2), "?"
        repo = str(REPO) + os.sep
        # attribute I/O helpers' round trips to the flow code that called them
        skip = {str(Path(__file__).resolve()), str(REPO / "lakehouse" / "parquet_tables.py"),
                str(REPO / "lakehouse" / "delta.py")}
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(repo) and os.sep + ".venv" not in name and name not in skip:
                site = f"{os.path.relpath(name, REPO)}:{frame.f_code.co_name}"
                break
            frame = frame.f_back
        entry = self.calls.setdefault((self.layer, kind.strip("_"), site), [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def report(self, layer: str, n: int = 15) -> dict:
        """Round trips of a layer: totals and the call sites that spent the most time."""
        rows = [(k, v) for k, v in self.calls.items() if k[0] == layer]
        top = sorted(rows, key=lambda kv: -kv[1][1])[:n]
        return {
            "round_trips": sum(v[0] for _, v in rows),
            "round_trip_s": round(sum(v[1] for _, v in rows), 2),
            "by_call_site": [{"site": k[2], "kind": k[1], "calls": v[0], "seconds": round(v[1], 2)} for k, v in top],
        }


# ---------------------------------------------------------------------------------------------------------------
# One engine configuration (child process)
# ---------------------------------------------------------------------------------------------------------------
def _scan_rows(spark, settings, spec) -> int:
    from pyspark.sql import functions as F

    from lakehouse import delta

    if not delta.table_exists(spec, settings):
        return 0
    return int(delta.read_table(spark, spec, settings).select(F.sum(F.lit(1))).collect()[0][0] or 0)


def changed_paths(porcelain: str) -> list[str]:
    """The paths of ``git status --porcelain`` output (``XY path``, a rename as ``XY old -> new``: the new path).
    Each line's two status columns may start with a space, so the output is not stripped before it is split."""
    return [line[3:].split(" -> ")[-1] for line in porcelain.splitlines() if len(line) > 3]


def _code_version() -> dict:
    """The commit this run's code comes from, and the pipeline files changed since (others may be editing)."""
    def git(*a: str) -> str:
        proc = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else ""

    changed = changed_paths(git("status", "--porcelain", "--", "flows", "transforms", "expectations", "lakehouse",
                                "config", "mappings"))
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_changes": changed,
            "started_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _top_steps(runs, n: int = 12) -> list[dict]:
    """The slowest tables of a layer (summed over days)."""
    by: dict[str, float] = {}
    for r in runs:
        by[r.table_name] = by.get(r.table_name, 0.0) + float(r.duration_s or 0.0)
    return [{"table": t, "seconds": round(s, 2)} for t, s in sorted(by.items(), key=lambda kv: -kv[1])[:n]]


def run_engine(args) -> int:
    """Run bronze, silver and gold for one engine configuration; write its figures as JSON."""
    os.environ.setdefault("RUST_LOG", "error")
    cfg = ENGINES[args.child]
    from flows.orchestration import run_layer
    from lakehouse.catalog import GOLD_TABLES, SILVER_TABLES
    from lakehouse.manifest import latest_manifest
    from lakehouse.settings import load_settings
    from lakehouse.spark import engine_info, get_spark, stop_spark

    for key in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
        del os.environ[key]
    settings = load_settings(data_root=args.data_root, landing_root=args.landing_root, spark_remote=cfg["remote"],
                             table_format=cfg["format"])
    days = [dt.date.fromisoformat(args.start) + dt.timedelta(days=i) for i in range(args.days)]
    meter = Meter()
    profiler = QueryProfiler()
    profiler.install()
    out: dict = {"engine": args.child, "table_format": cfg["format"], "python": sys.executable, "code": _code_version()}
    try:
        spark, start = meter.measure("engine start", lambda: get_spark(settings))
        out["engine_start"] = start
        out["engine_info"] = engine_info()
        out["spark_version"] = spark.version

        def layer(name: str, kind: str, run_days, batch_days: int = 1):
            profiler.layer = name

            def go():
                if batch_days > 1:  # a catch-up, as `lakehouse ingest` / `lakehouse refine --batch-days N` over the days
                    from flows.orchestration import raise_if_failed

                    if kind == "ingest":  # every day in one call: files are staged while the engine loads others
                        from flows.ingest import ingest_days

                        return raise_if_failed(name, ingest_days(settings, run_days))
                    from flows.refine import refine_days

                    return raise_if_failed(name, refine_days(settings, run_days, batch_days=batch_days))
                runs = []
                for day in run_days:
                    runs += run_layer(settings, kind, day)
                return runs
            runs, fig = meter.measure(name, go)
            print(f"[{args.child}] {name}: {fig['wall_s']}s wall, {fig['cpu_s']}s CPU, peak {fig['peak_rss_mb']} MB "
                  f"(load {fig['load_avg_1m']})", file=sys.stderr, flush=True)
            return runs, fig

        from expectations.rules import warm_up_gx

        warm_up_gx()  # as `run_day` (lakehouse pipeline/backfill) does when refine follows ingest
        bronze_runs, fig = layer("bronze", "ingest", days, args.refine_batch_days)
        fig["rows_in"] = sum(r.rows_in for r in bronze_runs)
        fig["slowest"] = _top_steps(bronze_runs)
        out["bronze"] = fig

        silver_runs, fig = layer("silver", "refine", days, args.refine_batch_days)
        fig["refine_batch_days"] = args.refine_batch_days
        fig["rows_in"] = sum(r.rows_in for r in silver_runs)
        fig["slowest"] = _top_steps(silver_runs)
        out["silver"] = fig

        profiler.layer = "counts"
        silver_rows = {s.qualified: _scan_rows(spark, settings, s) for s in SILVER_TABLES}
        gold_runs, fig = layer("gold", "publish", days[-1:])
        fig["rows_in"] = sum(silver_rows.values())
        fig["slowest"] = _top_steps(gold_runs)
        manifest = latest_manifest(settings)
        fig["manifest_version"] = manifest.version if manifest else None
        fig["gate_s"] = (manifest.gates or {}).get("seconds") if manifest else None
        out["gold"] = fig
        profiler.layer = "counts"
        out["rows"] = {**silver_rows, **{s.qualified: _scan_rows(spark, settings, s) for s in GOLD_TABLES}}
        for name in LAYERS:
            out[name]["queries"] = profiler.report(name)
    finally:
        meter.close()
        stop_spark()
    Path(args.result).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Parent: land once, run each engine in its own process, compare
# ---------------------------------------------------------------------------------------------------------------
def _generate(data_root: Path, start: str, days: int, orders_per_day: int, customers: int, seed: int) -> dict:
    """``lakehouse generate`` in a subprocess; returns its summary (truth/generation.json)."""
    return generate_landing(data_root, start=start, days=days, orders_per_day=orders_per_day, customers=customers,
                            seed=seed).summary


def _child_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _read_ahead(landing: Path) -> float:
    """Read every landing file once before the first engine runs, so that each engine's bronze reads them from the
    page cache: the first engine would otherwise also pay for the disk (measured: sail-delta's bronze took 34.5 s
    with a cold cache, 25.4 s of CPU, against 17.5 s for sail-parquet right after it with the same CPU)."""
    t0 = time.perf_counter()
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    took = round(time.perf_counter() - t0, 2)
    print(f"landing: read ahead in {took}s (page cache)", flush=True)
    return took


def _land(args, work: Path) -> tuple[Path, dict]:
    """Generate the landing files once (calibrated to the asked number of order lines), or reuse ``--landing``."""
    if args.landing:
        root = Path(args.landing).resolve()
        g = json.loads((root.parent / "truth" / "generation.json").read_text())
        rows = int(sum((g.get("rows") or {}).values()))
        print(f"landing: reusing {root} ({g['order_lines']:,} order lines, {rows:,} rows)", flush=True)
        return root, {"layer": "landing", "reused": str(root), "wall_s": None, "cpu_s": None, "peak_rss_mb": None,
                      "rows_out": rows, "order_lines": g["order_lines"], "orders_per_day": g.get("orders_per_day"),
                      "customers": g.get("customers"), "load_avg_1m": round(os.getloadavg()[0], 2)}
    calib = work / "calibration"
    g = _generate(calib, args.start, 1, 2000, 2000, args.seed)
    per_order = g["order_lines"] / 2000
    shutil.rmtree(calib, ignore_errors=True)
    orders_per_day = max(1, round(args.order_lines / per_order / args.days))
    customers = args.customers or max(1000, args.order_lines // 50)
    land = work / "landing-data"
    cpu0, t0 = _child_cpu_s(), time.perf_counter()
    g = _generate(land, args.start, args.days, orders_per_day, customers, args.seed)
    wall, cpu = time.perf_counter() - t0, _child_cpu_s() - cpu0
    import resource

    rows = int(g.get("total_rows") or sum((g.get("rows") or {}).values()) or 0)
    fig = {"layer": "landing", "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
           "rows_out": rows, "order_lines": g["order_lines"], "orders_per_day": orders_per_day,
           "customers": customers, "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(f"landing: {g['order_lines']:,} order lines, {rows:,} rows in {fig['wall_s']}s", flush=True)
    return land / "landing", fig


def _python_for(engine: str) -> str:
    if ENGINES[engine]["python"] == "base":
        return sys.executable
    from bench.spark_venv import ensure, java_version

    if java_version() is None:
        raise SystemExit("spark-parquet needs Java 17 on PATH (java -version)")
    t0 = time.perf_counter()
    python = str(ensure())
    print(f"Apache Spark virtualenv ready in {time.perf_counter() - t0:.0f}s: {python}", flush=True)
    return python


def _run_child(args, engine: str, work: Path, landing: Path) -> dict:
    result = work / f"{engine}.json"
    python = _python_for(engine)
    cmd = [python, str(Path(__file__).resolve()), "--child", engine, "--data-root", str(work / engine),
           "--landing-root", str(landing), "--start", args.start, "--days", str(args.days), "--result", str(result),
           "--refine-batch-days", str(args.refine_batch_days)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["PYSPARK_PYTHON"] = python
    env["PYTHONPATH"] = str(REPO)
    print(f"== {engine}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL if args.quiet else None)
    if proc.returncode:
        return {"engine": engine, "error": f"exit {proc.returncode}"}
    return json.loads(result.read_text())


def _pipeline_wall(run: dict) -> float:
    return sum(run[layer]["wall_s"] for layer in LAYERS)


def _pipeline_cpu(run: dict) -> float:
    return sum(run[layer]["cpu_s"] for layer in LAYERS)


def median_run(runs: list[dict]) -> dict:
    """The run whose pipeline wall time is the median of the runs that finished (the lower of the two middle ones
    for an even count); the first failed run when none finished."""
    ok = sorted((r for r in runs if "error" not in r), key=_pipeline_wall)
    if not ok:
        return runs[0]
    return ok[(len(ok) - 1) // 2]


def spread(runs: list[dict]) -> dict:
    """Wall and CPU seconds of every run, per layer and for the pipeline, with their median, minimum and maximum;
    the failed runs are counted and left out of the figures."""
    ok = [r for r in runs if "error" not in r]
    out: dict = {"runs": len(runs), "failed": len(runs) - len(ok)}
    if not ok:
        return out
    figures = {layer: ([r[layer]["wall_s"] for r in ok], [r[layer]["cpu_s"] for r in ok]) for layer in LAYERS}
    figures["pipeline"] = ([round(_pipeline_wall(r), 2) for r in ok],
                           [round(_pipeline_cpu(r), 2) for r in ok])
    for name, (walls, cpus) in figures.items():
        out[name] = {"wall_s": walls, "cpu_s": cpus, "median_wall_s": _median(walls),
                     "min_wall_s": min(walls), "max_wall_s": max(walls), "median_cpu_s": _median(cpus)}
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 2)


def _per_s(rows: int | None, seconds: float | None) -> int | None:
    return round(rows / seconds) if rows and seconds else None


def _summarize(land: dict, runs: dict[str, dict], order_lines: int) -> dict:
    """Per-layer table, end-to-end totals, ratios (Spark / Sail on the same format) and row-count agreement."""
    layers: dict[str, dict] = {}
    for engine, r in runs.items():
        if "error" in r:
            continue
        pipeline_wall = _pipeline_wall(r)
        total_wall = (land["wall_s"] or 0.0) + pipeline_wall
        for layer in LAYERS:
            f = r[layer]
            f["rows_per_s"] = _per_s(f.get("rows_in"), f["wall_s"])
            f["order_lines_per_s"] = _per_s(order_lines, f["wall_s"])
        r["pipeline"] = {
            "wall_s": round(pipeline_wall, 2),
            "wall_with_engine_start_s": round(pipeline_wall + r["engine_start"]["wall_s"], 2),
            "end_to_end_with_landing_s": round(total_wall + r["engine_start"]["wall_s"], 2),
            "cpu_s": round(_pipeline_cpu(r), 2),
            "peak_rss_mb": max(r[layer]["peak_rss_mb"] for layer in LAYERS),
            "order_lines_per_s": _per_s(order_lines, pipeline_wall),
        }
        layers[engine] = r
    ratios: dict[str, dict] = {}
    pairs = [("spark-parquet", "sail-parquet"), ("spark-parquet", "sail-delta")]
    for slow, fast in pairs:
        if slow in layers and fast in layers:
            key = f"{slow} / {fast}"
            ratios[key] = {layer: _ratio(layers[slow][layer], layers[fast][layer]) for layer in LAYERS}
            ratios[key]["engine start"] = _ratio(layers[slow]["engine_start"], layers[fast]["engine_start"])
            ratios[key]["pipeline"] = _ratio(layers[slow]["pipeline"], layers[fast]["pipeline"])
    mismatches = {}
    ok = [r for r in layers.values() if "rows" in r]
    if len(ok) > 1:
        ref = ok[0]
        for other in ok[1:]:
            for table, n in ref["rows"].items():
                if other["rows"].get(table) != n:
                    mismatches.setdefault(table, {})[ref["engine"]] = n
                    mismatches[table][other["engine"]] = other["rows"].get(table)
    return {"ratios": ratios, "row_count_mismatches": mismatches}


def _ratio(slow: dict, fast: dict) -> dict:
    return {
        "wall": round(slow["wall_s"] / fast["wall_s"], 2) if fast.get("wall_s") else None,
        "cpu": round(slow["cpu_s"] / fast["cpu_s"], 2) if fast.get("cpu_s") else None,
        "peak_rss": round(slow["peak_rss_mb"] / fast["peak_rss_mb"], 2) if fast.get("peak_rss_mb") else None,
    }


def _print(result: dict) -> None:
    land = result["landing"]
    print(f"\n{result['order_lines']:,} order lines over {result['days']} days, {land['rows_out']:,} landed rows; "
          f"load average {result['load_avg_1m_start']} -> {result['load_avg_1m_end']} on {result['cpus']} CPUs")
    probe = result.get("machine_probe")
    if probe:
        print("machine probe (one thread; compare runs through it, this machine's speed drifts): python loop "
              f"{probe['start']['python_loop_ns_per_iter']} -> {probe['end']['python_loop_ns_per_iter']} ns/iteration, "
              f"sha256 {probe['start']['sha256_mib_per_s']} -> {probe['end']['sha256_mib_per_s']} MiB/s")
    n = (result.get("params") or {}).get("refine_batch_days") or 1
    print("bronze and silver: day by day (as the daily pipeline runs)" if n <= 1 else
          f"catch-up: bronze ingests every day in one call; silver refines {n} consecutive days as one batch per table")
    print(f"{'layer':<14}{'engine':<15}{'wall s':>9}{'CPU s':>9}{'JVM CPU s':>11}{'peak MB':>9}{'rows/s':>11}{'lines/s':>10}")
    if land.get("reused"):
        print(f"{'landing':<14}reused {land['reused']}")
    else:
        print(f"{'landing':<14}{'(generator)':<15}{land['wall_s']:>9}{land['cpu_s']:>9}{'':>11}{land['peak_rss_mb']:>9}"
              f"{_per_s(land['rows_out'], land['wall_s']) or 0:>11,}{_per_s(land['order_lines'], land['wall_s']) or 0:>10,}")
    for layer in ("engine_start", *LAYERS, "pipeline"):
        for engine, r in result["engines"].items():
            if "error" in r:
                continue
            f = r[layer]
            print(f"{layer.replace('_', ' '):<14}{engine:<15}{f['wall_s']:>9}{f['cpu_s']:>9}{f.get('cpu_jvm_s', ''):>11}"
                  f"{f['peak_rss_mb']:>9}{f.get('rows_per_s') or '':>11}{f.get('order_lines_per_s') or '':>10}")
    for engine, sp in (result.get("repeats") or {}).items():
        if "pipeline" not in sp:
            print(f"\n{engine}: all {sp['runs']} runs failed")
            continue
        print(f"\n{engine} over {sp['runs'] - sp['failed']} runs ({sp['failed']} failed; "
              "the table shows the median run):")
        for layer in (*LAYERS, "pipeline"):
            f = sp[layer]
            print(f"  {layer:<10} wall median {f['median_wall_s']}s ({f['min_wall_s']}-{f['max_wall_s']}), "
                  f"CPU median {f['median_cpu_s']}s; walls {', '.join(str(w) for w in f['wall_s'])}")
    for key, per_layer in result["summary"]["ratios"].items():
        print(f"\nratio {key} (x slower / more):")
        for layer, r in per_layer.items():
            print(f"  {layer:<14} wall {r['wall']}x  CPU {r['cpu']}x  peak RSS {r['peak_rss']}x")
    for engine, r in result["engines"].items():
        if "error" in r:
            print(f"\n{engine}: FAILED ({r['error']})")
            continue
        print(f"\nslowest steps, {engine}:")
        for layer in LAYERS:
            steps = ", ".join(f"{s['table']} {s['seconds']}s" for s in r[layer]["slowest"][:5])
            print(f"  {layer}: {steps}")
            q = r[layer].get("queries") or {}
            if q:
                sites = ", ".join(f"{c['site']} {c['calls']}x {c['seconds']}s" for c in q["by_call_site"][:4])
                print(f"    {q['round_trips']} Spark round trips, {q['round_trip_s']}s; most time: {sites}")
    mism = result["summary"]["row_count_mismatches"]
    if sum("rows" in r for r in result["engines"].values()) > 1:
        print("\nrow counts agree between engines" if not mism else f"\nROW COUNTS DIFFER: {json.dumps(mism)}")


def main(argv: list[str] | None = None) -> int:
    """Land the data once, run each engine configuration in its own process, print and write the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--order-lines", type=int, default=1_000_000, help="order lines in total (online + POS)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--start", default="2026-01-01")
    p.add_argument("--customers", type=int, default=0, help="default: order lines / 50")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--engines", default="sail-delta,sail-parquet,spark-parquet",
                   help=f"comma-separated, of {', '.join(ENGINES)}")
    p.add_argument("--work-dir", help="where data goes (default: a temp folder, removed)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "pipeline.json"))
    p.add_argument("--quiet", action="store_true", help="hide the flows' progress output")
    p.add_argument("--keep", action="store_true", help="keep each engine's warehouse (needs --work-dir)")
    p.add_argument("--refine-batch-days", type=int, default=1, metavar="N",
                   help="a catch-up: bronze ingests every day in one call, silver refines N consecutive days as one "
                        "batch per table (default 1: both day by day, as the daily pipeline does)")
    p.add_argument("--landing", help="reuse the landing folder of an earlier run (<work-dir>/landing-data/landing)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run every engine N times on the same landing, interleaved, and report each one's median "
                        "run (by pipeline wall time) with the spread of all N (default 1)")
    # internal: one engine configuration in a child process
    p.add_argument("--child", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    p.add_argument("--data-root", help=argparse.SUPPRESS)
    p.add_argument("--landing-root", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return run_engine(args)

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = round(os.getloadavg()[0], 2)
    probe_start = machine_probe()
    try:
        landing, land = _land(args, work)
        land["read_ahead_s"] = _read_ahead(landing)
        every: dict[str, list[dict]] = {engine: [] for engine in engines}
        for i in range(args.repeat):
            for engine in engines:
                if args.repeat > 1:
                    print(f"-- run {i + 1} of {args.repeat}", flush=True)
                shutil.rmtree(work / engine, ignore_errors=True)  # each run starts from an empty warehouse
                every[engine].append(_run_child(args, engine, work, landing))
                if not args.keep:
                    shutil.rmtree(work / engine, ignore_errors=True)
        runs = {engine: median_run(every[engine]) for engine in engines}
        result = {
            "benchmark": "pipeline: landing -> bronze -> silver -> gold + publish",
            "measured_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_start": load_start,
            "order_lines": land["order_lines"],
            "days": args.days,
            "params": {k: v for k, v in vars(args).items() if k not in ("child", "data_root", "landing_root", "result")},
            "landing": land,
            "engines": runs,
        }
        if args.repeat > 1:
            result["repeats"] = {engine: spread(every[engine]) for engine in engines}
        result["summary"] = _summarize(land, runs, land["order_lines"])
        result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        result["machine_probe"] = {"start": probe_start, "end": machine_probe()}
    finally:
        if not args.work_dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 0 if all("error" not in r for engine_runs in every.values() for r in engine_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
