"""``vigil convert``: run directory -> checked, parity-proven ``.vigil`` bundle.

For each requested quantization mode, in a worker process
(``converter/isolation.py``, so a segfault costs that mode only): convert
(``export.py``), inspect the flatbuffer and refuse non-builtin / loop ops, a
batch size other than 1 and degenerate quantization scales (``ops.py``); then,
in a second worker, pack the bundle, load it back through the device's loader
and score the held-out and stressed windows through the device's ``Scorer`` in
two orders against the Keras model (``parity.py``). The modes that passed are
timed together in interleaved rounds (``latency.py``) and one is chosen by a
deterministic rule (``choice.py``). This process never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converter.choice import PREFERENCES, choose, forced_choice
from converter.isolation import CONVERTER, RUNTIME, Isolation, TaskCrashed, TaskFailed
from converter.latency import Latency
from converter.manifest import build_manifest
from converter.ops import ModelInfo
from converter.parity import ParityResult
from converter.quantize import AUTO, INT8, INT8_WEIGHTS, MODES, needs_calibration, parity_limits
from converter.run_model import load_run_model
from converter.table import ModeReport, render_reasons, render_table
from converter.windows import calibration_windows, data_windows, evenly, raw_windows, stressed
from converter.worker import array_file, model_file
from edge_agent.bundle import pack_bundle
from edge_agent.errors import VigilInputError
from trainer.rundir import RunInfo, read_run

__all__ = ["ConversionFailed", "ConvertConfig", "ConvertResult", "NoModeSurvived", "choose", "load_run_model",
           "report_path", "run_convert"]

CALIBRATION_LIMIT = 500
PARITY_LIMIT = 400  # windows per parity set
TUNING_WINDOWS = 64  # training windows (plus as many stressed ones) for int8-weights sensitivities
REPORT_SUFFIX = ".conversion.json"
PARITY_SETS = ("heldout", "stressed")


class ConversionFailed(VigilInputError):
    """``vigil verify``: the bundle failed parity; one line, exit code 1 (the input was valid)."""

    exit_code = 1


class NoModeSurvived(ConversionFailed):
    """``vigil convert``: every mode crashed, was refused or failed parity; one line, exit code 2."""

    exit_code = 2


@dataclass
class ConvertConfig:
    run: Path
    out: Path
    quantize: str = AUTO  # auto, one mode, or a comma-separated list of modes
    calibration: Path | None = None
    prefer: str = "latency"
    force: bool = False
    quiet: bool = False
    verbose: bool = False
    calibration_limit: int = CALIBRATION_LIMIT
    parity_limit: int = PARITY_LIMIT
    latency_rounds: int = 5

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = Path(self.out)
        self.calibration = None if self.calibration is None else Path(self.calibration)


@dataclass
class ConvertResult:
    bundle_path: Path | None
    mode: str | None
    table: dict[str, Any]
    reports: list[ModeReport] = field(default_factory=list, repr=False)


@dataclass
class Prepared:
    """What the parent computed before any worker ran (window counts, calibration provenance)."""

    parity_sets: dict[str, int]
    calibration_source: str
    calibration_notes: list[str]


def report_path(bundle_path: Path) -> Path:
    """``NAME.vigil`` -> ``NAME.conversion.json`` next to it."""
    return bundle_path.with_name(bundle_path.stem + REPORT_SUFFIX)


def run_convert(cfg: ConvertConfig, echo: Callable[[str], None] | None = None) -> ConvertResult:
    """Convert, check, choose and write; raises :class:`NoModeSurvived` (exit 2) when nothing passes."""
    say = (lambda _msg: None) if cfg.quiet else (echo or print)
    modes = _check_config(cfg)
    run = _read_checked_run(cfg.run)
    with tempfile.TemporaryDirectory(prefix="vigil-convert-") as tmp, Isolation(Path(tmp), cfg.verbose) as iso:
        prepared = _prepare_windows(cfg, run, iso.job)
        _references(iso, run, modes)
        reports = [_convert_and_check(iso, run, mode, prepared, say) for mode in modes]
        _time_modes(iso, run, reports, cfg.latency_rounds, say)
    chosen = choose(reports, cfg.prefer)
    if chosen is None and cfg.force:
        chosen = forced_choice(reports)
    table = _table_dict(cfg, run, reports, chosen, prepared)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(report_path(cfg.out), (json.dumps(table, indent=2) + "\n").encode())
    say(render_table(reports))
    say(render_reasons(reports))
    if chosen is None:
        raise NoModeSurvived(
            f"no mode survived ({'; '.join(f'{r.mode}: {r.reason}' for r in reports)}); no bundle written "
            f"(--force writes one when a mode only failed parity); details in {report_path(cfg.out)}",
            file=str(cfg.run),
        )
    manifest = _manifest_for(run, chosen, prepared)
    _write_atomic(cfg.out, pack_bundle(manifest, chosen.model_bytes or b""))
    if not chosen.passed:
        say(f"WARNING: {chosen.mode} failed parity; bundle written only because of --force")
    say(f"wrote {cfg.out} ({chosen.mode}, {chosen.size_bytes:,} byte model) and {report_path(cfg.out)}")
    return ConvertResult(bundle_path=cfg.out, mode=chosen.mode, table=table, reports=reports)


def _read_checked_run(path: Path) -> RunInfo:
    """The run, with the parts the manifest copies validated now: a bad run.json costs no conversion."""
    run = read_run(path)
    _ = (run.model_shape, run.detection, run.skill_ratio, run.threshold)
    return run


def _check_config(cfg: ConvertConfig) -> list[str]:
    if cfg.quantize == AUTO:
        modes = list(MODES)
    else:
        asked = [m.strip() for m in cfg.quantize.split(",") if m.strip()]
        unknown = [m for m in asked if m not in MODES]
        if unknown or not asked:
            raise VigilInputError(
                f"unknown quantization {(unknown[0] if unknown else cfg.quantize)!r}; use auto or one of "
                f"{', '.join(MODES)}", key="quantize"
            )
        modes = [m for m in MODES if m in asked]  # the fixed order, whatever order was asked
    if cfg.prefer not in PREFERENCES:
        raise VigilInputError(f"unknown preference {cfg.prefer!r}; use latency or size", key="prefer")
    if cfg.calibration is not None and not cfg.calibration.is_file():
        raise VigilInputError("calibration file not found", file=str(cfg.calibration), key="calibration")
    if cfg.out.exists() and cfg.out.is_dir():
        raise VigilInputError("is a directory; give the bundle file name (NAME.vigil)", file=str(cfg.out))
    return modes


def _prepare_windows(cfg: ConvertConfig, run: RunInfo, job: Path) -> Prepared:
    """Parity sets (held-out, stressed), int8 calibration and int8-weights tuning windows, as NPY files."""
    fit_rows, heldout_rows = run.split_train_rows()
    heldout = evenly(raw_windows(heldout_rows, run.spec), cfg.parity_limit).astype(np.float32)
    if len(heldout) == 0:
        raise VigilInputError("the run's held-out rows are shorter than one window", file=str(run.path))
    np.save(array_file(job, "heldout"), heldout)
    np.save(array_file(job, "stressed"), stressed(heldout, run.scaler))
    if cfg.calibration is not None:
        raw = data_windows(cfg.calibration, run.features, run.spec, None)
        source = str(cfg.calibration)
    else:
        raw = raw_windows(fit_rows, run.spec)
        source = "run training rows (fit part)"
    calibration, notes = calibration_windows(raw, run.scaler, cfg.calibration_limit, run.model_shape.center)
    np.save(array_file(job, "calibration"), calibration)
    normal = evenly(raw_windows(fit_rows, run.spec), TUNING_WINDOWS).astype(np.float32)
    np.save(array_file(job, "tuning"), np.concatenate([normal, stressed(normal, run.scaler)]))
    counts = {name: int(len(heldout)) for name in PARITY_SETS}
    return Prepared(parity_sets=counts, calibration_source=source, calibration_notes=notes)


def _references(iso: Isolation, run: RunInfo, modes: list[str]) -> None:
    """Keras scores of the parity (and tuning) windows, computed in the converter worker."""
    sets = [*PARITY_SETS, *(["tuning"] if INT8_WEIGHTS in modes else [])]
    try:
        iso.call(CONVERTER, {"task": "references", "run": str(run.path), "sets": sets})
    except (TaskCrashed, TaskFailed) as exc:
        raise NoModeSurvived(f"no mode converted: scoring the parity windows with the Keras model failed: "
                             f"{exc.reason}", file=str(run.path)) from None


def _convert_and_check(
    iso: Isolation, run: RunInfo, mode: str, prepared: Prepared, say: Callable[[str], None]
) -> ModeReport:
    """One mode: convert (converter worker), inspect, parity (runtime worker); one line at each end."""
    say(f"mode {mode}: converting")
    report = ModeReport(mode=mode)
    try:
        result = iso.call(CONVERTER, {"task": "convert", "run": str(run.path), "mode": mode, "plan_weights": True})
    except (TaskCrashed, TaskFailed, VigilInputError) as exc:  # the run itself loaded in _references
        report.problems.append(_conversion_problem(exc))
        report.log_tail = getattr(exc, "log_tail", [])
        say(f"mode {mode}: dropped - {report.problems[-1]}")
        return report
    report.model_bytes = model_file(iso.job, mode).read_bytes()
    report.convert_seconds = float(result["seconds"])
    report.notes = list(result["notes"])
    if needs_calibration(mode):
        report.notes.append(f"calibrated on windows from {prepared.calibration_source}")
        report.notes.extend(prepared.calibration_notes)
    info = ModelInfo.from_dict(result["info"])
    report.ops, report.io, report.info = info.ops, info.io, info
    report.problems.extend(info.problems(run.spec.window, len(run.features)))
    if not report.problems:
        _check(iso, run, report)
    say(_progress_line(report))
    return report


def _conversion_problem(exc: TaskCrashed | TaskFailed | VigilInputError) -> str:
    if isinstance(exc, TaskCrashed):
        return exc.reason
    return f"conversion failed: {exc.reason if isinstance(exc, TaskFailed) else str(exc)}"


def _check(iso: Isolation, run: RunInfo, report: ModeReport) -> None:
    """Parity in the runtime worker: an interpreter crash (e.g. in allocate_tensors) drops the mode."""
    assert report.info is not None
    req = {"task": "check", "run": str(run.path), "mode": report.mode, "sets": list(PARITY_SETS),
           "threshold": run.threshold, "limits": parity_limits(report.mode).to_dict(),
           "info": {report.mode: report.info.to_dict()}, "notes": {report.mode: report.notes}}
    try:
        report.parity = ParityResult.from_dict(iso.call(RUNTIME, req))
    except TaskCrashed as exc:
        report.problems.append(f"{exc.reason} during the parity check")
        report.log_tail = exc.log_tail
    except (TaskFailed, VigilInputError) as exc:
        reason = exc.reason if isinstance(exc, TaskFailed) else exc.detail
        report.problems.append(f"edge runtime refused it: {reason}")


def _progress_line(report: ModeReport) -> str:
    size = "-" if report.size_bytes is None else f"{report.size_bytes:,} bytes"
    if report.problems:
        return f"mode {report.mode}: {size}, dropped - {'; '.join(report.problems)}"
    assert report.parity is not None
    worst = report.parity.worst()
    verdict = "pass" if report.parity.passed else "FAIL (" + "; ".join(report.parity.reasons) + ")"
    return (f"mode {report.mode}: {size}, parity {verdict}, worst spearman {worst['spearman']:.5f}, "
            f"{100 * worst['flipped_share']:.2f}% flipped")


def _time_modes(
    iso: Isolation, run: RunInfo, reports: list[ModeReport], rounds: int, say: Callable[[str], None]
) -> None:
    """Interleaved latency rounds of every checked mode; after a crash, each mode alone."""
    checked = [r for r in reports if r.usable and r.parity is not None]
    if not checked:
        return
    try:
        timing = _latency(iso, run, checked, rounds)
    except (TaskCrashed, TaskFailed):
        timing = {}
        for r in checked:  # find the culprit: time each mode in its own worker
            try:
                timing.update(_latency(iso, run, [r], rounds))
            except (TaskCrashed, TaskFailed) as exc:
                r.problems.append(f"{exc.reason} while timing")
    for r in checked:
        r.latency = timing.get(r.mode)
    base = next((r.latency for r in checked if r.mode == "float32" and r.latency is not None), None)
    for r in checked:
        if r.latency is not None:
            vs = f" ({r.latency.median_ms / base.median_ms:.2f}x float32)" if base and base.median_ms > 0 else ""
            say(f"mode {r.mode}: {r.latency.median_ms:.3f} ms per window, median of {rounds} interleaved "
                f"rounds{vs}")


def _latency(iso: Isolation, run: RunInfo, reports: list[ModeReport], rounds: int) -> dict[str, Latency]:
    req = {"task": "latency", "run": str(run.path), "modes": [r.mode for r in reports], "windows": "heldout",
           "rounds": rounds, "info": {r.mode: r.info.to_dict() for r in reports if r.info is not None},
           "notes": {r.mode: r.notes for r in reports}}
    return {mode: Latency.from_dict(t) for mode, t in iso.call(RUNTIME, req).items()}


def _manifest_for(run: RunInfo, chosen: ModeReport, prepared: Prepared) -> dict[str, Any]:
    assert chosen.model_bytes is not None and chosen.info is not None
    details: dict[str, Any] = {"notes": chosen.notes}
    if chosen.mode == INT8:
        details["calibration"] = prepared.calibration_source
    conversion = {
        "chosen_because": chosen.reason,
        "parity": None if chosen.parity is None else chosen.parity.to_dict(),
        "latency_ms": None if chosen.latency is None else chosen.latency.to_dict(),
        "parity_sets": prepared.parity_sets,
    }
    return build_manifest(run, chosen.mode, chosen.model_bytes, chosen.info, details, conversion)


def _table_dict(
    cfg: ConvertConfig, run: RunInfo, reports: list[ModeReport], chosen: ModeReport | None, prepared: Prepared
) -> dict[str, Any]:
    from converter.choice import LATENCY_MARGIN

    return {
        "run": str(run.path),
        "bundle": None if chosen is None else str(cfg.out),
        "requested": cfg.quantize,
        "prefer": cfg.prefer,
        "latency_margin": LATENCY_MARGIN,
        "force": cfg.force,
        "chosen": None if chosen is None else chosen.mode,
        "threshold": run.threshold,
        "calibration": prepared.calibration_source,
        "parity_sets": prepared.parity_sets,
        "latency_windows": prepared.parity_sets["heldout"],
        "modes": [r.to_dict() for r in reports],
    }


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a bundle."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
