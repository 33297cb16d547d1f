"""The streaming pipeline with a bundle that ships detection settings: dynamic threshold, sensor faults.

The agent and ``vigil score --config`` must publish the same events with the
dynamic threshold and the sensor-health checks on; the pipeline's events must
not depend on how the stream is cut into blocks.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.models import normal_rows, with_anomalies

RATE = 100.0
ANOMALIES = [(700, 740), (1500, 1530)]
FLAT = (2200, 2500)  # feature f1 stuck at one value


def _detection_bundle(tiny_bundle: Path, out: Path, score_mode: str | None = None) -> Path:
    """The tiny bundle repacked with the trainer's detection section (window 16, hop 1, 100 Hz).

    ``score_mode``: the section's ``score.mode`` ("row": per-row localized scores).
    """
    from edge_agent.bundle import load_bundle, pack_bundle
    from trainer.detection_meta import detection_section

    bundle = load_bundle(tiny_bundle)
    manifest = json.loads(json.dumps(bundle.manifest))
    train = normal_rows(720, 3, 0)
    manifest["detection"] = detection_section(train, bundle.features, bundle.spec.window, bundle.spec.hop, RATE)
    if score_mode is not None:
        manifest["detection"]["score"] = {"mode": score_mode}
    out.write_bytes(pack_bundle(manifest, bundle.model_bytes))
    return out


def _stamped_csv(path: Path, n_rows: int = 3000) -> Path:
    rows = with_anomalies(normal_rows(n_rows, 3, 0, start=720), ANOMALIES)
    rows[FLAT[0]:FLAT[1], 1] = rows[FLAT[0], 1]
    stamps = 1_790_000_000.0 + np.arange(n_rows) / RATE
    lines = ["timestamp,f0,f1,f2"] + [f"{t:.2f},{a:.6f},{b:.6f},{c:.6f}"
                                      for t, (a, b, c) in zip(stamps, rows, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def detect_bundle(tiny_bundle_3f: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _detection_bundle(tiny_bundle_3f, tmp_path_factory.mktemp("detect") / "detect.vigil", "window")


@pytest.fixture(scope="module")
def row_bundle(tiny_bundle_3f: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trainer's detection section with per-row localized scores (``vigil train``'s default is the window mean)."""
    return _detection_bundle(tiny_bundle_3f, tmp_path_factory.mktemp("rows") / "rows.vigil", "row")


@pytest.mark.slow
def test_dynamic_threshold_and_a_flatline_fault_are_published(detect_bundle: Path, tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.pipeline import replay_file

    bundle = load_bundle(detect_bundle)
    result = replay_file(bundle, _stamped_csv(tmp_path / "data.csv"))
    assert result.counters["threshold"]["kind"] == "dynamic"
    # The threshold in force never drops below the static floor.
    finite = np.isfinite(result.thresholds)
    assert np.all(result.thresholds[finite] >= bundle.threshold - 1e-12)
    faults = [p for p in result.payloads if p.get("kind") == "sensor_fault"]
    flat = [p for p in faults if p["fault"] == "flatline"]
    assert [p["phase"] for p in flat] == ["open", "close"] and flat[0]["feature"] == "f1"
    assert FLAT[0] <= flat[0]["start_sample"] <= FLAT[0] + 200 and flat[1]["end_sample"] <= FLAT[1] + 200
    anomaly_closes = result.events
    for start, end in ANOMALIES:
        assert any(e["start_sample"] <= end + 16 and e["end_sample"] >= start for e in anomaly_closes)


@pytest.mark.slow
@pytest.mark.parametrize("bundle_name", ["detect_bundle", "row_bundle"])
def test_events_do_not_depend_on_block_boundaries(bundle_name: str, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.pipeline import PipelineSettings, StreamingPipeline
    from edge_agent.readers import load_table
    from edge_agent.runtime import Scorer
    from edge_agent.sources.base import SampleBlock

    bundle = load_bundle(request.getfixturevalue(bundle_name))
    table = load_table(_stamped_csv(tmp_path / "data.csv"), columns=bundle.features)
    scorer = Scorer(bundle)

    def run(block: int) -> list[dict]:
        pipeline = StreamingPipeline(bundle, PipelineSettings.for_bundle(bundle), scorer=scorer, rate_hz=RATE)
        out: list[dict] = []
        for i in range(0, table.n_rows, block):
            values = np.asarray(table.values[i:i + block], dtype=np.float32)
            out.extend(pipeline.process(SampleBlock(values, np.asarray(table.timestamps[i:i + block]))))
        out.extend(pipeline.finish())
        return [{k: v for k, v in p.items() if k != "event_id"} for p in out]

    reference = run(4096)
    assert reference and run(7) == reference and run(100) == reference


@pytest.mark.slow
@pytest.mark.parametrize("bundle_name", ["detect_bundle", "row_bundle"])
def test_agent_equals_vigil_score_with_dynamic_threshold_and_sensor_faults(bundle_name: str,
                                                                          request: pytest.FixtureRequest,
                                                                          tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.config import load_config
    from edge_agent.service import AgentService
    from vigil.cli import app

    detect_bundle = request.getfixturevalue(bundle_name)
    data = _stamped_csv(tmp_path / "data.csv")
    config = tmp_path / "agent.toml"
    config.write_text(textwrap.dedent(f"""
        [device]
        id = "dyn-dev"
        [bundle]
        path = "{detect_bundle}"
        [source]
        kind = "replay"
        path = "data.csv"
        pace = "fast"
        block_rows = 53
        [alerts]
        sensitivity = 1.1
        [sinks]
        jsonl = "out/alerts.jsonl"
        """), encoding="utf-8")
    assert AgentService(load_config(config)).run() == 0
    published = [json.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    events = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["score", str(detect_bundle), str(data), "--config", str(config),
                                      "--out", str(tmp_path / "scores.csv"), "--events", str(events)])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(p.get("kind") == "sensor_fault" for p in published)
    assert [{k: v for k, v in p.items() if k != "event_id"} for p in published] == \
        [{k: v for k, v in p.items() if k != "event_id"} for p in scored]


@pytest.mark.slow
def test_row_mode_starts_events_at_the_anomalous_rows(detect_bundle: Path, row_bundle: Path, tmp_path: Path) -> None:
    """A row-mode event starts where the error is, not at the end of the first window that saw it."""
    from edge_agent.bundle import load_bundle
    from edge_agent.detection.settings import ScoreSettings
    from edge_agent.pipeline import PipelineSettings, replay_file

    data = _stamped_csv(tmp_path / "data.csv")
    rows = load_bundle(row_bundle)
    assert rows.detection is not None and rows.detection["score"]["mode"] == "row"
    result = replay_file(rows, data)
    assert result.counters["windows_scored"] > 0
    by_window = replay_file(rows, data, settings=PipelineSettings.for_bundle(rows, score=ScoreSettings("window")))
    assert [e["start_sample"] for e in by_window.events] == \
        [e["start_sample"] for e in replay_file(load_bundle(detect_bundle), data).events]
    for start, end in ANOMALIES:
        row_starts = [e["start_sample"] for e in result.events if e["start_sample"] <= end + 16
                      and e["end_sample"] >= start]
        window_starts = [e["start_sample"] for e in by_window.events if e["start_sample"] <= end + 16
                         and e["end_sample"] >= start]
        assert row_starts and window_starts and min(row_starts) <= min(window_starts)
        assert start - 16 <= min(row_starts) <= end
