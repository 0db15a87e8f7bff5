"""The ``.venv-spark`` virtualenv: the project's environment plus the JVM ``pyspark`` package, for Apache Spark runs.

``pyspark-client`` (our dependency) and the JVM ``pyspark`` package install the same files, so the JVM one lives in
its own virtualenv. To keep that cheap, ``.venv-spark`` holds only ``pyspark`` and ``py4j``; a ``.pth`` file adds the
calling environment's site-packages (where everything else, the project included, is installed) *after* its own,
so ``import pyspark`` finds the JVM package first. (The 4.2.0 Python files of both packages are identical; the JVM
package adds the jars and the classic API.) The virtualenv is rebuilt when pyproject.toml, the pinned versions or the
base environment change (a key file inside it), and concurrent builders wait on a lock file.

    .venv/bin/python bench/spark_venv.py        # build (or check) it and print its python
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-spark"
PYSPARK = "pyspark==4.2.0"
PY4J = "py4j==0.10.9.9"  # pyspark 4.2.0 requires py4j>=0.10.9.7,<0.10.9.10
KEY_FILE = ".lakehouse-key"


class SparkVenvError(RuntimeError):
    """The Apache Spark virtualenv could not be built."""


def java_version() -> str | None:
    """The first line of ``java -version`` (None when no Java is on PATH)."""
    java = shutil.which("java")
    if java is None:
        return None
    proc = subprocess.run([java, "-version"], capture_output=True, text=True)
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def _key(base_site: str) -> str:
    h = hashlib.sha256()
    h.update((REPO / "pyproject.toml").read_bytes())
    h.update(f"{PYSPARK} {PY4J} {base_site} {sys.version}".encode())
    return h.hexdigest()[:16]


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def ensure(venv: Path = VENV, *, quiet: bool = True) -> Path:
    """Build ``venv`` if it is missing or stale; return its python."""
    base_site = sysconfig.get_paths()["purelib"]
    key = _key(base_site)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key_file = venv / KEY_FILE
        if key_file.exists() and key_file.read_text().strip() == key and _python(venv).exists():
            return _python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = _site(venv)
        (site / "_lakehouse_base_env.pth").write_text(f"import site; site.addsitedir({base_site!r})\n")
        # pip of the base environment installs into the new one (--prefix keeps it out of the base environment).
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
               "--no-warn-script-location", "--ignore-installed", "--prefix", str(venv), PYSPARK, PY4J]
        if quiet:
            cmd.insert(4, "-q")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SparkVenvError(f"pip could not install {PYSPARK} into {venv}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
        check = subprocess.run(
            [str(_python(venv)), "-c", "import pyspark, pyspark.core.context, lakehouse; print(pyspark.__file__)"],
            capture_output=True, text=True, cwd=REPO,
        )
        if check.returncode or not check.stdout.strip().startswith(str(site)):
            raise SparkVenvError(f"{venv} does not import the JVM pyspark first: {check.stdout}{check.stderr}")
        key_file.write_text(key + "\n")
        return _python(venv)


if __name__ == "__main__":
    print(ensure(quiet=False))
