"""Spectral bundles end to end: vigil train --features spectral -> convert -> score, block sizes, manifest errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_agent.bundle import load_bundle, pack_bundle, parse_bundle
from edge_agent.errors import VigilInputError
from edge_agent.pipeline import PipelineSettings
from edge_agent.pipeline.stream import StreamingPipeline
from edge_agent.sources.base import SampleBlock
from edge_agent.sources.synthetic import generate_vibration
from vigil.cli.typer_app import app

RATE = 1000.0
N_ROWS = 24_000
TRAIN_END = 12_000
FAULT = (17_000, 20_000)  # inclusive rows of the injected bearing fault
START_S = 1_767_225_600.0


def _cli(args: list[str]):
    return CliRunner().invoke(app, args)


def _with_bearing_fault(values: np.ndarray, seed: int = 3) -> np.ndarray:
    """Sharp decaying impacts every 23 ms on all axes (an outer-race defect), as a real fault looks."""
    out = values.copy()
    rng = np.random.default_rng(seed)
    ring = np.exp(-np.arange(12) / 3.0) * np.sin(2 * np.pi * 0.3 * np.arange(12))
    for start in range(FAULT[0], FAULT[1] - 12, 23):
        out[start:start + 12] += 1.5 * ring[:, None] * rng.choice([-1.0, 1.0], size=3)
    return out


@pytest.fixture(scope="module")
def spectral_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spectral")
    values, _ = generate_vibration(N_ROWS, rate_hz=RATE, seed=5)
    values = _with_bearing_fault(values)
    data = root / "vibration.csv"
    stamps = START_S + np.arange(N_ROWS) / RATE
    np.savetxt(data, np.column_stack([stamps, values]), delimiter=",", header="timestamp,x,y,z", comments="",
               fmt=["%.3f"] + ["%.6f"] * 3)
    run, bundle = root / "run", root / "spectral.vigil"
    trained = _cli(["train", str(data), "--out", str(run), "--train-rows", f"0:{TRAIN_END}", "--features", "spectral",
                    "--units", "8,4", "--epochs", "3"])
    assert trained.exit_code == 0, trained.output
    converted = _cli(["convert", str(run), "--out", str(bundle), "--quantize", "float32"])
    assert converted.exit_code == 0, converted.output
    return {"root": root, "data": data, "run": run, "bundle": bundle}


def test_spectral_bundle_describes_its_front_end_and_the_converter_checked_it(spectral_case: dict[str, Path]) -> None:
    bundle = load_bundle(spectral_case["bundle"])
    spec = bundle.frontend
    assert spec is not None and spec.inputs == ("x", "y", "z") and spec.frame == 128 and spec.hop == 64
    assert bundle.input_features == ["x", "y", "z"] and bundle.features == spec.output_names
    assert bundle.sampling_rate_hz == RATE  # the samples' rate: what the agent's source is checked against
    assert bundle.spec.window == 16  # frames, not samples
    parity = bundle.manifest["frontend"]["parity"]
    assert parity["passed"] and parity["max_abs_diff"] <= parity["limit"] and parity["frames"] > 10
    run_json = json.loads((spectral_case["run"] / "run.json").read_text())
    assert run_json["frontend"]["kind"] == "spectral"
    assert "feature_stats" not in run_json["detection"]  # frame statistics are not the samples' sensor checks


def test_vigil_score_with_a_spectral_bundle_raises_an_event_on_the_injected_fault(
        spectral_case: dict[str, Path]) -> None:
    out, events = spectral_case["root"] / "scores.csv", spectral_case["root"] / "events.jsonl"
    result = _cli(["score", str(spectral_case["bundle"]), str(spectral_case["data"]), "--rows", f"{TRAIN_END}:",
                   "--out", str(out), "--events", str(events)])
    assert result.exit_code == 0, result.output
    closes = [json.loads(line) for line in events.read_text().splitlines()]
    closes = [c for c in closes if c["phase"] == "close" and c["kind"] == "anomaly"]
    on_fault = [c for c in closes if c["start_sample"] <= FAULT[1] and c["end_sample"] >= FAULT[0]]
    assert on_fault, closes
    assert any(f["feature"].endswith((".kurtosis", ".crest")) or ".band" in f["feature"]
               for f in on_fault[0]["top_features"])
    rows = np.genfromtxt(out, delimiter=",", names=True)
    inside = (rows["row"] >= FAULT[0] + 1000) & (rows["row"] <= FAULT[1])
    assert np.nanmean(rows["anomalous"][inside]) > 0.5


def _run_in_blocks(bundle_path: Path, values: np.ndarray, sizes: tuple[int, ...]) -> tuple[list, list]:
    bundle = load_bundle(bundle_path)
    pipeline = StreamingPipeline(bundle, PipelineSettings.for_bundle(bundle), rate_hz=RATE, log_windows=True)
    payloads, start, i = [], 0, 0
    while start < len(values):
        size = sizes[i % len(sizes)]
        chunk = values[start:start + size]
        stamps = START_S + (start + np.arange(len(chunk))) / RATE
        payloads.extend(pipeline.process(SampleBlock(chunk.astype(np.float32), stamps)))
        start, i = start + len(chunk), i + 1
    payloads.extend(pipeline.finish())
    assert pipeline.log is not None
    return [(r, s) for r, s in zip(pipeline.log.rows, pipeline.log.raw_scores, strict=True)], payloads


def test_the_pipeline_gives_the_same_frames_and_events_for_any_read_size(spectral_case: dict[str, Path]) -> None:
    values = np.loadtxt(spectral_case["data"], delimiter=",", skiprows=1)[TRAIN_END:TRAIN_END + 9000, 1:]
    reference, ref_payloads = _run_in_blocks(spectral_case["bundle"], values, (4096,))
    assert len(reference) >= 40  # windows (a window every 4th frame: the trainer's spectral default)
    for sizes in [(1, 2, 3), (10,), (63, 64, 65, 500)]:
        got, payloads = _run_in_blocks(spectral_case["bundle"], values, sizes)
        assert got == reference, sizes
        strip = [{k: v for k, v in p.items() if k != "event_id"} for p in payloads]
        assert strip == [{k: v for k, v in p.items() if k != "event_id"} for p in ref_payloads], sizes


def _manifest_of(path: Path) -> tuple[dict, bytes]:
    bundle = load_bundle(path)
    return json.loads(bundle.manifest_bytes), bundle.model_bytes


@pytest.mark.parametrize("change, key, needle", [
    (lambda m: m.__setitem__("frontend", "spectral"), "frontend", "must be an object"),
    (lambda m: m["frontend"].__setitem__("kind", "mel"), "frontend.kind", "must be one of raw, spectral"),
    (lambda m: m["frontend"].__setitem__("frame", 4), "frontend.frame", "out of range"),
    (lambda m: m["frontend"].__setitem__("frame", "128"), "frontend.frame", "must be an integer"),
    (lambda m: m["frontend"].__setitem__("hop", 0), "frontend.hop", "out of range"),
    (lambda m: m["frontend"].__setitem__("hop", 129), "frontend.hop", "out of range"),
    (lambda m: m["frontend"].__setitem__("bands", 65), "frontend.bands", "out of range"),
    (lambda m: m["frontend"].__setitem__("normalise", "yes"), "frontend.normalise", "true or false"),
    (lambda m: m["frontend"].__setitem__("window_function", "hamming"), "frontend.window_function", "hann"),
    (lambda m: m["frontend"].__setitem__("rate_hz", -5), "frontend.rate_hz", "out of range"),
    (lambda m: m["frontend"].__setitem__("inputs", []), "frontend.inputs", "list of 1 to"),
    (lambda m: m["frontend"].__setitem__("inputs", ["x", "x", "z"]), "frontend.inputs", "unique"),
    (lambda m: m["frontend"].pop("inputs"), "frontend.inputs", "missing"),
    (lambda m: m["frontend"].__setitem__("bands", 11), "features", "front-end's 42 outputs"),
])
def test_bad_frontend_fields_are_one_line_errors_naming_the_key(spectral_case: dict[str, Path], change, key: str,
                                                                needle: str) -> None:
    manifest, model = _manifest_of(spectral_case["bundle"])
    change(manifest)
    with pytest.raises(VigilInputError) as caught:
        parse_bundle(pack_bundle(manifest, model), "bad.vigil")
    message = str(caught.value)
    assert "\n" not in message and f"key '{key}'" in message and needle in message, message


def test_raw_frontend_and_absent_frontend_are_todays_bundles(spectral_case: dict[str, Path],
                                                            tiny_bundle_3f: Path) -> None:
    manifest, model = _manifest_of(tiny_bundle_3f)
    manifest["frontend"] = {"kind": "raw"}
    bundle = parse_bundle(pack_bundle(manifest, model), "raw.vigil")
    assert bundle.frontend is None and bundle.input_features == bundle.features
    assert load_bundle(tiny_bundle_3f).frontend is None


def test_cli_refuses_a_bad_frontend_and_a_bad_features_option_with_one_line(spectral_case: dict[str, Path]) -> None:
    manifest, model = _manifest_of(spectral_case["bundle"])
    manifest["frontend"]["hop"] = 1000
    bad = spectral_case["root"] / "bad.vigil"
    bad.write_bytes(pack_bundle(manifest, model))
    result = _cli(["score", str(bad), str(spectral_case["data"]), "--out", str(spectral_case["root"] / "x.csv")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "frontend.hop" in lines[0], result.output
    result = _cli(["train", str(spectral_case["data"]), "--out", str(spectral_case["root"] / "r2"),
                   "--features", "mfcc"])
    errors = [line for line in result.output.splitlines() if line.startswith("vigil train:")]
    assert result.exit_code == 2 and len(errors) == 1 and "--features must be raw or spectral" in errors[0]
    assert "Traceback" not in result.output


def test_the_agent_runs_a_spectral_bundle_and_publishes_what_vigil_score_reports(
        spectral_case: dict[str, Path]) -> None:
    """The source delivers the raw axes (frontend.inputs); agent and `vigil score --config` agree field by field."""
    from edge_agent.config import load_config
    from edge_agent.service import AgentService

    root = spectral_case["root"] / "agent"
    root.mkdir()
    config = root / "agent.toml"
    config.write_text(f"""
[device]
id = "spec-dev"
[bundle]
path = "{spectral_case['bundle']}"
[source]
kind = "replay"
path = "{spectral_case['data']}"
pace = "fast"
block_rows = 333
[sinks]
jsonl = "out/alerts.jsonl"
""", encoding="utf-8")
    assert AgentService(load_config(config)).run() == 0
    published = [json.loads(line) for line in (root / "out" / "alerts.jsonl").read_text().splitlines()]
    events = root / "events.jsonl"
    result = _cli(["score", str(spectral_case["bundle"]), str(spectral_case["data"]), "--config", str(config),
                   "--out", str(root / "scores.csv"), "--events", str(events)])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in events.read_text().splitlines()]
    assert published and len(published) == len(scored)
    for ours, theirs in zip(published, scored, strict=True):
        assert {k: v for k, v in ours.items() if k != "event_id"} == {k: v for k, v in theirs.items()
                                                                       if k != "event_id"}
    assert any(p["start_sample"] <= FAULT[1] and p["end_sample"] >= FAULT[0] for p in published
               if p["phase"] == "close" and p["kind"] == "anomaly")
