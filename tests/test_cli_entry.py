"""The `vigil` entry point: `vigil agent ...` is the device's argparse launcher (no typer), the rest is typer."""

from __future__ import annotations

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
