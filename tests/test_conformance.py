"""Apache Spark conformance: the transform unit tests also pass on a real Apache Spark Connect server (JVM).

This test builds (or reuses) the ``.venv-spark`` virtualenv (the project's environment plus the JVM ``pyspark``
4.2.0 package; see bench/spark_venv.py) and runs pytest in it with ``LAKEHOUSE_TEST_ENGINE=spark-jvm``: the shared
``spark`` fixture is then a local Apache Spark 4.2 (``local[2]``, Spark Connect) instead of Sail, and only the pure
transform tests run (those that need nothing but ``spark``: no tmp_path, settings or S3, and not marked
``needs_sail``; see tests/conftest.py). Any transform that depends on a Sail-only behaviour fails here.

Needs Java 17 and the package registry (the first run downloads pyspark, about 450 MB).
Run only this: ``.venv/bin/python -m pytest -q -m conformance``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(1800)]

#: The run must cover the transform tests, not silently select nothing.
MIN_TESTS = 100


def test_transform_unit_tests_pass_on_apache_spark():
    sys.path.insert(0, str(REPO))
    from bench.spark_venv import ensure, java_version

    if os.environ.get("LAKEHOUSE_TEST_ENGINE") == "spark-jvm":
        pytest.skip("already running on Apache Spark")
    java = java_version()
    assert java is not None, "the conformance run needs Java 17 on PATH (java -version): see the README"
    t0 = time.perf_counter()
    python = ensure()
    built_s = time.perf_counter() - t0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "SPARK_", "PYSPARK_"))}
    env.update(LAKEHOUSE_TEST_ENGINE="spark-jvm", PYSPARK_PYTHON=str(python), PYTHONPATH=str(REPO))
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "unit and not needs_sail", "-rfE",
           "--no-header", "tests"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1700)
    out = proc.stdout + proc.stderr
    summary = next((line for line in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed|error)", line)), "")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", summary)) else 0
    print(f"Apache Spark conformance ({java}; venv ready in {built_s:.0f}s): {summary}")
    assert proc.returncode == 0 and not failed, (
        f"transforms that fail on Apache Spark but pass on Sail ({summary}):\n  " + "\n  ".join(failed or ["(see output)"])
        + "\n\n" + out[-6000:]
    )
    assert passed >= MIN_TESTS, f"only {passed} transform tests ran on Apache Spark (expected >= {MIN_TESTS}): {summary}"
