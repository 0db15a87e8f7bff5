"""Shared fixtures: one Spark session per test run, a local moto S3 server, settings rooted in tmp_path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lakehouse.processes import stop_process


def _import_spark_connect_in_an_xdist_worker() -> None:
    """Import PySpark's Spark Connect package the way it expects to be imported, in a pytest-xdist worker.

    A worker runs under execnet, whose ``__main__`` module has neither ``__spec__`` nor ``__file__``. The package's
    import-time check (``pyspark.sql.connect.utils.check_dependencies``) takes that for a doctest run and then looks
    for a full Spark distribution, exiting the worker when there is none. The check runs once, at import, so the
    package is imported here with a ``__file__`` set for the moment; it is removed again at once, because
    ``multiprocessing`` (spawn) would try to run a ``__main__.__file__`` in its children.
    """
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is not None or hasattr(main, "__file__") or "pyspark.sql.connect" in sys.modules:
        return
    main.__file__ = __file__
    try:
        import pyspark.sql.connect  # noqa: F401
    finally:
        del main.__file__


_import_spark_connect_in_an_xdist_worker()

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"


def cli_env(data_root, **extra: str) -> dict[str, str]:
    """The environment of a ``lakehouse`` subprocess: this one's, without any ``LAKEHOUSE_``, ``SPARK_REMOTE`` or
    ``AWS_`` setting of the caller's shell, rooted at ``data_root``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_", "SPARK_REMOTE"))}
    env.update(LAKEHOUSE_DATA_ROOT=str(data_root), **extra)
    return env


MOTO_KEY = "testing"
MOTO_SECRET = "testing"
MOTO_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto S3 server on 127.0.0.1 and a free port, stopped by PID at the end of the run."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, grace_s=10)


#: ``LAKEHOUSE_TEST_ENGINE=spark-jvm`` runs the session on a local Apache Spark (JVM) instead of Sail: the conformance
#: run (tests/test_conformance.py) starts pytest that way in the .venv-spark virtualenv. Only tests that need nothing
#: but the ``spark`` fixture (pure transforms on tiny frames) run then; tests that also use tmp_path, settings or S3
#: (Delta I/O) and tests marked ``needs_sail`` are deselected.
TEST_ENGINE = os.environ.get("LAKEHOUSE_TEST_ENGINE", "sail")
JVM_TEST_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.shuffle.partitions": "1",
                 "spark.sql.adaptive.enabled": "false"}
CONFORMANCE_EXCLUDED_FIXTURES = frozenset({"settings", "s3_settings", "moto_endpoint", "tmp_path", "tmp_path_factory"})


# The files that take minutes, in this order, run before all others. With the suite spread over workers
# (scripts/test.sh: one file at a time per worker, --no-loadscope-reorder), a long file started last is the tail of
# the run, one worker busy and the other idle. Two workers on 2 cores: test_crash.py about 640 s, test_conformance.py
# about 320 s, the next ones 60-200 s.
LONG_FILES_FIRST = ("test_crash.py", "test_conformance.py", "test_refine_catchup.py", "test_prefect_server.py",
                    "test_publish_e2e.py", "test_pages_browser.py", "test_silver_generated.py")


def pytest_collection_modifyitems(config, items):
    """Long files first (LONG_FILES_FIRST; each file's tests keep their order); on the JVM engine, keep only the pure
    transform tests (see TEST_ENGINE)."""
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the other files keep their order
    if TEST_ENGINE != "spark-jvm":
        return
    keep, drop = [], []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        pure = "spark" in names and not names & CONFORMANCE_EXCLUDED_FIXTURES
        (keep if pure and item.get_closest_marker("needs_sail") is None else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def spark(request):
    """The one Spark session of the test run: embedded Sail (seeing the moto S3 endpoint), or Apache Spark on the JVM
    when LAKEHOUSE_TEST_ENGINE=spark-jvm."""
    from lakehouse.settings import load_settings
    from lakehouse.spark import get_spark, stop_spark

    if TEST_ENGINE == "spark-jvm":
        session = get_spark(load_settings(spark_remote="local[2]"))
        # Tiny frames: no whole-stage code generation, one shuffle partition, no adaptive re-planning (measured:
        # about 2.5x less JVM CPU per test query; results do not depend on these).
        for key, value in JVM_TEST_CONF.items():
            session.conf.set(key, value)
        yield session
        stop_spark()
        return
    moto_endpoint = request.getfixturevalue("moto_endpoint")
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": MOTO_KEY,
            "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
            "AWS_REGION": MOTO_REGION,
            "AWS_DEFAULT_REGION": MOTO_REGION,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
    )
    session = get_spark(load_settings(spark_remote=None))
    yield session
    stop_spark()


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings with every root under this test's tmp_path (local disk)."""
    from lakehouse.settings import load_settings

    for key in list(os.environ):
        if key.startswith("LAKEHOUSE_"):
            monkeypatch.delenv(key, raising=False)
    return load_settings(data_root=str(tmp_path / "lh"), spark_remote=None)


@pytest.fixture
def s3_settings(moto_endpoint, monkeypatch):
    """Settings with landing and warehouse in a fresh bucket of the moto server."""
    import boto3

    from lakehouse.settings import load_settings

    bucket = f"lakehouse-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3", endpoint_url=moto_endpoint, aws_access_key_id=MOTO_KEY, aws_secret_access_key=MOTO_SECRET,
        region_name=MOTO_REGION,
    ).create_bucket(Bucket=bucket)
    return load_settings(
        data_root=f"s3://{bucket}",
        landing_root=f"s3://{bucket}/landing",
        warehouse_root=f"s3://{bucket}/warehouse",
        truth_root=f"s3://{bucket}/truth",
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id=MOTO_KEY,
        s3_secret_access_key=MOTO_SECRET,
        s3_region=MOTO_REGION,
        s3_allow_http=True,
        spark_remote=None,
    )


def assert_same_rows(actual, expected, *, columns=None) -> None:
    """Compare two DataFrames (or lists of dicts) ignoring row order."""

    def rows(x):
        if hasattr(x, "collect"):
            x = [r.asDict(recursive=True) for r in x.collect()]
        cols = columns or sorted({k for r in x for k in r})
        return sorted((tuple(r.get(c) for c in cols) for r in x), key=repr)

    assert rows(actual) == rows(expected)
