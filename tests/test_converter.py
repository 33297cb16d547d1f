"""vigil convert / verify: crash-isolated modes, builtin ops only, parity in both orders, a deterministic choice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from converter.latency import Latency
from converter.parity import ParityResult, SetParity
from converter.quantize import FLOAT_LIMITS, MODES, QUANTIZED_LIMITS, ParityLimits
from converter.table import KEPT, ModeReport
from tests.models import normal_rows, with_anomalies

DETECTION = {"policy": {"k": 3, "n": 5, "m": 32}, "dynamic_threshold": {"enabled": True, "buffer_s": 60.0},
             "nested": [1, 2.5, None, "x"]}
# float16 crashes while converting (converter worker), int8 inside the parity check (runtime worker).
CRASH_1F = "float16:convert,int8:check"


def _cli(args: list[str]):
    from vigil.cli import app

    return CliRunner().invoke(app, args)


def _auto(run_dir: Path, out: Path, crash: str | None = None, rounds: int = 3):
    from converter.convert import ConvertConfig, run_convert

    lines: list[str] = []
    saved = os.environ.get("VIGIL_CONVERT_CRASH")
    if crash is not None:
        os.environ["VIGIL_CONVERT_CRASH"] = crash
    try:
        result = run_convert(ConvertConfig(run=run_dir, out=out, quantize="auto", latency_rounds=rounds),
                             echo=lines.append)
    finally:
        os.environ.pop("VIGIL_CONVERT_CRASH", None)
        if saved is not None:
            os.environ["VIGIL_CONVERT_CRASH"] = saved
    result.lines = lines  # type: ignore[attr-defined]
    return result


@pytest.fixture(scope="module")
def tiny_run_1f(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-feature run whose run.json also carries trainer-written detection settings and a skill ratio."""
    from tests.models import make_tiny_run

    path = make_tiny_run(tmp_path_factory.mktemp("run1f"), n_features=1, seed=1)
    meta = json.loads((path / "run.json").read_text())
    meta["detection"] = DETECTION
    meta["training"]["skill_ratio"] = 0.4375
    (path / "run.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="module")
def auto_1f(tiny_run_1f: Path, tmp_path_factory: pytest.TempPathFactory):
    return _auto(tiny_run_1f, tmp_path_factory.mktemp("auto1f") / "one.vigil", crash=CRASH_1F)


@pytest.fixture(scope="module")
def auto_3f(tiny_run_3f: Path, tmp_path_factory: pytest.TempPathFactory):
    return _auto(tiny_run_3f, tmp_path_factory.mktemp("auto3f") / "three.vigil")


@pytest.mark.slow
def test_a_mode_that_crashes_is_dropped_with_one_line_and_the_others_are_kept(auto_1f) -> None:
    by_mode = {r.mode: r for r in auto_1f.reports}
    assert [r.mode for r in auto_1f.reports] == list(MODES)
    assert len(by_mode["float16"].problems) == 1
    # faulthandler's innermost frame, read from the worker's log: where the crash happened.
    assert by_mode["float16"].problems[0].startswith("converter crashed (SIGSEGV) in answer (worker.py:")
    assert by_mode["float16"].model_bytes is None and by_mode["float16"].status == "dropped"
    int8 = by_mode["int8"]
    assert int8.model_bytes is not None and int8.parity is None and int8.latency is None
    assert int8.problems[0].startswith("interpreter crashed (SIGSEGV)")
    assert "during the parity check" in int8.problems[0]
    for mode in ("float32", "dynamic", "int8-weights"):  # the converter worker was restarted after float16
        assert by_mode[mode].usable and by_mode[mode].parity is not None and by_mode[mode].latency is not None
    assert auto_1f.mode in ("float32", "dynamic", "int8-weights") and auto_1f.bundle_path.is_file()
    # One progress line per mode as it starts and as it ends; the crash is one line too.
    assert "mode float16: converting" in auto_1f.lines
    assert any(line.startswith("mode float16: dropped - converter crashed (SIGSEGV)") for line in auto_1f.lines)
    assert any(line.startswith("mode float32: ") and "bytes, parity pass" in line for line in auto_1f.lines)
    assert any(line.startswith("mode float32: ") and "ms per window" in line for line in auto_1f.lines)
    rows = {row["mode"]: row for row in auto_1f.table["modes"]}
    assert "SIGSEGV" in rows["int8"]["reason"] and rows["int8"]["crash_log"]


@pytest.mark.slow
def test_detection_settings_and_skill_ratio_reach_the_manifest_verbatim(auto_1f) -> None:
    from edge_agent.bundle import load_bundle

    manifest = load_bundle(auto_1f.bundle_path).manifest
    assert manifest["detection"] == DETECTION
    assert manifest["training"] == {"skill_ratio": 0.4375}
    assert manifest["model"]["units"] == [16, 8] and manifest["model"]["layers"] == 2


@pytest.mark.slow
def test_the_same_run_converted_twice_keeps_the_same_mode(auto_3f, tiny_run_3f: Path, tmp_path: Path) -> None:
    again = _auto(tiny_run_3f, tmp_path / "again.vigil")
    assert again.mode == auto_3f.mode
    assert [r.size_bytes for r in again.reports] == [r.size_bytes for r in auto_3f.reports]
    assert [r.status for r in again.reports] == [r.status for r in auto_3f.reports]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["auto_1f", "auto_3f"])
def test_every_mode_converts_to_builtin_ops_without_loops(which: str, request: pytest.FixtureRequest) -> None:
    from converter.ops import inspect_model

    result = request.getfixturevalue(which)
    n_features = 1 if which == "auto_1f" else 3
    crashed = {"float16"} if which == "auto_1f" else set()  # CRASH_1F: no flatbuffer at all
    assert [r.mode for r in result.reports] == list(MODES)
    for report in result.reports:
        if report.mode in crashed:
            continue
        assert report.model_bytes is not None, (report.mode, report.problems)
        info = inspect_model(report.model_bytes)
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops, report.mode
        assert not [op for op in info.ops if op in {"WHILE", "IF", "CALL_ONCE"} or "Flex" in op or "CUSTOM" in op]
        assert info.subgraphs == 1 and not info.degenerate_scales
        assert info.io["input"]["shape"] == info.io["input"]["shape_signature"] == [1, 16, n_features]
        if report.usable:
            assert report.latency is not None and report.latency.median_ms > 0
            assert len(report.latency.round_medians_ms) == 3 and report.latency.interleaved


@pytest.mark.slow
@pytest.mark.parametrize("which", ["auto_1f", "auto_3f"])
def test_parity_is_measured_in_two_orders_and_the_kept_mode_passes(which: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(which)
    by_mode = {r.mode: r for r in result.reports}
    for report in result.reports:
        if not report.usable:
            continue
        assert report.parity is not None
        assert [s.name for s in report.parity.sets] == ["heldout", "stressed"]
        # The fused LSTM keeps state between invokes; the scorer must reset it.
        assert all(s.order_identical for s in report.parity.sets), report.mode
    # float32 is the Keras computation (cell clip removed): differences are rounding only.
    assert by_mode["float32"].parity.passed
    assert by_mode["float32"].parity.worst()["max_abs_diff"] < 1e-4
    kept = [r for r in result.reports if r.status == KEPT]
    assert len(kept) == 1 and kept[0].mode == result.mode and kept[0].passed
    assert all(r.reason for r in result.reports)


@pytest.mark.slow
def test_auto_writes_a_loadable_bundle_and_the_conversion_table(auto_3f) -> None:
    from converter.convert import report_path
    from edge_agent.bundle import load_bundle

    bundle = load_bundle(auto_3f.bundle_path)
    assert bundle.quantization == auto_3f.mode
    assert bundle.manifest["conversion"]["parity"]["passed"] is True
    table = json.loads(report_path(auto_3f.bundle_path).read_text())
    assert table["chosen"] == auto_3f.mode
    assert auto_3f.bundle_path.name == "three.vigil"
    assert report_path(auto_3f.bundle_path).name == "three.conversion.json"
    rows = {row["mode"]: row for row in table["modes"]}
    assert set(rows) == set(MODES)
    for row in rows.values():
        assert row["size_bytes"] > 0 and row["latency_ms"]["median_ms"] > 0 and row["latency_ms"]["p99_ms"] > 0
        worst = row["parity"]["worst"]
        assert set(worst) == {"spearman", "max_abs_diff", "mean_abs_diff", "flipped_share"}
        assert row["status"] in ("kept", "dropped") and row["reason"]
    assert rows["float16"]["size_bytes"] < rows["float32"]["size_bytes"]
    assert rows["int8-weights"]["size_bytes"] < rows["float32"]["size_bytes"]


def _report(mode: str, size: int, median_ms: float, passed: bool = True) -> ModeReport:
    limits = FLOAT_LIMITS if mode.startswith("float") else QUANTIZED_LIMITS
    parity_set = SetParity("heldout", 10, 1.0 if passed else 0.5, 0.0, 0.0, 0.0, 0, 0.0, True, passed,
                           [] if passed else ["spearman 0.5 < 0.99"])
    return ModeReport(mode=mode, model_bytes=b"x" * size, latency=Latency(median_ms, median_ms * 2, 10),
                      parity=ParityResult(mode, limits, [parity_set]))


def _timed(mode: str, size: int, rounds: list[float], passed: bool = True) -> ModeReport:
    report = _report(mode, size, float(np.median(rounds)), passed)
    assert report.latency is not None
    report.latency.round_medians_ms = list(rounds)
    return report


def test_choice_is_the_smallest_passing_mode_within_the_margin_of_float32() -> None:
    from converter.choice import choose

    reports = [_report("float32", 1000, 1.00), _report("float16", 600, 1.12), _report("int8", 300, 3.0),
               _report("dynamic", 200, 0.5, passed=False), _report("int8-weights", 700, 0.98)]
    chosen = choose(reports, "latency")
    assert chosen is not None and chosen.mode == "float16"
    assert "within 1.5x of float32" in chosen.reason
    status = {r.mode: (r.status, r.reason) for r in reports}
    assert status["dynamic"][0] == "dropped" and "parity failed" in status["dynamic"][1]
    assert "3.00x the latency of float32" in status["int8"][1]
    assert "larger than float16" in status["float32"][1] and "larger" in status["int8-weights"][1]
    assert choose(reports, "size").mode == "int8"  # type: ignore[union-attr]
    assert choose([_report("float32", 10, 1.0, passed=False)], "latency") is None


def test_choice_ties_in_size_go_to_the_fixed_mode_order_and_without_float32_the_fastest_is_the_reference() -> None:
    from converter.choice import choose

    tied = [_report("dynamic", 1000, 0.9), _report("float32", 1000, 1.0)]
    assert choose(tied, "latency").mode == "float32"  # type: ignore[union-attr]
    assert "same size" in tied[0].reason
    no_float32 = [_report("float32", 1000, 1.0, passed=False), _report("float16", 600, 1.0),
                  _report("int8", 300, 2.0), _report("int8-weights", 500, 1.1)]
    assert choose(no_float32, "latency").mode == "int8-weights"  # type: ignore[union-attr]
    assert "2.00x the latency of float16" in no_float32[2].reason


def test_choice_compares_round_by_round_so_a_load_burst_in_one_round_does_not_flip_it() -> None:
    from converter.choice import choose

    rng = np.random.default_rng(0)
    picks = set()
    for _ in range(200):
        load = np.exp(rng.normal(0.0, 0.6, size=5))  # the whole machine slows down by up to ~4x per round
        # per-mode noise within a round: as large as measured for a 0.17 ms model timed beside a busy process
        # (a byte-identical mode read 1.18x float32 there)
        jitter = lambda: np.exp(rng.normal(0.0, 0.1, size=5))  # noqa: E731
        reports = [_timed("float32", 1000, list(0.30 * load * jitter())),
                   _timed("int8-weights", 500, list(0.31 * load * jitter())),
                   _timed("int8", 300, list(0.70 * load * jitter()))]
        picks.add(choose(reports, "latency").mode)  # type: ignore[union-attr]
    assert picks == {"int8-weights"}


@pytest.mark.slow
def test_failing_parity_writes_no_bundle_unless_forced(
    tiny_run_3f: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import converter.convert as convert_module
    from edge_agent.bundle import load_bundle

    # A bar no model can clear (Spearman <= 1) makes the real conversion fail parity.
    monkeypatch.setattr(convert_module, "parity_limits", lambda mode: ParityLimits(1.01, 0.0))
    out = tmp_path / "strict.vigil"
    result = _cli(["convert", str(tiny_run_3f), "--out", str(out), "--quantize", "float32"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("vigil convert: ")
    assert "no mode survived" in result.output and "spearman" in result.output
    assert not out.exists() and convert_module.report_path(out).exists()
    assert "I0000" not in result.output and "XNNPACK" not in result.output  # C++ logs only with --verbose

    forced = _cli(["convert", str(tiny_run_3f), "--out", str(out), "--quantize", "float32", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "WARNING" in forced.output
    manifest = load_bundle(out).manifest
    assert manifest["conversion"]["parity"]["passed"] is False


@pytest.mark.slow
def test_no_surviving_mode_is_exit_2_with_every_reason_on_one_line(
    tiny_run_3f: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_CONVERT_CRASH", "float32:convert,int8-weights:check")
    out = tmp_path / "none.vigil"
    result = _cli(["convert", str(tiny_run_3f), "--out", str(out), "--quantize", "int8-weights,float32", "--verbose"])
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vigil convert: ") and "no mode survived" in last
    assert "float32: converter crashed (SIGSEGV)" in last
    assert "int8-weights: interpreter crashed (SIGSEGV)" in last and "during the parity check" in last
    assert not out.exists()
    # --verbose relays the workers' own log lines (here the crash hook's note).
    assert "VIGIL_CONVERT_CRASH: crashing on purpose (float32:convert)" in result.stderr


def test_convert_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    bad_mode = _cli(["convert", str(tmp_path), "--out", str(tmp_path / "x.vigil"), "--quantize", "int4"])
    assert bad_mode.exit_code == 2
    assert bad_mode.output.strip().splitlines() == [
        "vigil convert: key 'quantize': unknown quantization 'int4'; use auto or one of "
        "float32, float16, dynamic, int8, int8-weights"
    ]
    no_run = _cli(["convert", str(tmp_path / "missing"), "--out", str(tmp_path / "x.vigil")])
    assert no_run.exit_code == 2
    assert len(no_run.output.strip().splitlines()) == 1 and "not a vigil run directory" in no_run.output
    bad_prefer = _cli(["convert", str(tmp_path), "--out", str(tmp_path / "x.vigil"), "--prefer", "speed"])
    assert bad_prefer.exit_code == 2 and "unknown preference 'speed'" in bad_prefer.output


@pytest.mark.slow
def test_verify_passes_on_new_data_and_refuses_a_foreign_run(
    tiny_bundle_3f: Path, tiny_run_3f: Path, tiny_run_1f: Path, tmp_path: Path
) -> None:
    from converter.verify import run_verify

    data = tmp_path / "more.csv"
    rows = with_anomalies(normal_rows(300, 3, seed=0, start=720), [(100, 130)])
    np.savetxt(data, rows, delimiter=",", header="f0,f1,f2", comments="", fmt="%.6f")
    lines: list[str] = []
    result = run_verify(tiny_bundle_3f, tiny_run_3f, data, rows=(0, 250), echo=lines.append)
    assert result.parity.passed and result.parity.sets[0].n_windows == 250 - 16 + 1
    assert result.parity.sets[0].spearman > 0.999 and result.parity.sets[0].order_identical
    assert "parity passed" in lines[-1]
    cli = _cli(["verify", str(tiny_bundle_3f), str(tiny_run_3f), str(data), "--rows", "0:250"])
    assert cli.exit_code == 0 and "parity passed" in cli.output
    foreign = _cli(["verify", str(tiny_bundle_3f), str(tiny_run_1f), str(data)])
    assert foreign.exit_code == 2
    assert len(foreign.output.strip().splitlines()) == 1 and "differ from the run's" in foreign.output


def test_weight_storage_round_trips_within_half_a_step() -> None:
    from converter import weight_quant as wq
    from converter.mixed import fake_quantized

    rng = np.random.default_rng(3)
    values = (rng.normal(0, 0.3, size=(16, 8)) * np.linspace(0.1, 2, 16)[:, None]).astype("<f4")
    for storage in (wq.INT8, wq.INT8_ROWS):
        stored, scales, zero_points = wq.encode(values, storage)
        assert stored.dtype == np.int8 and set(zero_points) == {0}
        step = np.asarray(scales, np.float32) if storage == wq.INT8 else np.asarray(scales, np.float32)[:, None]
        assert np.all(np.abs(wq.decode(stored, scales) - values) <= step / 2 + 1e-7)
    per_tensor = np.abs(wq.decode(*wq.encode(values, wq.INT8)[:2]) - values).mean()
    per_row = np.abs(wq.decode(*wq.encode(values, wq.INT8_ROWS)[:2]) - values).mean()
    assert per_row < per_tensor  # rows of very different magnitude: per-row scales are finer
    half = wq.decode(*wq.encode(values, wq.FLOAT16)[:2])
    np.testing.assert_allclose(half, values, rtol=1e-3)
    blob = b"head" + values.tobytes() + b"tail"
    faked = fake_quantized(blob, values, wq.INT8)
    assert len(faked) == len(blob) and faked[:4] == b"head" and faked[-4:] == b"tail"
    np.testing.assert_array_equal(np.frombuffer(faked[4:-4], "<f4").reshape(values.shape),
                                  wq.decode(*wq.encode(values, wq.INT8)[:2]))


@pytest.mark.slow
def test_int8_weights_stores_matrices_small_and_computes_in_float(auto_3f) -> None:
    from converter.ops import inspect_model

    by_mode = {r.mode: r for r in auto_3f.reports}
    weights = by_mode["int8-weights"]
    info = inspect_model(weights.model_bytes)
    assert info.op_counts["DEQUANTIZE"] >= 8 and info.io["input"]["dtype"] == "float32"
    assert any(note.startswith("weight storage:") for note in weights.notes)
    assert weights.size_bytes < 0.8 * by_mode["float32"].size_bytes
    assert by_mode["int8"].size_bytes < by_mode["float32"].size_bytes


# -- the run format: one owner of the split and the model shape -------------------------


def _run_dir(tmp_path: Path, n_rows: int = 100, **extra: object) -> Path:
    from trainer.rundir import RUN_FORMAT, TRAIN_ROWS_FILE

    meta = {"format": RUN_FORMAT, "features": ["a", "b"], "window": 8, "hop": 1,
            "model": {"kind": "lstm", "units": [16, 8], "loss": "mse"},
            "training": {"validation_fraction": 0.25}, **extra}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    np.save(tmp_path / TRAIN_ROWS_FILE, np.arange(n_rows * 2, dtype=np.float64).reshape(n_rows, 2))
    return tmp_path


def test_run_format_owns_the_split_and_the_recorded_range_wins(tmp_path: Path) -> None:
    from trainer.rundir import read_run, split_rows

    run = read_run(_run_dir(tmp_path))
    fit, held = run.split_train_rows()
    assert (len(fit), len(held)) == (75, 25)  # round(100 * 0.25), no clamping to the window
    expected_fit, expected_held = split_rows(run.train_rows(), 0.25)
    np.testing.assert_array_equal(fit, expected_fit)
    np.testing.assert_array_equal(held, expected_held)
    from trainer.split import split_train_rows  # the trainer's copy until it imports trainer.rundir's

    for n_rows, fraction in ((100, 0.25), (781, 0.2), (37, 0.3)):
        rows = np.arange(n_rows, dtype=np.float64)[:, None]
        assert [len(p) for p in split_train_rows(rows, fraction)] == [len(p) for p in split_rows(rows, fraction)]
    recorded = read_run(_run_dir(tmp_path, training={"validation_fraction": 0.25, "fit_rows": [1000, 1090]}))
    assert [len(p) for p in recorded.split_train_rows()] == [90, 10]
    bad = read_run(_run_dir(tmp_path, training={"fit_rows": [0, 500]}))
    with pytest.raises(Exception, match="training.fit_rows"):
        bad.split_train_rows()


def test_model_shape_is_read_from_run_json_and_bad_shapes_are_one_line(tmp_path: Path) -> None:
    from edge_agent.errors import VigilInputError
    from trainer.rundir import ModelShape, model_section, read_run

    shape = read_run(_run_dir(tmp_path)).model_shape
    assert shape == ModelShape(kind="lstm", window=8, n_features=2, units=(16, 8)) and shape.layers == 2
    section = model_section("dense", 32, 3, [16, 8, 4], "mae")
    assert section == {"kind": "dense", "units": [16, 8, 4], "layers": 3, "window": 32, "n_features": 3,
                       "center": False, "loss": "mae"}
    assert ModelShape.from_meta({"model": section}) == ModelShape("dense", 32, 3, (16, 8, 4))
    centered = ModelShape.from_meta({"model": model_section("lstm", 16, 1, [8, 4], "mse", center=True)})
    assert centered.center and centered.units == (8, 4)
    for model, key in (({"kind": "gru", "units": [8]}, "model.kind"), ({"kind": "lstm", "units": []}, "model.units"),
                       ({"kind": "lstm", "units": [8, 4], "layers": 3}, "model.layers"),
                       ({"kind": "lstm", "units": [8], "center": "yes"}, "model.center")):
        with pytest.raises(VigilInputError, match=key.replace(".", r"\.")) as err:
            _ = read_run(_run_dir(tmp_path, model=model)).model_shape
        assert "\n" not in str(err.value)
    with pytest.raises(VigilInputError, match="detection must be a JSON object"):
        _ = read_run(_run_dir(tmp_path, detection=[1, 2])).detection
    assert read_run(_run_dir(tmp_path, training={"skill_ratio": 0.25})).skill_ratio == 0.25
    assert read_run(_run_dir(tmp_path, training={"skill_ratio": None})).skill_ratio is None
    assert read_run(_run_dir(tmp_path, training={"skill_ratio": float("nan")})).skill_ratio is None
    with pytest.raises(VigilInputError, match="training.skill_ratio"):
        _ = read_run(_run_dir(tmp_path, training={"skill_ratio": "high"})).skill_ratio


def test_crash_detail_names_the_innermost_frame_of_faulthandlers_report() -> None:
    from converter.isolation import crash_detail, signal_name
    from converter.worker import crash_requested

    log = ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "Fatal Python error: Segmentation fault", "",
           "Current thread 0x00007f79c9889b80 (most recent call first):",
           '  File "/venv/site-packages/ai_edge_litert/interpreter.py", line 575 in allocate_tensors',
           '  File "/repo/edge_agent/runtime.py", line 190 in _make_interpreter', "",
           "Extension modules: numpy._core._multiarray_umath (total: 1)"]
    assert crash_detail(log) == "in allocate_tensors (interpreter.py:575)"
    assert crash_detail(["loading", "F tensorflow/lite/kernels/lstm.cc:88] Check failed: scale > 0", ""]) == (
        "F tensorflow/lite/kernels/lstm.cc:88] Check failed: scale > 0")
    assert signal_name(-11) == "SIGSEGV" and signal_name(-6) == "SIGABRT"
    assert crash_requested("int8", "convert", "float16,int8") and crash_requested("int8", "check", "int8:check")
    assert not crash_requested("int8", "convert", "int8:check") and not crash_requested("int8", "check", "")


# -- constant training data: issue 10, 4(b)/(d) -------------------------------------------


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainer.fit on a fully constant column (a status-like channel), tiny settings."""
    from trainer.fit import TrainConfig, run_train

    base = tmp_path_factory.mktemp("constant")
    data = base / "status.csv"
    np.savetxt(data, np.full((480, 1), 5.0), delimiter=",", header="status", comments="", fmt="%.3f")
    run_train(TrainConfig(data=data, out=base / "run", window=16, hop=1, units=(8, 4), epochs=1,
                          baseline_estimators=10, echo=lambda _m: None))
    meta = json.loads((base / "run" / "run.json").read_text())
    # The trainer floors a flat held-out set's threshold at 1e-6 (issue 10, 4(b)); a trainer without the
    # floor wrote 0, which the device's manifest check refuses. Keep the floor either way.
    meta["threshold"]["value"] = max(float(meta["threshold"]["value"]), 1e-6)
    (base / "run" / "run.json").write_text(json.dumps(meta))
    return base / "run"


@pytest.mark.slow
def test_zero_width_calibration_really_segfaults_the_interpreter_and_is_caught(
    tiny_run_1f: Path, tmp_path: Path
) -> None:
    """The crash of issue 10 (d), reproduced: int8 calibrated on the all-zero windows that constant
    training rows scale to (uncentered LSTM, as trained before ``center``), loaded in a worker."""
    from converter.convert import ConvertConfig, _prepare_windows
    from converter.export import Exporter
    from converter.isolation import RUNTIME, Isolation, TaskCrashed
    from converter.ops import inspect_model
    from converter.worker import model_file
    from trainer.rundir import read_run

    run = read_run(tiny_run_1f)
    flat = np.zeros((20, 16, 1), np.float32)  # what constant rows scale to
    model_bytes = Exporter(run.load_model(), run.model_shape).export("int8", flat).model_bytes
    info = inspect_model(model_bytes)
    assert info.degenerate_scales and any("degenerate quantization scales" in p for p in info.problems(16, 1))
    with Isolation(tmp_path) as iso:
        _prepare_windows(ConvertConfig(run=tiny_run_1f, out=tmp_path / "x.vigil"), run, iso.job)
        np.save(iso.job / "heldout_keras.npy", np.zeros(len(np.load(iso.job / "heldout.npy"))))
        model_file(iso.job, "int8").write_bytes(model_bytes)
        with pytest.raises(TaskCrashed) as crash:
            iso.call(RUNTIME, {"task": "check", "run": str(tiny_run_1f), "mode": "int8", "sets": ["heldout"],
                               "threshold": 1e-4, "limits": {"min_spearman": 0.99, "max_flipped": 0.01},
                               "info": {"int8": info.to_dict()}})
    assert crash.value.reason.startswith("interpreter crashed (SIGSEGV) in allocate_tensors (interpreter.py:")


@pytest.mark.slow
def test_a_run_trained_on_constant_data_converts_every_mode(constant_run: Path, tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer

    result = _auto(constant_run, tmp_path / "constant.vigil", rounds=2)
    by_mode = {r.mode: r for r in result.reports}
    assert not [r.mode for r in result.reports if any("crashed" in p for p in r.problems)]
    # int8 converts, loads and is checked (it may fail parity: its score noise is far above a 1e-6 threshold).
    int8 = by_mode["int8"]
    assert int8.usable and int8.parity is not None and int8.info is not None and not int8.info.degenerate_scales
    assert any("calibration windows are flat" in note for note in int8.notes)
    assert by_mode["float32"].passed and result.mode in ("float32", "dynamic", "int8-weights")
    bundle = load_bundle(result.bundle_path)
    scorer = Scorer(bundle)
    steady = np.full((16, 1), 5.0)
    jumped = steady.copy()
    jumped[8:] = 6.0
    assert scorer.score(jumped).score > scorer.score(steady).score  # a departure from the constant scores higher


def test_a_window_tied_with_the_threshold_is_not_a_flip_but_a_real_flip_is() -> None:
    from converter.parity import compare, count_flips

    # Eight held-out windows, threshold = the largest of them (few held-out windows): float32 puts that
    # window 1e-9 above it. That is rounding, not a decision the bundle makes differently.
    keras = np.array([0.10, 0.12, 0.11, 0.13, 0.09, 0.14, 0.10, 0.20])
    threshold = float(keras.max())
    bundle = keras * (1 + 1e-9)
    assert count_flips(keras, bundle, threshold) == 0
    same = compare("heldout", keras, bundle, bundle.copy(), threshold, FLOAT_LIMITS)
    assert same.passed and same.flipped == 0
    # A window clearly below the threshold that the bundle scores above it is still a flip.
    moved = bundle.copy()
    moved[1] = 0.25
    assert count_flips(keras, moved, threshold) == 1
    flipped = compare("heldout", keras, moved, moved.copy(), threshold, FLOAT_LIMITS)
    assert not flipped.passed and any("decisions flipped" in r for r in flipped.reasons)
