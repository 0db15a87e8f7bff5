"""The Spark session: an embedded Sail server by default, or any Spark Connect URL when configured.

Only this module builds a session. At exit the client is stopped before the embedded server: a Spark Connect client
whose server died first hangs the interpreter at exit.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from lakehouse.errors import EngineUnreachable
from lakehouse.settings import Settings, get_settings

_lock = threading.Lock()


@dataclass
class _Engine:
    spark: object
    server: object | None
    remote: str
    started_s: float


_engine: _Engine | None = None


def _check_reachable(url: str, timeout_s: float) -> None:
    parsed = urlparse(url.replace("sc://", "http://", 1))
    host, port = parsed.hostname or "", parsed.port or 15002
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise EngineUnreachable(
            f"SPARK_REMOTE {url} unreachable ({exc.strerror or exc}). Start the Spark Connect server there, "
            "or unset SPARK_REMOTE/LAKEHOUSE_SPARK_REMOTE to use the embedded Sail engine."
        ) from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: PySpark's DataFrame debugging: with it on (PySpark's default), every ``pyspark.sql.functions`` call and Column
#: operator records its caller for error messages, and on the way tries ``import IPython``. Where IPython is not
#: installed that import fails every time, and a failed import is not cached: each call searches ``sys.path`` again.
#: Building the 1M pipeline's plans made 6,868 such calls in silver and 4,981 in gold; turned off, building expressions
#: took a sixth of the Python CPU (3,000 ten-call expressions: 0.38 s against 2.25 s). The engine never sees the
#: difference; only a failing query's message loses the line of the caller.
DATAFRAME_DEBUGGING = "spark.python.sql.dataFrameDebugging.enabled"

#: Spark conf of a local Apache Spark (``spark_remote=local[N]``): sized for a small machine, no UI, Parquet timestamps
#: as INT64 micros (what Delta and delta-rs expect), no call-site capture (``DATAFRAME_DEBUGGING``, a static conf
#: there). ``LAKEHOUSE_SPARK_DRIVER_MEMORY`` overrides the driver heap.
LOCAL_SPARK_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    DATAFRAME_DEBUGGING: "false",
}


class _LocalApacheSpark:
    """A local Apache Spark (JVM) with its Spark Connect server on 127.0.0.1 and a free port (what
    ``SparkSession.builder.remote("local[N]")`` starts, but never on the fixed port 15002)."""

    def __init__(self, master: str) -> None:
        try:
            from pyspark import SparkConf, SparkContext
        except ImportError:
            raise EngineUnreachable(
                f"SPARK_REMOTE {master} needs the JVM pyspark package (pip install pyspark==4.2.0 in its own virtualenv; "
                "see the README) and Java 17"
            ) from None
        import multiprocessing
        import sys
        import uuid

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("SPARK_CONNECT_AUTHENTICATE_TOKEN", uuid.uuid4().hex)
        cores = multiprocessing.cpu_count() if "*" in master else int(master[6:-1] or 1) if "[" in master else 1
        self.port = _free_port()
        conf = SparkConf(loadDefaults=True).setMaster(master).setAppName("lakehouse")
        conf.setAll(list(LOCAL_SPARK_CONF.items()))
        conf.setAll([
            ("spark.driver.memory", os.environ.get("LAKEHOUSE_SPARK_DRIVER_MEMORY", "4g")),
            ("spark.sql.shuffle.partitions", str(max(2, 2 * cores))),
            ("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin"),
            ("spark.connect.grpc.binding.address", "127.0.0.1"),
            ("spark.connect.grpc.binding.port", str(self.port)),
        ])
        self._sc = SparkContext.getOrCreate(conf)
        # The client sends the token over local credentials only to "localhost".
        self.remote = f"sc://localhost:{self.port}"

    def session(self):
        """A Spark Connect client session to this server (the JVM package's ``SparkSession`` would refuse one
        beside its own SparkContext, so the Connect class is used directly)."""
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # pyspark.sql.functions build Connect columns
        return ConnectSession.builder.remote(self.remote).getOrCreate()

    @property
    def jvm_pid(self) -> int | None:
        """The JVM's process id (for CPU and memory accounting)."""
        proc = getattr(getattr(self._sc, "_gateway", None), "proc", None)
        return getattr(proc, "pid", None)

    def stop(self) -> None:
        """Stop the JVM's Spark context (and its Connect server)."""
        self._sc.stop()


def _quiet_sail_logs() -> None:
    # Sail logs every session open/close at INFO through RUST_LOG; keep warnings only unless the user chose.
    os.environ.setdefault("RUST_LOG", "warn")


#: mimalloc options the embedded Sail server starts with, unless the user set them (see ``_tune_sail_allocator``).
SAIL_ALLOCATOR_DEFAULTS: dict[str, str] = {"MIMALLOC_ALLOW_THP": "0", "MIMALLOC_PURGE_DECOMMITS": "0"}


def _tune_sail_allocator() -> None:
    """Set ``SAIL_ALLOCATOR_DEFAULTS`` for Sail's allocator (mimalloc, built into ``pysail``) where the user did not.

    - ``MIMALLOC_ALLOW_THP=0``, no transparent huge pages: with them, each first touch of a 2 MiB region of its heap
      makes the kernel zero all 2 MiB, and the engine keeps touching fresh regions as it frees and reuses memory:
      clearing pages was 11-19% of the process's CPU in a 1M-row silver refine. Off, an events batch (1.8M rows:
      build, stage, read back, three times) took 2.5-3.1 s of system CPU instead of 6.8-10.5 s, and 16-20 s instead
      of 18-26 s (four interleaved pairs).
    - ``MIMALLOC_PURGE_DECOMMITS=0``: memory the engine has not used for a while is given back with ``MADV_FREE``
      instead of being decommitted. The kernel still takes it back when it needs memory, but a page the engine
      reuses first costs no new page fault and no zeroing. A 1M-row silver catch-up took 0.70 and 0.72 million
      page faults instead of 1.20 and 1.28 million, and 6.6 and 6.9 s of system CPU instead of 7.7 and 8.7 s (two
      interleaved pairs); its peak resident size reads 220-270 MB higher, because pages given back this way count
      as resident until the kernel takes them.

    mimalloc reads the settings when its library loads, so this runs before ``pysail`` is imported."""
    for name, value in SAIL_ALLOCATOR_DEFAULTS.items():
        os.environ.setdefault(name, value)


def get_spark(settings: Settings | None = None):
    """The process-wide Spark session (created on first use)."""
    global _engine
    with _lock:
        if _engine is not None:
            return _engine.spark
        settings = settings or get_settings()
        from pyspark.sql import SparkSession

        t0 = time.perf_counter()
        # Sail (and deltalake/boto3) read the AWS environment at start: export it from settings first.
        for key, value in settings.s3_env().items():
            os.environ[key] = value
        server = None
        if settings.spark_remote and settings.spark_remote.startswith("local"):
            server = _LocalApacheSpark(settings.spark_remote)
            remote = server.remote
        elif settings.spark_remote:
            remote = settings.spark_remote
            _check_reachable(remote, settings.spark_connect_timeout_s)
        else:
            _quiet_sail_logs()
            _tune_sail_allocator()
            from pysail.spark import SparkConnectServer

            server = SparkConnectServer("127.0.0.1", 0)
            server.start(background=True)
            host, port = server.listening_address
            remote = f"sc://{host}:{port}"
        try:
            if isinstance(server, _LocalApacheSpark):
                spark = server.session()
            else:
                spark = SparkSession.builder.remote(remote).getOrCreate()
                if server is not None:  # embedded Sail: a session conf, set before any expression is built
                    spark.conf.set(DATAFRAME_DEBUGGING, "false")  # (PySpark reads it once)
            spark.conf.set("spark.sql.session.timeZone", "UTC")
        except Exception as exc:  # noqa: BLE001 - turn a gRPC failure into a sentence
            if server is not None:
                server.stop()
            raise EngineUnreachable(f"could not open a Spark Connect session at {remote}: {exc}") from None
        if settings.table_format == "parquet":
            from lakehouse import parquet_tables

            parquet_tables.install(spark, settings)
        _engine = _Engine(spark=spark, server=server, remote=remote, started_s=time.perf_counter() - t0)
        return spark


def engine_info() -> dict[str, object]:
    """What the current session is (for run records and progress output)."""
    if _engine is None:
        return {"engine": None}
    return {
        "engine": ("spark-local" if isinstance(_engine.server, _LocalApacheSpark)
                   else "sail-embedded" if _engine.server is not None else "spark-connect"),
        "remote": _engine.remote,
        "startup_s": round(_engine.started_s, 3),
    }


def stop_spark() -> None:
    """Stop the client first, then the embedded server (idempotent)."""
    global _engine
    with _lock:
        eng, _engine = _engine, None
    if eng is None:
        return
    try:
        eng.spark.stop()
    except Exception:  # noqa: BLE001 - best effort at shutdown
        pass
    if eng.server is not None:
        try:
            eng.server.stop()
        except Exception:  # noqa: BLE001
            pass


atexit.register(stop_spark)
