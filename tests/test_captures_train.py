"""`vigil train --extra-normal`: captures marked normal become fitted rows; the held-out tail stays DATA's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_agent.captures import CaptureStore
from tests.models import normal_rows
from tests.test_agent_service import vigil_argv
from trainer.prepare import EXTRA_NORMAL_FILE, with_extra_normal


def write_data(path: Path, n_rows: int = 400) -> np.ndarray:
    rows = normal_rows(n_rows, 2, 0)
    lines = ["time,a,b"] + [f"{i * 0.01:.2f},{x:.6f},{y:.6f}" for i, (x, y) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return rows


def write_capture(folder: Path, name: str, rows: np.ndarray, features: list[str]) -> Path:
    store = CaptureStore(folder, 10, 10**8)
    assert store.write(name, rows, {"schema": "vigil.capture/1", "name": name, "features": features,
                                    "rows": {"count": len(rows)}})
    return folder / f"{name}.json"


def options(data: Path, out: Path, **extra) -> dict:
    return {"data": data, "out": out, "columns": None, "train_rows": (0, 300), "timestamp_column": None,
            "labels": None, **extra}


def test_captures_go_first_and_keep_the_rate(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.csv")
    cap = write_capture(tmp_path / "caps", "c1", normal_rows(50, 2, 0, start=5000), ["a", "b"])
    write_capture(tmp_path / "caps", "c2", normal_rows(30, 2, 0, start=6000), ["a", "b"])
    opts, note = with_extra_normal(options(tmp_path / "data.csv", tmp_path / "run"), [tmp_path / "caps"],
                                   tmp_path / "stage")
    combined = np.loadtxt(opts["data"], delimiter=",", skiprows=1)
    assert combined.shape == (80 + 300, 3) and note["rows"] == 80 and note["data_rows"] == [0, 300]
    np.testing.assert_allclose(combined[:50, 1:], np.load(cap.with_suffix(".npy")), atol=1e-6)
    np.testing.assert_allclose(combined[80:, 1:], data[:300], atol=1e-6)
    assert np.allclose(np.diff(combined[:, 0]), 0.01)  # DATA's 100 Hz, so per-day budgets still apply
    assert opts["timestamp_column"] == "timestamp" and opts["columns"] == ["a", "b"] and opts["train_rows"] is None
    assert (tmp_path / "stage" / EXTRA_NORMAL_FILE).read_text().startswith("timestamp,a,b\n")


@pytest.mark.parametrize("features, extra, expect", [
    (["x", "y"], {}, "differ from the training columns"),
    (["a", "b"], {"labels": "labels.csv"}, "cannot be combined with --labels"),
])
def test_unusable_captures_are_one_line_errors(tmp_path: Path, features: list[str], extra: dict, expect: str) -> None:
    write_data(tmp_path / "data.csv")
    cap = write_capture(tmp_path / "caps", "c1", normal_rows(50, 2, 0), features)
    result = subprocess.run(vigil_argv("train", str(tmp_path / "data.csv"), "--out", str(tmp_path / "run"),
                                       "--extra-normal", str(cap),
                                       *(["--labels", str(tmp_path / "x.csv"), "--threshold", "best-f1"]
                                         if extra else [])),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and expect in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow  # one tiny real training
def test_train_with_extra_normal_adds_the_rows(tmp_path: Path) -> None:
    write_data(tmp_path / "data.csv")
    cap = write_capture(tmp_path / "caps", "c1", normal_rows(64, 2, 0, start=5000), ["a", "b"])
    result = subprocess.run(vigil_argv("train", str(tmp_path / "data.csv"), "--train-rows", "0:300", "--out",
                                       str(tmp_path / "run"), "--extra-normal", str(cap), "--window", "16",
                                       "--hop", "2", "--units", "8,4", "--epochs", "1", "--clean", "off"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "--extra-normal: 64 rows from 1 capture(s) added before 300 rows" in result.stdout
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert np.load(run / "train_rows.npy").shape == (364, 2)
    assert meta["training"]["rows"] == [0, 364] and meta["training"]["extra_normal"]["rows"] == 64
    assert meta["training"]["heldout_rows"][0] > 64  # the held-out tail is DATA's
    assert meta["training"]["source"] == str(run / EXTRA_NORMAL_FILE) and (run / EXTRA_NORMAL_FILE).is_file()
    assert meta["sampling_rate_hz"] == pytest.approx(100.0)
    assert not (tmp_path / ".run.extra-normal").exists()
