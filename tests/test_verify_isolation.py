"""`vigil verify` scores the bundle in a worker process: an interpreter crash is one line, not exit -11."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.models import normal_rows


@pytest.mark.slow
def test_verify_reports_an_interpreter_crash_in_one_line(
    tiny_bundle_3f: Path, tiny_run_3f: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.bundle import load_bundle
    from vigil.cli import app

    data = tmp_path / "more.csv"
    np.savetxt(data, normal_rows(120, 3, seed=1, start=720), delimiter=",", header="f0,f1,f2", comments="",
               fmt="%.6f")
    mode = load_bundle(tiny_bundle_3f).quantization
    # The worker crashes on purpose (SIGSEGV) when it is asked to score this bundle's mode.
    monkeypatch.setenv("VIGIL_CONVERT_CRASH", f"{mode}:verify")
    crashed = CliRunner().invoke(app, ["verify", str(tiny_bundle_3f), str(tiny_run_3f), str(data)])
    assert crashed.exit_code == 1, crashed.output
    lines = crashed.output.strip().splitlines()
    assert len(lines) == 1 and "SIGSEGV" in lines[0] and "device interpreter" in lines[0], crashed.output
    # The next verify in the same process gets a fresh worker and passes.
    monkeypatch.delenv("VIGIL_CONVERT_CRASH")
    again = CliRunner().invoke(app, ["verify", str(tiny_bundle_3f), str(tiny_run_3f), str(data)])
    assert again.exit_code == 0 and "parity passed" in again.output, again.output
