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


def _quiet_sail_logs() -> None:
    # Sail logs every session open/close at INFO through RUST_LOG; keep warnings only unless the user chose.
    os.environ.setdefault("RUST_LOG", "warn")


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
        if settings.spark_remote:
            remote = settings.spark_remote
            _check_reachable(remote, settings.spark_connect_timeout_s)
        else:
            _quiet_sail_logs()
            from pysail.spark import SparkConnectServer

            server = SparkConnectServer("127.0.0.1", 0)
            server.start(background=True)
            host, port = server.listening_address
            remote = f"sc://{host}:{port}"
        try:
            spark = SparkSession.builder.remote(remote).getOrCreate()
            spark.conf.set("spark.sql.session.timeZone", "UTC")
        except Exception as exc:  # noqa: BLE001 - turn a gRPC failure into a sentence
            if server is not None:
                server.stop()
            raise EngineUnreachable(f"could not open a Spark Connect session at {remote}: {exc}") from None
        _engine = _Engine(spark=spark, server=server, remote=remote, started_s=time.perf_counter() - t0)
        return spark


def engine_info() -> dict[str, object]:
    """What the current session is (for run records and progress output)."""
    if _engine is None:
        return {"engine": None}
    return {
        "engine": "sail-embedded" if _engine.server is not None else "spark-connect",
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
