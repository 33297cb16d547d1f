"""`vigil train` on training data as users have it: constant columns, short slices, contamination."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.fit import TrainConfig, run_train

TINY = {"units": (8, 4), "epochs": 2, "batch_size": 32, "seed": 0}


def _csv(path: Path, values: np.ndarray, names: list[str], rate_hz: float | None = None) -> Path:
    head = (["time"] if rate_hz else []) + names
    lines = [",".join(head)]
    for i, row in enumerate(values):
        cells = ([f"{i / rate_hz:.3f}"] if rate_hz else []) + [f"{v:.5f}" for v in row]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_fully_constant_training_set_trains_with_a_nonzero_threshold(tmp_path: Path) -> None:
    from trainer.keras_scoring import score_rows

    rows = np.column_stack([np.full(300, 4.0), np.zeros(300)])
    data = _csv(tmp_path / "status.csv", rows, ["level", "state"])
    lines: list[str] = []
    run = run_train(TrainConfig(data=data, out=tmp_path / "run", window=16, echo=lines.append, **TINY))
    meta = json.loads((run.path / "run.json").read_text())
    assert run.threshold > 0
    stats = meta["training"]["feature_stats"]
    assert stats["level"]["constant"] and stats["state"]["constant"]
    assert any("every feature is constant" in line for line in lines)
    assert meta["training"]["skill_ratio"] is None  # flat held-out windows: no ratio
    # a departure of the status by one unit in a few rows is far above the threshold
    test = rows[:64].copy()
    test[40:44, 1] = 1.0
    scores = score_rows(run.load_model(), test, run.scaler, run.spec).window_scores
    assert scores.max() > 100 * run.threshold
    assert scores[:5].max() <= run.threshold  # the constant itself does not alarm


@pytest.mark.slow
def test_short_slice_picks_a_window_and_the_budget_sets_the_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(260)
    rows = (np.sin(2 * np.pi * t / 20) + rng.normal(0, 0.05, t.size))[:, None]
    rows[30:34] += 6.0  # contamination in the fitted part
    data = _csv(tmp_path / "short.csv", rows, ["v"], rate_hz=10.0)
    lines: list[str] = []
    run = run_train(TrainConfig(data=data, out=tmp_path / "run", clean="contamination=0.05",
                                echo=lines.append, **TINY))
    meta = json.loads((run.path / "run.json").read_text())
    choice = meta["training"]["window_choice"]
    # 260 rows: 52 held out, 8 held-out windows at hop 4 -> at most window 24; the period is 20
    assert choice["requested"] == 128 and choice["largest_possible"] == 24 and choice["dominant_period"] == 20
    assert meta["window"] == 20 and any("using window 20" in line for line in lines)
    clean = meta["training"]["clean"]
    assert clean["dropped"] >= 1 and any("dropped" in line for line in lines)
    threshold = meta["threshold"]
    assert threshold["strategy"] == "pot" and threshold["params"]["false_alarms"] == "auto"
    # 1/day at 10 Hz, hop 4 is 4.6e-6 per window: 24,000x rarer than one of the 9 held-out windows.
    # auto never extrapolates the tail more than 10x past them, and says so.
    n_held = meta["training"]["n_heldout_windows"]
    assert threshold["params"]["q_risk"] == pytest.approx(1 / (10 * n_held))
    assert any("extrapolate" in line for line in lines)
    per_day = 86400 * 10.0 / 4
    assert threshold["params"]["expected_false_alarms_per_day"] == pytest.approx(per_day / (10 * n_held))
    assert threshold["value"] >= meta["training"]["error_stats"]["max"] * (1 - 1e-9)  # rarer than any held-out
    assert meta["baseline"]["threshold"] > 0
    assert meta["detection"]["false_alarm"]["unit"] == "day"
    assert meta["detection"]["false_alarm"]["expected"] == pytest.approx(per_day / (10 * n_held))
