"""vigil convert / verify: every mode converts, builtin ops only, parity in both orders, choice rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from converter.latency import Latency
from converter.parity import ParityResult, SetParity
from converter.quantize import FLOAT_LIMITS, MODES, QUANTIZED_LIMITS, ParityLimits
from converter.table import KEPT, ModeReport
from tests.models import normal_rows, with_anomalies


def _cli(args: list[str]):
    from vigil.cli import app

    return CliRunner().invoke(app, args)


def _auto(run_dir: Path, out: Path):
    from converter.convert import ConvertConfig, run_convert

    return run_convert(ConvertConfig(run=run_dir, out=out, quantize="auto", quiet=True, latency_rounds=2))


@pytest.fixture(scope="module")
def tiny_run_1f(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("run1f"), n_features=1, seed=1)


@pytest.fixture(scope="module")
def auto_1f(tiny_run_1f: Path, tmp_path_factory: pytest.TempPathFactory):
    return _auto(tiny_run_1f, tmp_path_factory.mktemp("auto1f") / "one.vigil")


@pytest.fixture(scope="module")
def auto_3f(tiny_run_3f: Path, tmp_path_factory: pytest.TempPathFactory):
    return _auto(tiny_run_3f, tmp_path_factory.mktemp("auto3f") / "three.vigil")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["auto_1f", "auto_3f"])
def test_every_mode_converts_to_builtin_ops_without_loops(which: str, request: pytest.FixtureRequest) -> None:
    from converter.ops import inspect_model

    result = request.getfixturevalue(which)
    n_features = 1 if which == "auto_1f" else 3
    assert [r.mode for r in result.reports] == list(MODES)
    for report in result.reports:
        assert report.usable, (report.mode, report.problems)
        info = inspect_model(report.model_bytes)
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops, report.mode
        assert not [op for op in info.ops if op in {"WHILE", "IF", "CALL_ONCE"} or "Flex" in op or "CUSTOM" in op]
        assert info.subgraphs == 1
        assert info.io["input"]["shape"] == info.io["input"]["shape_signature"] == [1, 16, n_features]
        assert report.latency is not None and report.latency.median_ms > 0


@pytest.mark.slow
@pytest.mark.parametrize("which", ["auto_1f", "auto_3f"])
def test_parity_is_measured_in_two_orders_and_the_kept_mode_passes(which: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(which)
    by_mode = {r.mode: r for r in result.reports}
    for report in result.reports:
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
    assert auto_3f.bundle_path.name == "three.vigil" and report_path(auto_3f.bundle_path).name == "three.conversion.json"
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


def test_choice_ties_within_ten_percent_go_to_the_smaller_file() -> None:
    from converter.convert import choose

    reports = [_report("float32", 1000, 1.00), _report("float16", 600, 1.08), _report("int8", 300, 3.0),
               _report("dynamic", 200, 0.5, passed=False)]
    chosen = choose(reports, "latency")
    assert chosen is not None and chosen.mode == "float16"
    assert "within 10%" in chosen.reason
    status = {r.mode: (r.status, r.reason) for r in reports}
    assert status["dynamic"][0] == "dropped" and "parity failed" in status["dynamic"][1]
    assert "3.00x the latency" in status["int8"][1] or "x the latency" in status["int8"][1]
    assert "larger" in status["float32"][1]


def test_choice_outside_the_margin_takes_the_fastest_and_size_preference_the_smallest() -> None:
    from converter.convert import choose

    reports = [_report("float32", 1000, 1.00), _report("float16", 600, 1.20), _report("int8", 300, 3.0)]
    assert choose(reports, "latency").mode == "float32"  # type: ignore[union-attr]
    assert choose(reports, "size").mode == "int8"  # type: ignore[union-attr]
    assert choose([_report("float32", 10, 1.0, passed=False)], "latency") is None


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
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("vigil convert: ")
    assert "no mode passed" in result.output and "spearman" in result.output
    assert not out.exists() and convert_module.report_path(out).exists()

    forced = _cli(["convert", str(tiny_run_3f), "--out", str(out), "--quantize", "float32", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "WARNING" in forced.output
    manifest = load_bundle(out).manifest
    assert manifest["conversion"]["parity"]["passed"] is False


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
