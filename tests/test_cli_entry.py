"""The `vigil` entry point: `vigil agent ...` is the device's argparse launcher (no typer), the rest is typer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = (
    "import sys\n"
    "from vigil.cli import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit as exc:\n"
    "    print(exc.code, sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'pydantic', 'rich', 'click')))\n"
)


@pytest.mark.parametrize("command", [["run", "--config"], ["check-config"]])
def test_agent_commands_report_a_bad_config_in_one_line_without_importing_typer(
    tmp_path: Path, command: list[str]
) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text("[device]\nid = 'x'\nbogus = 1\n")
    argv = ["agent", *command, str(bad)]
    done = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "2 []"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vigil agent {command[0]}: ") and "device.bogus" in lines[0]


def test_agent_usage_mistake_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "edge_agent", "run"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--config" in lines[0] and lines[0].startswith("python -m edge_agent run:")


def test_python_m_edge_agent_help_lists_the_device_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "edge_agent", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0
    assert "run" in done.stdout and "check-config" in done.stdout


# `python -m edge_agent ARGS` in a child, reporting its exit code and which workstation packages it imported.
_RUN_MODULE = (
    "import runpy, sys\n"
    "sys.argv = ['edge_agent', *{argv!r}]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_module('edge_agent', run_name='__main__', alter_sys=True)\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "WORKSTATION = {{'vigil', 'trainer', 'converter', 'typer', 'tensorflow', 'keras', 'sklearn', 'matplotlib'}}\n"
    "print('EXIT', code, sorted({{m.split('.')[0] for m in sys.modules}} & WORKSTATION), file=sys.stderr)\n"
)


def _python_m_edge_agent(*argv: str, cwd: Path) -> tuple[str, str, str]:
    """(stdout, stderr before the probe line, probe line) of ``python -m edge_agent ARGV``."""
    done = subprocess.run([sys.executable, "-c", _RUN_MODULE.format(argv=list(argv))], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    *rest, probe = done.stderr.strip().splitlines() or [""]
    return done.stdout, "\n".join(rest), probe


@pytest.mark.slow  # uses the converted tiny bundle
def test_python_m_edge_agent_checks_and_runs_the_agent_without_workstation_code(tmp_path: Path,
                                                                              tiny_bundle_3f: Path) -> None:
    from tests.test_agent_service import write_anomalous_csv

    start, end = 300, 340  # one disturbance
    write_anomalous_csv(tmp_path / "data.csv", n_rows=600, ranges=[(start, end)])
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "entry-dev"\n[bundle]\npath = "{tiny_bundle_3f}"\n'
        '[source]\nkind = "replay"\npath = "data.csv"\npace = "fast"\n'
        '[alerts]\nk = 2\nn = 3\nm = 3\n[sinks]\njsonl = "out/alerts.jsonl"\n', encoding="utf-8")

    out, err, probe = _python_m_edge_agent("check-config", str(config), cwd=tmp_path)
    assert probe == "EXIT 0 []", err
    assert out.startswith(f"# effective configuration of {config}") and 'kind = "replay"' in out
    assert "# the model loads in " in out  # the bundle's model was loaded in the real interpreter

    out, err, probe = _python_m_edge_agent("run", "--config", str(config), cwd=tmp_path)
    assert probe == "EXIT 0 []", err
    alerts = [json.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    opens = [a["event_id"] for a in alerts if a["phase"] == "open"]
    assert opens and opens == [a["event_id"] for a in alerts if a["phase"] == "close"]
    assert {a["device_id"] for a in alerts} == {"entry-dev"}
    assert any(a["start_sample"] <= end + 16 and a["end_sample"] >= start for a in alerts if a["phase"] == "close")
