"""The README's commands work: every `lakehouse ...` line parses, every `prefect deployment run` names a deployment of
prefect.yaml, and the main job (`lakehouse demo`) runs end to end on a small data set."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent


def _code_lines() -> list[str]:
    """Every command line inside the README's fenced code blocks (continuations joined, comments dropped)."""
    lines, inside, pending = [], False, ""
    for raw in README.read_text().splitlines():
        if raw.strip().startswith("```"):
            # only shell blocks hold commands (```bash / ```sh); YAML, Python and tables are not parsed
            inside = (not inside) and raw.strip()[3:].strip() in ("bash", "sh", "shell")
            continue
        if not inside:
            continue
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            lines.append(line)
    return lines


def _commands(program: str) -> list[list[str]]:
    """argv of every `program ...` invocation in the README (also inside `a && b` chains and after VAR=x prefixes)."""
    out = []
    for line in _code_lines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part.strip(), posix=True) if part.strip() else []
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]
            if words and words[0] in ("sudo",):
                words = words[1:]
            if words and Path(words[0]).name == program:
                out.append(words[1:])
    return out


@pytest.mark.unit
def test_readme_lakehouse_commands_parse():
    from lakehouse.cli import build_parser

    commands = _commands("lakehouse")
    assert ["demo"] in commands, "the README's main job is `lakehouse demo`"
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on an unknown command or flag
            raise AssertionError(f"README command does not parse: lakehouse {' '.join(argv)}") from exc


@pytest.mark.unit
def test_readme_prefect_commands_name_real_deployments():
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {f"{d['entrypoint'].rsplit(':', 1)[1]}/{d['name']}" for d in doc["deployments"]}
    for argv in _commands("prefect"):
        if argv[:2] == ["deployment", "run"]:
            assert argv[2] in names, f"README runs unknown deployment {argv[2]} (known: {sorted(names)})"


@pytest.mark.flow
def test_demo_runs_end_to_end_on_a_small_data_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "SPARK_REMOTE"))}
    env["LAKEHOUSE_DATA_ROOT"] = str(tmp_path / "lh")
    done = subprocess.run(
        [str(BIN / "lakehouse"), "demo", "--days", "1", "--customers", "40", "--orders-per-day", "12"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== pipeline 2026-01-01 ==" in done.stdout
    match = re.search(r"published gold: manifest v(\d+) for (\S+)", done.stdout)
    assert match and int(match.group(1)) == 1 and match.group(2) == "2026-01-01", done.stdout[-2000:]
    assert re.search(r"gold\.fact_sales\s+[1-9][\d,]* rows", done.stdout)


@pytest.mark.unit
def test_ci_runs_exactly_the_readme_test_command():
    """The README's set-up section gives two commands; .ci/run runs the second one verbatim."""
    setup = README.read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", setup, flags=re.S)
    assert len(blocks) >= 2, "the set-up section needs the main-job and the test command"
    test_command = blocks[1].strip()
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert test_command in ci, f".ci/run does not run the README's test command {test_command!r}"
