"""AER model option: train -> convert -> bundle -> the device's Scorer, on a tiny model.

Real training (tf_keras, a few epochs), real TFLite conversion and the real
interpreter; only the data is generated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_agent.core.aer import part_errors, residual_gain, row_factors, score_shares
from edge_agent.errors import VigilInputError
from tests.models import normal_rows

WINDOW = 16
N_FEATURES = 2


@pytest.fixture(scope="module")
def aer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.fit import TrainConfig, run_train

    base = tmp_path_factory.mktemp("aer")
    data = base / "rows.csv"
    rows = normal_rows(700, N_FEATURES, seed=3)
    np.savetxt(data, rows, delimiter=",", header="a,b", comments="")
    run = run_train(TrainConfig(data=data, out=base / "run", window=WINDOW, hop=1, model="aer", units=(8, 4),
                                epochs=4, learning_rate=1e-2, echo=lambda _m: None))
    return Path(run.path)


@pytest.fixture(scope="module")
def aer_bundle(aer_run: Path) -> Path:
    from tests.models import make_tiny_bundle

    return make_tiny_bundle(aer_run, aer_run.parent / "aer.vigil", mode="float32")


def test_row_factors_weight_each_part_by_lambda() -> None:
    factors = row_factors(10, 0.5, reconstruction_scale=2.0, regression_scale=4.0)
    steps = np.ones((1, 10, 1))
    steps[0, 1:-1] = 2.0  # reconstruction errors at their scale
    steps[0, [0, -1]] = 4.0  # regression errors at theirs
    assert float(np.mean(factors * steps[0, :, 0])) == pytest.approx(1.0)
    assert np.allclose(residual_gain(factors, "mse") ** 2, factors)
    rec, reg = part_errors(steps)
    assert (float(rec[0]), float(reg[0])) == (2.0, 4.0)
    with pytest.raises(ValueError, match="at least 4"):
        row_factors(3)


def test_run_and_manifest_say_aer(aer_run: Path, aer_bundle: Path) -> None:
    from edge_agent.bundle import load_bundle
    from trainer.rundir import read_run

    run = read_run(aer_run)
    assert run.model_shape.kind == "aer"
    section = run.meta["model"]["aer"]
    assert section["regressed_rows"] == [0, WINDOW - 1]
    assert section["reconstruction_scale"] > 0 and section["regression_scale"] > 0
    bundle = load_bundle(aer_bundle)
    assert bundle.model_kind == "aer"
    assert bundle.manifest["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0) >= 2


def test_bundle_scores_match_keras_within_parity(aer_run: Path, aer_bundle: Path) -> None:
    from converter.parity import spearman
    from edge_agent.bundle import load_bundle
    from edge_agent.core import WindowSpec, sliding_windows
    from edge_agent.runtime import Scorer
    from trainer.keras_scoring import keras_window_scores
    from trainer.rundir import read_run

    run = read_run(aer_run)
    rows = normal_rows(200, N_FEATURES, seed=3, start=700)
    raw_windows = sliding_windows(rows, WindowSpec(WINDOW, 3))
    keras_scores, _ = keras_window_scores(run.load_model(), run.scaler.transform(raw_windows), "mse", None)
    scorer = Scorer(load_bundle(aer_bundle))
    scored = [scorer.score(w) for w in raw_windows]
    bundle_scores = np.array([s.score for s in scored])
    assert np.isfinite(bundle_scores).all()
    assert np.allclose(bundle_scores, keras_scores, rtol=1e-3, atol=1e-6)
    assert spearman(keras_scores, bundle_scores) > 0.999
    # The combined per-row error is what the pipeline aggregates; its row mean is the score.
    steps = scored[0].step_errors
    assert steps is not None and steps.shape == (WINDOW, N_FEATURES)
    assert float(steps.mean()) == pytest.approx(scored[0].score, rel=1e-6)


def test_spike_on_a_regressed_row_is_caught_by_the_regression_part(aer_run: Path, aer_bundle: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer
    from trainer.rundir import read_run

    run = read_run(aer_run)
    scorer = Scorer(load_bundle(aer_bundle))
    window = normal_rows(WINDOW, N_FEATURES, seed=3, start=760)
    spiked = window.copy()
    spiked[-1, 0] += 3.0  # the window's newest row: outside the rows the network sees
    normal, anomalous = scorer.score(window), scorer.score(spiked)
    assert normal.step_errors is not None and anomalous.step_errors is not None
    # The reconstruction of the inner rows cannot see the last row: unchanged ...
    assert np.allclose(anomalous.step_errors[1:-1], normal.step_errors[1:-1], rtol=1e-5, atol=1e-9)
    # ... so the alarm comes from the forward regression of that row.
    assert anomalous.score > max(2 * normal.score, run.threshold)
    assert int(np.argmax(anomalous.step_errors[:, 0])) == WINDOW - 1
    shares = [score_shares(s.step_errors, WINDOW)["regression"] for s in (normal, anomalous)]
    assert shares[1] > shares[0]


def test_skill_ratio_is_measured_on_the_raw_prediction(aer_run: Path) -> None:
    from trainer.rundir import read_run

    ratio = read_run(aer_run).skill_ratio
    assert ratio is not None and 0 < ratio < 5


def _with_kind(bundle_path: Path, out: Path, kind: object) -> Path:
    import json

    with zipfile.ZipFile(bundle_path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(entries["manifest.json"])
    manifest["model"]["kind"] = kind
    from edge_agent.bundle import MODEL_ENTRY, pack_bundle

    out.write_bytes(pack_bundle(manifest, entries[MODEL_ENTRY]))
    return out


@pytest.mark.parametrize("kind", ["bogus", 3])
def test_unknown_model_kind_is_a_one_line_error(aer_bundle: Path, tmp_path: Path, kind: object) -> None:
    from edge_agent.bundle import load_bundle

    bad = _with_kind(aer_bundle, tmp_path / "bad.vigil", kind)
    with pytest.raises(VigilInputError) as info:
        load_bundle(bad)
    message = str(info.value)
    assert "model.kind" in message and "\n" not in message


def test_model_kind_may_be_absent_or_autoencoder(aer_bundle: Path, tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle

    assert load_bundle(_with_kind(aer_bundle, tmp_path / "ae.vigil", "autoencoder")).model_kind == "autoencoder"


def test_aer_needs_a_window_of_four(tmp_path: Path) -> None:
    from trainer.fit import TrainConfig, run_train

    data = tmp_path / "rows.csv"
    np.savetxt(data, normal_rows(300, 1), delimiter=",", header="a", comments="")
    with pytest.raises(VigilInputError, match="at least 4"):
        run_train(TrainConfig(data=data, out=tmp_path / "run", window=3, model="aer", echo=lambda _m: None))


def test_cli_model_aer_window_too_short_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vigil.cli.typer_app import app

    data = tmp_path / "rows.csv"
    np.savetxt(data, normal_rows(300, 1), delimiter=",", header="a", comments="")
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--model", "aer",
                                      "--window", "3"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--model aer needs --window of at least 4" in lines[0]
