"""Apache Spark conformance: the transform unit tests also pass on a real Apache Spark Connect server (JVM).

This test builds (or reuses) the ``.venv-spark`` virtualenv (the project's environment plus the JVM ``pyspark``
4.2.0 package; see bench/spark_venv.py) and runs pytest in it with ``LAKEHOUSE_TEST_ENGINE=spark-jvm``: the shared
``spark`` fixture is then a local Apache Spark 4.2 (``local[2]``, Spark Connect) instead of Sail, and only the pure
transform tests run (those that need nothing but ``spark``: no tmp_path, settings or S3, and not marked
``needs_sail``; see tests/conftest.py). Any transform that depends on a Sail-only behaviour fails here.

The run starts in the background as soon as collection ends and overlaps the rest of the suite; this test, moved to
the end of the session, collects its result (tests/conformance_run.py).

Needs Java 17 and the package registry (the first run downloads pyspark, about 450 MB).
Run only this: ``.venv/bin/python -m pytest -q -m conformance``.
"""

from __future__ import annotations

import re

import pytest

from tests.conformance_run import SELECTION, ConformanceRun
from tests.conftest import CONFORMANCE_RUN, TEST_ENGINE

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(1800)]

#: The run must cover the transform tests, not silently select nothing.
MIN_TESTS = 100


def test_transform_unit_tests_pass_on_apache_spark(request):
    if TEST_ENGINE == "spark-jvm":
        pytest.skip("already running on Apache Spark")
    # Started in the background when collection ended (tests/conftest.py); run here when it was not.
    run = request.config.stash.get(CONFORMANCE_RUN, None) or ConformanceRun()
    out = run.result()
    assert out.java is not None and not out.error, out.error
    summary = next((line for line in reversed(out.output.splitlines())
                    if re.search(r"\d+ (passed|failed|error)", line)), "")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out.output, re.M)
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", summary)) else 0
    print(f"Apache Spark conformance ({out.java}; venv ready in {out.built_s:.0f}s, {out.wall_s:.0f}s in all, "
          f"-m '{SELECTION}'): {summary}")
    assert out.returncode == 0 and not failed, (
        f"transforms that fail on Apache Spark but pass on Sail ({summary}):\n  " + "\n  ".join(failed or ["(see output)"])
        + "\n\n" + out.output[-6000:]
    )
    assert passed >= MIN_TESTS, f"only {passed} transform tests ran on Apache Spark (expected >= {MIN_TESTS}): {summary}"
