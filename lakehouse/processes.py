"""Stopping child processes we started (test servers, benchmark servers), by their PID only."""

from __future__ import annotations

import subprocess


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
