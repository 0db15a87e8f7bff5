"""The Apache Spark conformance run as a background job of the test session.

The run (tests/test_conformance.py) is a second pytest, in the ``.venv-spark`` virtualenv, against a local JVM Spark:
about five minutes of a JVM that mostly waits on its own query planning. Run in line, it added those minutes to the
suite; started when collection ends, it overlaps the rest of the suite, and the conformance test (moved to the end of
the session) only collects its result. The job runs at a lower CPU priority (``nice``), so the other tests keep the
cores they need and the JVM takes what they leave.

A session that ends before the test collects the result (``-x``, Ctrl-C) stops the job's process group: the pytest
it started and the JVM under it, nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The transform tests that must pass on Apache Spark (see tests/conftest.py for what "pure" means).
SELECTION = "unit and not needs_sail"
TIMEOUT_S = 1700
NICE = 10


@dataclass
class Outcome:
    """What the conformance run printed and how it ended."""

    java: str | None
    built_s: float = 0.0
    returncode: int | None = None
    output: str = ""
    error: str = ""  # a failure to build or start the run (not a failing test)
    wall_s: float = 0.0


@dataclass
class ConformanceRun:
    """One background conformance run: :meth:`start` it, then :meth:`result` waits for it."""

    outcome: Outcome | None = None
    _proc: subprocess.Popen | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def start(self) -> "ConformanceRun":
        self._thread = threading.Thread(target=self._run, name="conformance", daemon=True)
        self._thread.start()
        return self

    def result(self, timeout_s: float = TIMEOUT_S + 120) -> Outcome:
        if self._thread is None:
            self._run()
        else:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.stop()
                self._thread.join(30)
        assert self.outcome is not None
        return self.outcome

    def stop(self) -> None:
        """Stop the run's process group (the pytest this run started and the JVM under it)."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _run(self) -> None:
        sys.path.insert(0, str(REPO))
        from bench.spark_venv import ensure, java_version

        t0 = time.perf_counter()
        out = Outcome(java=java_version())
        try:
            if out.java is None:
                out.error = "the conformance run needs Java 17 on PATH (java -version): see the README"
                return
            try:
                python = ensure()
            except Exception as exc:  # a failed build is the test's failure, reported with its reason
                out.error = f"could not build the Apache Spark virtualenv: {exc}"
                return
            out.built_s = time.perf_counter() - t0
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "SPARK_", "PYSPARK_"))}
            env.update(LAKEHOUSE_TEST_ENGINE="spark-jvm", PYSPARK_PYTHON=str(python), PYTHONPATH=str(REPO))
            cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", SELECTION, "-rfE",
                   "--no-header", "tests"]
            if shutil.which("nice"):
                cmd = ["nice", "-n", str(NICE), *cmd]
            with self._lock:
                if self._stopped:
                    out.error = "stopped before it started"
                    return
                self._proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                out.output, _ = self._proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.stop()
                out.output, _ = self._proc.communicate()
                out.error = f"the conformance run did not finish in {TIMEOUT_S} s"
            out.returncode = self._proc.returncode
        finally:
            out.wall_s = time.perf_counter() - t0
            self.outcome = out
