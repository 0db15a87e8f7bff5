"""The local Prefect services: server (UI on 127.0.0.1:4200), process work pool and worker, deployments.

Telemetry is off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``) and ``PREFECT_HOME`` defaults to ``<data_root>/prefect``
so that the server's database lives beside the lakehouse data, unless the environment already sets it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
WORK_POOL = "lakehouse"


def prefect_executable() -> str:
    """The ``prefect`` command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("prefect")
    if beside.exists():
        return str(beside)
    found = shutil.which("prefect")
    if not found:
        raise LakehouseError("the `prefect` command is not installed in this environment: pip install -e . first")
    return found


def api_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The API URL of a local server."""
    return f"http://{host}:{port}/api"


def prefect_env(settings: Settings, *, url: str | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Prefect commands: telemetry off, PREFECT_HOME under the data root, the API URL."""
    env = dict(os.environ if base is None else base)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("DO_NOT_TRACK", "1")
    if "PREFECT_HOME" not in env and not str(settings.data_root).startswith("s3://"):
        env["PREFECT_HOME"] = str(Path(settings.data_root).expanduser().resolve() / "prefect")
    if url:
        env["PREFECT_API_URL"] = url
    else:
        env.setdefault("PREFECT_API_URL", api_url())
    return env


def server_command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """The command line that starts the server."""
    return [prefect_executable(), "server", "start", "--host", host, "--port", str(port)]


def worker_command(pool: str = WORK_POOL, *, name: str | None = None, limit: int | None = None) -> list[str]:
    """The command line that starts a process worker on ``pool`` (creating the pool if missing)."""
    cmd = [prefect_executable(), "worker", "start", "--pool", pool, "--type", "process", "--install-policy", "never"]
    if name:
        cmd += ["--name", name]
    if limit:
        cmd += ["--limit", str(limit)]
    return cmd


def deploy_command() -> list[str]:
    """The command line that creates every deployment of ``prefect.yaml``."""
    return [prefect_executable(), "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)]


def ensure_work_pool(env: dict[str, str], pool: str = WORK_POOL) -> bool:
    """Create the process work pool when it does not exist; True when it was created."""
    probe = subprocess.run([prefect_executable(), "work-pool", "inspect", pool], env=env, capture_output=True, text=True)
    if probe.returncode == 0:
        return False
    made = subprocess.run(
        [prefect_executable(), "work-pool", "create", pool, "--type", "process"], env=env, capture_output=True, text=True
    )
    if made.returncode != 0:
        raise LakehouseError(
            f"could not create the work pool {pool!r} at {env.get('PREFECT_API_URL')}: "
            f"{(made.stderr or made.stdout).strip().splitlines()[-1:] or 'no output'}. Is `lakehouse server` running?"
        )
    return True


def _run_foreground(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """Replace this process with a long-lived command, so that its PID is this command's and signals reach it."""
    sys.stdout.flush()
    sys.stderr.flush()
    if cwd is not None:
        os.chdir(cwd)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


def run_server(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Start the Prefect server in the foreground (UI and API on host:port)."""
    env = prefect_env(settings, url=api_url(host, port))
    Path(env.get("PREFECT_HOME", ".")).mkdir(parents=True, exist_ok=True)
    print(f"Prefect UI: http://{host}:{port}   API: {api_url(host, port)}   PREFECT_HOME={env.get('PREFECT_HOME')}")
    print(f"In other shells: export PREFECT_API_URL={api_url(host, port)}")
    return _run_foreground(server_command(host, port), env)


def run_worker(settings: Settings, pool: str = WORK_POOL, *, url: str | None = None, deploy: bool = False,
               limit: int | None = None) -> int:
    """Create the process work pool if missing (optionally deploy prefect.yaml) and run a worker in the foreground."""
    env = prefect_env(settings, url=url)
    if ensure_work_pool(env, pool):
        print(f"created process work pool {pool!r}")
    if deploy:
        run_deploy(settings, url=url)
    print(f"worker polling pool {pool!r} at {env['PREFECT_API_URL']} (Ctrl-C to stop)")
    return _run_foreground(worker_command(pool, limit=limit), env, cwd=REPO_ROOT)


def run_deploy(settings: Settings, *, url: str | None = None, pool: str = WORK_POOL) -> int:
    """Create or update every deployment in prefect.yaml (the work pool is created first when missing)."""
    env = prefect_env(settings, url=url)
    ensure_work_pool(env, pool)
    done = subprocess.run(deploy_command(), env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise LakehouseError(f"prefect deploy failed:\n{tail}")
    print(f"deployed {PREFECT_YAML.name} to {env['PREFECT_API_URL']}")
    return 0
