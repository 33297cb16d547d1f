"""The `vigil` entry point: `agent run` skips typer (device memory), everything else goes through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import agent_run_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["agent", "run", "--config", "a.toml"], "a.toml"),
        (["agent", "run", "-c", "a.toml"], "a.toml"),
        (["agent", "run", "--config=a.toml"], "a.toml"),
        (["agent", "run"], None),
        (["agent", "run", "--config", "a.toml", "--help"], None),
        (["agent", "run", "--help"], None),
        (["agent", "check-config", "a.toml"], None),
        (["train", "x.csv"], None),
    ],
)
def test_only_a_plain_agent_run_takes_the_fast_path(args: list[str], expected: str | None) -> None:
    assert agent_run_config(args) == expected


def test_agent_run_reports_a_bad_config_in_one_line_without_importing_typer(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text("[device]\nid = 'x'\nbogus = 1\n")
    code = (
        "import sys\n"
        "from edge_agent.cli import main\n"
        "try:\n"
        f"    main(['agent', 'run', '--config', {str(bad)!r}])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'pydantic', 'rich')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "2 []"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil agent run: ") and "device.bogus" in lines[0]
