"""`vigil train` end to end on generated data, and its one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

VIGIL = [sys.executable, "-m", "vigil.cli"] if not (Path(sys.executable).parent / "vigil").exists() \
    else [str(Path(sys.executable).parent / "vigil")]


def _sine_csv(path: Path, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    values = np.column_stack([np.sin(2 * np.pi * t / 16), 0.5 * np.cos(2 * np.pi * t / 24) + 1.0])
    values += rng.normal(0.0, 0.03, values.shape)
    lines = ["time,vib,temp"] + [f"{i * 0.01:.2f},{a:.5f},{b:.5f}" for i, (a, b) in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return values


def _vigil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*VIGIL, "train", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "case, content, extra, expect",
    [
        ("missing file", None, [], "file not found"),
        ("missing column", "a,b\n" + "1,2\n" * 80, ["--columns", "a,zz"], "column 'zz'"),
        ("non-numeric cell", "a,b\n" + "1,2\n" * 40 + "1,oops\n" + "1,2\n" * 40, [], "non-numeric value 'oops'"),
        ("too few rows", "a,b\n" + "1,2\n" * 10, [], "needs at least"),
        ("bad threshold", "a,b\n" + "1,2\n" * 80, ["--threshold", "median"], "unknown threshold strategy"),
        ("bad budget", "a,b\n" + "1,2\n" * 80, ["--false-alarms", "often"], "--false-alarms must be auto or a rate"),
        ("bad clean", "a,b\n" + "1,2\n" * 80, ["--clean", "sometimes"], "--clean must be auto, off"),
        ("bad scaler", "a,b\n" + "1,2\n" * 80, ["--scaler", "quantile"], "--scaler must be minmax, standard or robust"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str, content: str | None, extra: list[str],
                                          expect: str) -> None:
    data = tmp_path / "data.csv"
    if content is not None:
        data.write_text(content)
    result = _vigil(str(data), *extra, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, (case, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (case, result.stderr)
    assert lines[0].startswith("vigil train: ") and expect in lines[0], (case, lines[0])
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "run.json").exists()


def test_cli_defaults_match_train_config() -> None:
    from trainer.fit import TrainConfig
    from vigil.cli.train_cmds import DEFAULTS

    config_defaults = {f.name: f.default for f in fields(TrainConfig)}
    for key, value in DEFAULTS.items():
        expected = config_defaults[key]
        if key == "units":
            expected = ",".join(str(u) for u in expected)
        assert value == expected, key


@pytest.mark.slow
def test_train_end_to_end(tmp_path: Path) -> None:
    from edge_agent.core import sliding_windows
    from trainer.baseline import baseline_from_run
    from trainer.fit import TrainConfig, run_train, split_train_rows
    from trainer.keras_scoring import score_rows

    data = tmp_path / "machine.csv"
    values = _sine_csv(data, 900)
    lines: list[str] = []
    run = run_train(TrainConfig(data=data, out=tmp_path / "run", train_rows=(0, 600), window=16, hop=1, units=(16, 8),
                                epochs=6, batch_size=32, learning_rate=5e-3, seed=1, threshold="mean+k*std",
                                clean="off", echo=lines.append))

    # run directory: every documented file and run.json key
    for name in ("model.keras", "run.json", "train_rows.npy", "loss.png"):
        assert (run.path / name).stat().st_size > 0, name
    meta = json.loads((run.path / "run.json").read_text())
    for key in ("features", "timestamp_column", "sampling_rate_hz", "window", "hop", "scaler", "score",
                "smoothing", "threshold", "model", "training", "baseline", "seed", "versions", "created"):
        assert key in meta, key
    assert meta["features"] == ["vib", "temp"] and meta["timestamp_column"] == "time"
    assert meta["sampling_rate_hz"] == pytest.approx(100.0)
    training = meta["training"]
    assert training["rows"] == [0, 600] and training["validation_fraction"] == 0.2
    assert training["n_fit_windows"] == 480 - 16 + 1 and training["n_heldout_windows"] == 120 - 16 + 1
    assert 1 <= training["best_epoch"] <= training["epochs_run"] <= 6
    assert len(training["history"]["val_loss"]) == training["epochs_run"]
    assert set(training["error_stats"]) == {"mean", "std", "q50", "q90", "q99", "max"}
    assert training["skill_ratio"] > 0 and any(line.startswith("skill ratio") for line in lines)
    assert set(training["feature_stats"]) == {"vib", "temp"} and not training["feature_stats"]["vib"]["constant"]
    assert meta["model"]["center"] is True
    assert meta["threshold"]["strategy"] == "mean+k*std" and meta["threshold"]["params"]["k"] == 3.0
    assert meta["baseline"]["kind"] == "isolation_forest" and meta["baseline"]["seed"] == 1
    assert sum(line.startswith("epoch ") for line in lines) == training["epochs_run"]
    # progress before the first epoch: the build is announced, then the trace, then epoch lines
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    assert lines.index("building model ...") < lines.index(next(x for x in lines if x.startswith("starting epoch 1")))
    assert lines.index(next(x for x in lines if x.startswith("starting epoch 1"))) < first_epoch
    # the deviation scale the model learnt in is stored (and is the model's own)
    assert len(training["shape_scale"]) == 2 and all(v > 0 for v in training["shape_scale"])
    assert training["lr_schedule"] == "plateau"
    np.testing.assert_allclose(run.train_rows(), values[:600], atol=1e-5)
    # the scaler saw only the fitted rows
    fit_rows, held = split_train_rows(run.train_rows(), 0.2)
    assert run.scaler.offset == pytest.approx(fit_rows.min(axis=0).tolist())

    # the threshold is mean + 3 std of the held-out windows' scores, smoothed as the device will
    model = run.load_model()
    alpha = meta["detection"]["policy"]["smoothing"]
    held_scores = score_rows(model, held, run.scaler, run.spec, smoothing_alpha=alpha).window_scores
    assert run.threshold == pytest.approx(held_scores.mean() + 3 * held_scores.std(), rel=1e-4)

    # new normal rows stay mostly below the threshold; an injected anomaly goes above
    test = values[600:].copy()
    normal = score_rows(model, test, run.scaler, run.spec, smoothing_alpha=alpha).window_scores
    assert np.mean(normal > run.threshold) < 0.05
    test[150:170, 0] += 2.5
    scores = score_rows(model, test, run.scaler, run.spec, smoothing_alpha=alpha).row_scores
    assert np.nanmax(scores[150:186]) > 2 * run.threshold

    base = baseline_from_run(run)
    b_scores = base.window_scores(test)
    assert len(b_scores) == len(sliding_windows(test, run.spec))
    assert b_scores[150:170].max() > base.threshold
