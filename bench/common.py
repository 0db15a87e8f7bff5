"""Shared pieces of the benchmarks: landing generated data through the ``lakehouse generate`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Generated:
    """What one ``lakehouse generate`` run landed: its summary (truth/generation.json), wall time and output."""

    summary: dict
    seconds: float
    stdout: str


def generate_landing(data_root: Path, *, start: str, days: int, orders_per_day: int, customers: int, seed: int,
                     extra: Sequence[str] = ()) -> Generated:
    """Run ``lakehouse generate`` in a subprocess (its own time and memory) with only ``LAKEHOUSE_DATA_ROOT`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_DATA_ROOT"] = str(data_root)
    cmd = [sys.executable, "-m", "lakehouse.cli", "generate", "--start", str(start), "--days", str(days),
           "--orders-per-day", str(orders_per_day), "--customers", str(customers), "--seed", str(seed),
           *extra, "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"lakehouse generate failed (exit {proc.returncode})")
    summary = json.loads((Path(data_root) / "truth" / "generation.json").read_text())
    return Generated(summary, seconds, proc.stdout)
