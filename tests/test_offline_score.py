"""vigil score: the device's streaming pipeline on a file equals the trainer's scores for the float32 bundle."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.models import normal_rows, with_anomalies

ANOMALIES = [(150, 180), (330, 345)]


def _cli(args: list[str]):
    from vigil.cli import app

    return CliRunner().invoke(app, args)


def _read_scores(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows])


@pytest.fixture(scope="module")
def data_3f(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A CSV with a timestamp column (100 Hz) and two injected anomalies."""
    values = with_anomalies(normal_rows(480, 3, seed=0, start=720), ANOMALIES)
    stamps = 1_790_000_000.0 + np.arange(len(values)) / 100.0
    path = tmp_path_factory.mktemp("score") / "data.csv"
    lines = ["timestamp,f0,f1,f2"] + [f"{t:.2f},{a:.6f},{b:.6f},{c:.6f}"
                                      for t, (a, b, c) in zip(stamps, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path, values


def _keras_row_scores(run_dir: Path, values: np.ndarray, alpha: float | None = None, hop: int | None = None):
    from edge_agent.core import WindowSpec
    from trainer.keras_scoring import score_rows
    from trainer.rundir import read_run

    run = read_run(run_dir)
    spec = run.spec if hop is None else WindowSpec(run.spec.window, hop)
    return score_rows(run.load_model(), values, run.scaler, spec, run.score_function, run.score_weights, alpha)


def _repacked(bundle_path: Path, out: Path, **changes: object) -> Path:
    """The same model with other scoring settings (the manifest hash is recomputed by pack_bundle)."""
    from edge_agent.bundle import load_bundle, pack_bundle

    bundle = load_bundle(bundle_path)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest.update(changes)
    out.write_bytes(pack_bundle(manifest, bundle.model_bytes))
    return out


@pytest.mark.slow
def test_vigil_score_equals_the_trainer_scores_row_by_row(
    tiny_bundle_3f: Path, tiny_run_3f: Path, data_3f: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, values = data_3f
    out, events = tmp_path / "scores.csv", tmp_path / "events.jsonl"
    result = _cli(["score", str(tiny_bundle_3f), str(path), "--out", str(out), "--events", str(events)])
    assert result.exit_code == 0, result.output
    header, rows = _read_scores(out)
    assert header == ["row", "score", "threshold", "anomalous", "timestamp"]
    assert [int(r["row"]) for r in rows] == list(range(len(values)))
    device = _column(rows, "score")
    expected = _keras_row_scores(tiny_run_3f, values).row_scores
    np.testing.assert_array_equal(np.isnan(device), np.isnan(expected))  # blank before the first window
    assert np.isnan(device[:15]).all() and not np.isnan(device[15:]).any()
    np.testing.assert_allclose(device[15:], expected[15:], rtol=1e-4, atol=1e-6)
    threshold = float(rows[-1]["threshold"])  # blank where there is no score yet
    flagged = np.array([r["anomalous"] == "1" for r in rows])
    np.testing.assert_array_equal(flagged[15:], expected[15:] > threshold)
    assert float(rows[100]["timestamp"]) == pytest.approx(1_790_000_001.0)


@pytest.mark.slow
def test_events_jsonl_holds_one_schema_valid_object_per_event(
    tiny_bundle_3f: Path, data_3f: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    import jsonschema

    path, _ = data_3f
    out, events = tmp_path / "scores.csv", tmp_path / "events.jsonl"
    result = _cli(["score", str(tiny_bundle_3f), str(path), "--out", str(out), "--events", str(events),
                   "--k", "2", "--n", "3", "--m", "5"])
    assert result.exit_code == 0, result.output
    schema = json.loads((Path(__file__).parents[1] / "edge_agent/schemas/alert.schema.json").read_text())
    payloads = [json.loads(line) for line in events.read_text().splitlines()]
    # Both phases, as the agent publishes them: an open, then its close.
    assert [p["phase"] for p in payloads] == ["open", "close"] * len(ANOMALIES)
    assert [p["event_id"] for p in payloads[::2]] == [p["event_id"] for p in payloads[1::2]]
    for obj in payloads:
        jsonschema.validate(obj, schema)
    objects = payloads[1::2]
    assert [o["close_reason"] for o in objects] == ["normal"] * len(ANOMALIES)
    for obj, (start, end) in zip(objects, ANOMALIES, strict=True):
        jsonschema.validate(obj, schema)
        assert obj["phase"] == "close" and obj["model_id"].startswith("run3f")
        # Windows end at the row they are scored on: the event starts inside the anomaly and
        # lasts until the last window that still overlaps it.
        assert start <= obj["start_sample"] <= end and end <= obj["end_sample"] <= end + 16 + 5
        assert obj["start"].startswith("2026-") and obj["peak_score"] >= obj["mean_score"] > obj["threshold"]
        assert [f["feature"] for f in obj["top_features"]] and len(obj["top_features"]) == 3
        assert sum(f["share"] for f in obj["top_features"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_smoothing_hop_and_row_range_follow_the_trainer(
    tiny_bundle_3f: Path, tiny_run_3f: Path, data_3f: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.pipeline import replay_file

    path, values = data_3f
    smoothed = _repacked(tiny_bundle_3f, tmp_path / "smooth.vigil", smoothing={"alpha": 0.3}, hop=4)
    result = replay_file(load_bundle(smoothed), path, rows=(40, 400))
    assert result.rows[0] == 40 and result.rows[-1] == 399
    expected = _keras_row_scores(tiny_run_3f, values[40:400], alpha=0.3, hop=4)
    np.testing.assert_array_equal(np.isnan(result.scores), np.isnan(expected.row_scores))
    ok = ~np.isnan(result.scores)
    np.testing.assert_allclose(result.scores[ok], expected.row_scores[ok], rtol=1e-4, atol=1e-6)
    assert result.counters["windows_scored"] == len(expected.window_scores)
    assert result.timestamps is not None and result.timestamps[0] == pytest.approx(1_790_000_000.4)


@pytest.mark.slow
def test_sensitivity_scales_the_limit(tiny_bundle_3f: Path, data_3f: tuple[Path, np.ndarray]) -> None:
    from edge_agent.alerts import AlertPolicy
    from edge_agent.bundle import load_bundle
    from edge_agent.pipeline import PipelineSettings, replay_file

    path, _ = data_3f
    bundle = load_bundle(tiny_bundle_3f)
    threshold = bundle.threshold
    settings = PipelineSettings.for_bundle(bundle, policy=dataclasses.replace(AlertPolicy(), sensitivity=2.0))
    loose = replay_file(bundle, path, settings=settings)
    assert loose.threshold == pytest.approx(2 * threshold)
    ok = ~np.isnan(loose.scores)
    np.testing.assert_array_equal(loose.anomalous[ok], loose.scores[ok] > 2 * threshold)


@pytest.mark.slow
def test_score_cli_errors_are_one_line_exit_2(tiny_bundle_3f: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n" + "\n".join("1,2,3" for _ in range(40)) + "\n")
    out = tmp_path / "s.csv"
    cases = [
        (["score", str(tiny_bundle_3f), str(wrong), "--out", str(out)], "column 'f0': column not found"),
        (["score", str(tiny_bundle_3f), str(wrong), "--out", str(out), "--columns", "a,b"], "2 columns given"),
        (["score", str(tiny_bundle_3f), str(wrong), "--out", str(out), "--rows", "30:20"], "START must be smaller"),
        (["score", str(tiny_bundle_3f), str(wrong), "--out", str(out), "--rows", "0:5", "--columns", "a,b,c"],
         "needs at least 16 rows"),
    ]
    for args, needle in cases:
        result = _cli(args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vigil score: ") and needle in lines[0], lines
    assert not out.exists()
    ok = _cli(["score", str(tiny_bundle_3f), str(wrong), "--out", str(out), "--columns", "a,b,c"])
    assert ok.exit_code == 0 and _read_scores(out)[0] == ["row", "score", "threshold", "anomalous"]


@pytest.mark.slow
def test_vigil_evaluate_reports_the_events_vigil_score_publishes(
    tiny_run_3f: Path, tiny_bundle_3f: Path, data_3f: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    # evaluate replays the run (its Keras model) through the same pipeline that `vigil score` runs the
    # float32 bundle through: next to its row metrics it must report the very events the device publishes.
    from trainer.evaluate import run_evaluate

    path, _ = data_3f
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end\n" + "".join(f"{s},{e}\n" for s, e in ANOMALIES))
    published = run_evaluate(tiny_run_3f, path, labels, out=tmp_path / "eval")["published"]

    events = tmp_path / "events.jsonl"
    result = _cli(["score", str(tiny_bundle_3f), str(path), "--out", str(tmp_path / "scores.csv"),
                   "--events", str(events)])
    assert result.exit_code == 0, result.output
    closes = [json.loads(line) for line in events.read_text().splitlines()]
    closes = [p for p in closes if p["phase"] == "close"]
    anomalies = [p for p in closes if p["kind"] == "anomaly"]
    assert anomalies  # the injected disturbances are published: the comparison is not of two empty lists
    assert published["events"] == [[p["start_sample"], p["end_sample"]] for p in anomalies]
    assert published["n_events"] == len(anomalies)
    for theirs, ours in zip(published["event_details"], anomalies, strict=True):
        assert [f["feature"] for f in theirs["top_features"]] == [f["feature"] for f in ours["top_features"]]
        assert theirs["peak_score"] == pytest.approx(ours["peak_score"], rel=1e-3)
    assert [(f["fault"], f["feature"], f["start_sample"], f["end_sample"]) for f in published["sensor_faults"]] == \
        [(p["fault"], p["feature"], p["start_sample"], p["end_sample"]) for p in closes if p["kind"] == "sensor_fault"]


@pytest.mark.slow
def test_score_config_the_device_would_refuse_is_refused_in_one_line(
    tiny_bundle_3f: Path, data_3f: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    # Replayed at the config's 400 Hz, a 250 Hz file is all gaps: 0 windows, "0 events", exit 0 (before).
    from tests.test_config_checks import PROFILES, repack

    path, _ = data_3f
    xyz250 = repack(tiny_bundle_3f, tmp_path / "xyz250.vigil", features=["x", "y", "z"], sampling_rate_hz=250.0)
    rpi4 = tmp_path / "rpi4.toml"
    rpi4.write_text((PROFILES / "rpi4-adxl345.toml").read_text())  # its secrets and TLS files exist on the device
    replay = tmp_path / "replay.toml"
    replay.write_text('[device]\nid = "d"\n[source]\nkind = "replay"\npath = "x.csv"\nrate_hz = 250.0\n')
    synthetic = tmp_path / "synthetic.toml"  # x, y, z at the bundle's 100 Hz: the features differ
    synthetic.write_text('[device]\nid = "d"\n[source]\nkind = "synthetic"\nrate_hz = 100.0\n')
    out = tmp_path / "scores.csv"
    cases = [(xyz250, rpi4, "source.rate_hz", "400 Hz but the bundle was trained at 250 Hz"),
             (tiny_bundle_3f, replay, "source.rate_hz", "250 Hz but the bundle was trained at 100 Hz"),
             (tiny_bundle_3f, synthetic, "source", "'x' but the bundle expects 'f0'")]
    for bundle, config, key, needle in cases:
        result = _cli(["score", str(bundle), str(path), "--config", str(config), "--out", str(out)])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith(f"vigil score: {config}, key '{key}'") and needle in lines[0], lines[0]
        assert not out.exists()
