"""The background GX import must not race the run's own imports.

``warm_up_gx`` imports Great Expectations in a thread while the run goes on. Two threads importing one package graph
for the first time at once can leave one of them with the other's half-initialised module: CI once saw
``lakehouse pipeline`` fail in ``get_spark`` with "cannot import name 'is_remote_only' from partially initialized
module 'pyspark.util'". The fix imports, in the caller's thread and before the GX thread starts, everything the two
share. These tests measure "everything the two share" in fresh interpreters, so a new dependency of either side that
is not pre-imported fails here, deterministically, instead of as a rare race.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import cli_env

REPO = Path(__file__).resolve().parents[1]

# The modules a run imports from its start up to its first gate (ingest, then refine typing the first batch): the
# window in which the GX thread of `lakehouse pipeline` imports beside it. GX's warm-up is off here, and the first
# call of `_import_gx` (the gate's, in the run's own thread) records what was imported before it and stops the run.
RUN_UNTIL_FIRST_GATE = """
import datetime as dt, json, sys
import expectations.rules as rules
from flows.orchestration import run_day
from lakehouse.settings import load_settings

rules.warm_up_gx = lambda: None
before = set(sys.modules)

class FirstGate(Exception):
    pass

def first_gx_import():
    print("RESULT " + json.dumps(sorted(set(sys.modules) - before)), flush=True)
    raise FirstGate

rules._import_gx = first_gx_import
try:
    run_day(load_settings(), dt.date(2026, 1, 1), layers=("ingest", "refine"))
except FirstGate:
    pass
else:
    raise SystemExit("the run never reached a gate")
"""

GX_IMPORT = """
import json, sys
before = set(sys.modules)
from expectations.rules import _import_gx
before |= set(sys.modules)
_import_gx()
print("RESULT " + json.dumps(sorted(set(sys.modules) - before)), flush=True)
"""

SHARED_IMPORTED = """
import json, sys
from expectations.rules import import_shared
before = set(sys.modules)
import_shared()
print("RESULT " + json.dumps(sorted(set(sys.modules) - before)), flush=True)
"""


def _modules(script: str, data_root: Path) -> set[str]:
    """Run ``script`` as a file (PySpark's Connect package refuses a ``-c`` main); the set it prints as RESULT."""
    path = data_root.parent / f"script_{abs(hash(script))}.py"
    path.write_text(textwrap.dedent(script))
    env = cli_env(data_root, GX_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return set(json.loads(lines[-1][len("RESULT "):]))


def test_warm_up_pre_imports_every_module_a_run_and_gx_both_import(tmp_path):
    from generator import generate
    from lakehouse.settings import load_settings

    root = tmp_path / "data"
    generate(load_settings(data_root=str(root), spark_remote=None), start=dt.date(2026, 1, 1), days=1, customers=30,
             orders_per_day=15, seed=3, bad_share=0.05, formats={}, progress=False)

    run = _modules(RUN_UNTIL_FIRST_GATE, root)
    gx = _modules(GX_IMPORT, root)
    pre = _modules(SHARED_IMPORTED, root)

    # The measurements mean something: the run used the engine's client, GX is the whole package.
    assert "pyspark.sql.connect.session" in run
    assert "great_expectations.expectations" in gx
    both = run & gx
    assert "pyspark.util" in both  # the module of the failure in CI
    missing = sorted(both - pre)
    assert not missing, (
        f"{len(missing)} module(s) are imported both by a run (before its first gate) and by the GX warm-up thread, "
        f"but not by expectations.rules.import_shared first: {missing[:40]}; add their package to SHARED_IMPORTS"
    )


def test_warm_up_starts_the_import_once_and_a_gate_then_finds_gx(tmp_path):
    script = """
    import sys
    import expectations.rules as rules
    rules.warm_up_gx()
    rules.warm_up_gx()
    assert len(rules._warm_up) == 1, rules._warm_up
    assert "pyspark.sql.connect.session" in sys.modules  # imported in this thread, before the thread started
    rules._warm_up[0].join(120)
    assert "great_expectations.expectations" in sys.modules
    print("RESULT " + __import__("json").dumps([rules.expectation_class("expect_column_values_to_not_be_null").__name__]))
    """
    assert _modules(script, tmp_path / "data") == {"ExpectColumnValuesToNotBeNull"}
