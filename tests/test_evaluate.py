"""``vigil evaluate`` end to end on a tiny real run, plus its one-line input errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.models import feature_names, normal_rows, with_anomalies
from vigil.cli import app

N_TEST = 400
ANOMALIES = [(150, 170), (300, 305)]  # inclusive test-file rows
PLOTS = {"timeline", "roc", "pr", "threshold", "histogram", "latent", "published"}


def write_csv(path: Path, rows: np.ndarray) -> Path:
    names = feature_names(rows.shape[1])
    np.savetxt(path, rows, delimiter=",", header=",".join(names), comments="", fmt="%.6f")
    return path


@pytest.fixture(scope="module")
def test_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaldata")
    # The tiny run was trained on rows 0..719 of the same signal; continue it.
    rows = with_anomalies(normal_rows(N_TEST, 3, start=720), ANOMALIES)
    labels = root / "labels.csv"
    labels.write_text("start,end\n" + "".join(f"{s},{e}\n" for s, e in ANOMALIES))
    return write_csv(root / "test.csv", rows), labels


@pytest.fixture()
def fake_run(tmp_path: Path) -> Path:
    """A run.json without a model: enough to reach every input check before scoring."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "format": "vigil-run/1", "features": ["f0", "f1", "f2"], "timestamp_column": None,
        "window": 16, "hop": 1}))
    return run


@pytest.mark.slow
def test_run_evaluate_writes_metrics_plots_and_report(tiny_run_3f: Path, test_files: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    from trainer.evaluate import run_evaluate, summarize

    data, labels = test_files
    out = tmp_path / "eval"
    result = run_evaluate(tiny_run_3f, data, labels, out=out)

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    # Next to the row metrics: the events the device's own pipeline publishes for these rows.
    published = result["published"]
    assert published["n_events"] == len(published["events"]) >= 1
    assert published["event"]["tp"] + published["event"]["fn"] == len(ANOMALIES)
    assert published["event"]["fp"] <= published["n_events"]
    assert "published events" in summarize(result)
    assert result["label_ranges"] == [list(r) for r in ANOMALIES]
    assert result["n_rows"] == N_TEST and result["n_scored_rows"] == N_TEST - 15  # window 16
    assert set(result["models"]) == {"lstm_autoencoder", "isolation_forest"}
    for m in result["models"].values():
        e, p = m["event"], m["point"]
        assert e["tp"] + e["fn"] == len(ANOMALIES)
        assert sum(map(sum, m["confusion_matrix"]["matrix"])) == N_TEST
        assert p["tp"] + p["fn"] == sum(end - start + 1 for start, end in ANOMALIES)
        assert 0.0 <= m["roc_auc"] <= 1.0 and 0.0 <= m["pr_auc"] <= 1.0
        false_runs = [ev for ev in m["predicted_events"]
                      if not any(ev[0] <= end and ev[1] >= start for start, end in ANOMALIES)]
        assert len(false_runs) == e["fp"]
        assert all(15 <= s <= end < N_TEST for s, end in m["predicted_events"])
        assert np.isfinite(m["threshold"])
    ae = result["models"]["lstm_autoencoder"]
    # Offsets of +2 with noise are far outside the trained signal: both events found, AUC high.
    assert ae["event"]["recall"] == 1.0
    assert ae["roc_auc"] > 0.8
    assert ae["threshold"] == pytest.approx(json.loads((tiny_run_3f / "run.json").read_text())["threshold"]["value"])

    report = (out / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", report)
    assert set(result["plots"]) >= PLOTS
    assert len(images) == len(result["plots"])
    for name, file in result["plots"].items():
        png = out / file
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert base64.b64encode(png.read_bytes()).decode() in images, name
    assert "IsolationForest" in report and "LSTM autoencoder" in report
    text = summarize(result)
    assert "LSTM autoencoder" in text and "tp=" in text


@pytest.mark.slow
def test_rows_slice_keeps_file_row_numbers_and_cli_prints_report(tiny_run_3f: Path, test_files: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    data, labels = test_files
    run = Path(shutil.copytree(tiny_run_3f, tmp_path / "run"))
    _write_loss_png(run / "loss.png")  # as the trainer leaves it
    result = CliRunner().invoke(app, ["evaluate", str(run), str(data), "--labels", str(labels),
                                      "--rows", "100:400"])
    assert result.exit_code == 0, result.output
    out = run / "eval"  # the default
    assert f"report:  {out / 'report.html'}" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["plots"]["loss"] == "loss.png" and (out / "loss.png").read_bytes() == (run / "loss.png").read_bytes()
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(PLOTS) + 1
    assert metrics["rows"] == [100, 400] and metrics["n_rows"] == 300
    assert metrics["label_ranges"] == [list(r) for r in ANOMALIES]  # still file rows
    ae = metrics["models"]["lstm_autoencoder"]
    assert ae["event"]["tp"] == 2
    # Predicted events are reported in file rows: the first scored row is 100 + 15.
    assert all(s >= 115 for s, _ in ae["predicted_events"])
    assert any(s <= 170 and e >= 150 for s, e in ae["predicted_events"])


def test_pca_2d_finds_the_main_axis() -> None:
    from trainer.plots import pca_2d

    t = np.linspace(-1, 1, 50)
    codes = np.column_stack([t, 2 * t, np.zeros(50)])  # all variance along (1, 2, 0)
    xy, shares = pca_2d(codes)
    assert shares[0] == pytest.approx(1.0) and shares[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(t) * np.sqrt(5), atol=1e-9)


def _write_loss_png(path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1.0, 0.5, 0.3])
    fig.savefig(path)
    plt.close(fig)


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def test_missing_labels_file_is_exit_2(fake_run: Path, test_files: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = test_files
    code, output = invoke([str(fake_run), str(data), "--labels", str(tmp_path / "nope.csv")])
    assert code == 2
    assert output.strip().count("\n") == 0 and "label file not found" in output


def test_unknown_series_and_channel_are_exit_2(fake_run: Path, test_files: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    data, _ = test_files
    nab = tmp_path / "windows.json"
    nab.write_text(json.dumps({"a/x.csv": [[1, 2]], "a/y.csv": []}))
    code, output = invoke([str(fake_run), str(data), "--labels", str(nab), "--series", "a/z.csv"])
    assert code == 2 and "series not in the label file" in output and output.strip().count("\n") == 0
    tele = tmp_path / "labeled_anomalies.csv"
    tele.write_text('chan_id,anomaly_sequences\nP-1,"[[1, 5]]"\n')
    code, output = invoke([str(fake_run), str(data), "--labels", str(tele), "--channel", "Q-7"])
    assert code == 2 and "channel" in output and output.strip().count("\n") == 0


def test_labels_outside_the_rows_are_exit_2(fake_run: Path, test_files: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = test_files
    code, output = invoke([str(fake_run), str(data), "--labels", str(labels), "--rows", "200:290"])
    assert code == 2
    assert "outside the evaluated data rows [200, 290)" in output and output.strip().count("\n") == 0


def test_not_a_run_directory_is_exit_2(tmp_path: Path, test_files: tuple[Path, Path]) -> None:
    data, labels = test_files
    code, output = invoke([str(tmp_path), str(data), "--labels", str(labels)])
    assert code == 2 and "run.json" in output
