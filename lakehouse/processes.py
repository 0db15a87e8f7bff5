"""Child processes we started (test servers, benchmark servers): waiting until they answer, stopping them by PID."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request


def stop_process(proc: subprocess.Popen, *, grace_s: float = 20.0) -> None:
    """Stop ``proc`` (a child we started): SIGTERM to its PID, SIGKILL if it is still alive after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_http_ready(port: int, proc: subprocess.Popen, *, path: str = "/ready", timeout_s: float = 120.0,
                    poll_s: float = 0.3) -> dict:
    """Poll ``http://127.0.0.1:<port><path>`` until it answers, and return its JSON; raise when ``proc`` exits
    first or ``timeout_s`` passes."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready (see its log)")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(poll_s)
    raise RuntimeError(f"server not ready after {timeout_s}s")
