#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine (Python 3.11, Java 17, pip) and runs it.
# The README's test command and .ci/run both call exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium (Debian packages) renders the data docs and the dashboard pages in browser tests.
# Best effort: without root or apt the browser tests skip with a reason; nothing else depends on it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || echo "note: could not install chromium; browser tests will be skipped" >&2
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
# Bytecode for the repository's own modules, written once here: where PYTHONDONTWRITEBYTECODE is set (it is on the
# machines this project is built on) Python never caches it, and every CLI subprocess of the crash and flow tests
# compiled them again (about 0.3 s per process).
.venv/bin/python -m compileall -q lakehouse flows transforms expectations api generator bench >/dev/null

# One pytest worker per core (at most 4). Files, not single tests, go to the workers (--dist loadfile), so each
# module-scoped fixture (a generated warehouse, a Prefect server) is built once. The longest files are collected
# first (tests/conftest.py) and handed out in that order (--no-loadscope-reorder; xdist would otherwise start the
# files with the most tests first, and the two longest files, with 1 and 6 tests, last). Pass -n 0 to run in one
# process.
exec .venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder "$@"
