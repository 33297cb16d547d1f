"""``vigil convert``: run directory -> checked, parity-proven ``.vigil`` bundle.

For each requested quantization mode: convert (``export.py``), refuse
non-builtin / loop ops and a batch size other than 1 (``ops.py``), pack the
bundle and load it back through the device's loader, score the held-out and
stressed windows through the device's ``Scorer`` in two orders and compare
with the Keras model (``parity.py``), and time it (``latency.py``). ``auto``
converts every mode and keeps the fastest passing one (ties within 10% go to
the smaller file) or, with ``prefer="size"``, the smallest passing one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converter.export import Exporter, WeightPlanner, quiet
from converter.latency import measure_latency
from converter.manifest import build_manifest
from converter.mixed import plan_weights
from converter.ops import inspect_model
from converter.parity import Reference, check_parity, keras_reference
from converter.quantize import AUTO, FLOAT32, INT8, INT8_WEIGHTS, MODES, needs_calibration, parity_limits
from converter.table import DROPPED, KEPT, ModeReport, render_reasons, render_table
from converter.windows import (
    WindowSet,
    calibration_windows,
    data_windows,
    evenly,
    raw_windows,
    split_train_rows,
    stressed,
)
from edge_agent.bundle import Bundle, pack_bundle, parse_bundle
from edge_agent.errors import VigilInputError
from edge_agent.runtime import Scorer
from trainer.keras_backend import keras
from trainer.rundir import RunInfo, read_run

PREFERENCES = ("latency", "size")
TIE_MARGIN = 0.10  # latencies within 10% of the fastest count as a tie
CALIBRATION_LIMIT = 500
PARITY_LIMIT = 400  # windows per parity set
TUNING_WINDOWS = 64  # training windows (plus as many stressed ones) for int8-weights sensitivities
REPORT_SUFFIX = ".conversion.json"


class ConversionFailed(VigilInputError):
    """No mode passed the checks; one line, exit code 1 (the input was valid)."""

    exit_code = 1


@dataclass
class ConvertConfig:
    run: Path
    out: Path
    quantize: str = AUTO
    calibration: Path | None = None
    prefer: str = "latency"
    force: bool = False
    quiet: bool = False
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


def report_path(bundle_path: Path) -> Path:
    """``NAME.vigil`` -> ``NAME.conversion.json`` next to it."""
    return bundle_path.with_name(bundle_path.stem + REPORT_SUFFIX)


def run_convert(cfg: ConvertConfig, echo: Callable[[str], None] | None = None) -> ConvertResult:
    """Convert, check, choose and write; raises :class:`ConversionFailed` when nothing passes."""
    say = (lambda _msg: None) if cfg.quiet else (echo or print)
    modes = _check_config(cfg)
    run = read_run(cfg.run)
    model = load_run_model(run)
    references, calibration, calibration_source = _prepare_windows(cfg, run, model)
    exporter = Exporter(model)
    planner = _weight_planner(run, model) if INT8_WEIGHTS in modes else None
    reports = [_convert_mode(exporter, run, mode, calibration, calibration_source, planner) for mode in modes]
    _evaluate(run, reports, references, cfg.latency_rounds)
    chosen = choose(reports, cfg.prefer)
    if chosen is None and cfg.force:
        chosen = _forced_choice(reports)
    table = _table_dict(cfg, run, reports, chosen, references, calibration_source)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(report_path(cfg.out), (json.dumps(table, indent=2) + "\n").encode())
    say(render_table(reports))
    say(render_reasons(reports))
    if chosen is None:
        raise ConversionFailed(
            f"no mode passed ({'; '.join(f'{r.mode}: {r.reason}' for r in reports)}); no bundle written "
            f"(--force writes one anyway); details in {report_path(cfg.out)}",
            file=str(cfg.run),
        )
    manifest = _manifest_for(run, chosen, calibration_source, references)
    _write_atomic(cfg.out, pack_bundle(manifest, chosen.model_bytes or b""))
    if not chosen.passed:
        say(f"WARNING: {chosen.mode} failed parity; bundle written only because of --force")
    say(f"wrote {cfg.out} ({chosen.mode}, {chosen.size_bytes:,} byte model) and {report_path(cfg.out)}")
    return ConvertResult(bundle_path=cfg.out, mode=chosen.mode, table=table, reports=reports)


def load_run_model(run: RunInfo) -> Any:
    """The run's Keras model (TensorFlow imported quietly); a broken file is a one-line error."""
    with quiet():  # TensorFlow's import-time C++ log lines (CUDA probing, oneDNN notes)
        keras()
    try:
        return run.load_model()
    except (OSError, ValueError, TypeError) as exc:
        raise VigilInputError(f"cannot load the model: {_first_line(exc)}", file=str(run.model_path)) from None


def _evaluate(run: RunInfo, reports: list[ModeReport], references: list[Reference], rounds: int) -> None:
    """Parity (two orders) and latency of every usable mode, through the device's Scorer."""
    scorers = {r.mode: _scorer_for(run, r) for r in reports if r.usable}
    scorers = {mode: s for mode, s in scorers.items() if s is not None}
    for r in reports:
        if r.mode in scorers:
            r.parity = check_parity(scorers[r.mode], references, run.threshold, parity_limits(r.mode), r.mode)
    if scorers:
        timing = measure_latency(scorers, references[0].windows.raw, rounds=rounds)
        for r in reports:
            r.latency = timing.get(r.mode)


def _check_config(cfg: ConvertConfig) -> list[str]:
    if cfg.quantize != AUTO and cfg.quantize not in MODES:
        raise VigilInputError(
            f"unknown quantization {cfg.quantize!r}; use auto or one of {', '.join(MODES)}", key="quantize"
        )
    if cfg.prefer not in PREFERENCES:
        raise VigilInputError(f"unknown preference {cfg.prefer!r}; use latency or size", key="prefer")
    if cfg.calibration is not None and not cfg.calibration.is_file():
        raise VigilInputError("calibration file not found", file=str(cfg.calibration), key="calibration")
    if cfg.out.exists() and cfg.out.is_dir():
        raise VigilInputError("is a directory; give the bundle file name (NAME.vigil)", file=str(cfg.out))
    return list(MODES) if cfg.quantize == AUTO else [cfg.quantize]


def _prepare_windows(
    cfg: ConvertConfig, run: RunInfo, model: Any
) -> tuple[list[Reference], np.ndarray, str]:
    """Parity references (held-out, stressed) and the int8 calibration windows."""
    fit_rows, heldout_rows = split_train_rows(run)
    heldout = evenly(raw_windows(heldout_rows, run.spec), cfg.parity_limit).astype(np.float32)
    if len(heldout) == 0:
        raise VigilInputError("the run's held-out rows are shorter than one window", file=str(run.path))
    sets = [WindowSet("heldout", heldout), WindowSet("stressed", stressed(heldout, run.scaler))]
    references = [keras_reference(model, s, run.scaler, run.score_function, run.score_weights) for s in sets]
    if cfg.calibration is not None:
        raw = data_windows(cfg.calibration, run.features, run.spec, None)
        calibration = np.ascontiguousarray(run.scaler.transform(evenly(raw, cfg.calibration_limit)), np.float32)
        source = str(cfg.calibration)
    else:
        calibration = calibration_windows(fit_rows, run.scaler, run.spec, cfg.calibration_limit)
        source = "run training rows (fit part)"
    return references, calibration, source


def _weight_planner(run: RunInfo, model: Any) -> WeightPlanner:
    """int8-weights: per-matrix storage from sensitivities measured on training windows."""
    fit_rows, _ = split_train_rows(run)
    normal = evenly(raw_windows(fit_rows, run.spec), TUNING_WINDOWS).astype(np.float32)
    tuning = WindowSet("tuning", np.concatenate([normal, stressed(normal, run.scaler)]))
    reference = keras_reference(model, tuning, run.scaler, run.score_function, run.score_weights)

    def make_scorer(model_bytes: bytes) -> Scorer:
        return Scorer(_bundle_for(run, ModeReport(mode=FLOAT32, model_bytes=model_bytes)))

    def planner(float32_bytes: bytes) -> tuple[bytes, list[str]]:
        mixed = plan_weights(float32_bytes, make_scorer, tuning.raw, reference.keras_scores)
        return mixed.result.model_bytes, mixed.notes()

    return planner


def _convert_mode(
    exporter: Exporter, run: RunInfo, mode: str, calibration: np.ndarray, calibration_source: str,
    planner: WeightPlanner | None = None,
) -> ModeReport:
    report = ModeReport(mode=mode)
    try:
        export = exporter.export(mode, calibration if needs_calibration(mode) else None, planner)
    except Exception as exc:  # noqa: BLE001 - any converter crash just drops this mode
        report.problems.append(f"conversion failed: {type(exc).__name__}: {_first_line(exc)}")
        return report
    report.model_bytes = export.model_bytes
    report.convert_seconds = export.seconds
    report.notes = list(export.notes)
    if needs_calibration(mode):
        report.notes.append(f"calibrated on {len(calibration)} windows from {calibration_source}")
    info = inspect_model(export.model_bytes)
    report.ops = info.ops
    report.io = info.io
    report.problems.extend(info.problems(run.spec.window, len(run.features)))
    return report


def _bundle_for(run: RunInfo, report: ModeReport, conversion: dict[str, Any] | None = None) -> Bundle:
    """Pack and re-load through the device's loader: parity runs on what the device will read."""
    assert report.model_bytes is not None
    info = inspect_model(report.model_bytes)
    manifest = build_manifest(run, report.mode, report.model_bytes, info, {"notes": report.notes}, conversion or {})
    return parse_bundle(pack_bundle(manifest, report.model_bytes), f"<{report.mode} bundle>")


def _scorer_for(run: RunInfo, report: ModeReport) -> Scorer | None:
    try:
        return Scorer(_bundle_for(run, report))
    except VigilInputError as exc:  # e.g. the runtime cannot load the model
        report.problems.append(f"edge runtime refused it: {exc.detail}")
        return None


def choose(reports: list[ModeReport], prefer: str = "latency") -> ModeReport | None:
    """Pick the mode to ship and record for every mode why it was kept or dropped."""
    for r in reports:
        r.status = DROPPED
        if r.problems:
            r.reason = "; ".join(r.problems)
        elif r.parity is None:
            r.reason = "not checked"
        elif not r.parity.passed:
            r.reason = "parity failed: " + "; ".join(r.parity.reasons)
    passing = [r for r in reports if r.passed and r.latency is not None]
    if not passing:
        return None
    if prefer == "size":
        chosen = min(passing, key=lambda r: (r.size_bytes, r.latency.median_ms))  # type: ignore[union-attr]
        chosen.reason = f"smallest passing file ({chosen.size_bytes:,} bytes; --prefer size)"
    else:
        fastest = min(passing, key=lambda r: r.latency.median_ms)  # type: ignore[union-attr]
        limit = fastest.latency.median_ms * (1 + TIE_MARGIN)  # type: ignore[union-attr]
        tied = [r for r in passing if r.latency.median_ms <= limit]  # type: ignore[union-attr]
        chosen = min(tied, key=lambda r: (r.size_bytes, r.latency.median_ms))  # type: ignore[union-attr]
        if chosen is fastest and len(tied) == 1:
            chosen.reason = f"lowest median latency ({_ms(chosen)}), parity passed"
        elif chosen is fastest:
            chosen.reason = f"lowest median latency ({_ms(chosen)}) and smallest of the modes within 10% of it"
        else:
            chosen.reason = (f"within 10% of the fastest ({fastest.mode} {_ms(fastest)}: {_ms(chosen)}) "
                             f"and smaller ({chosen.size_bytes:,} vs {fastest.size_bytes:,} bytes)")
    chosen.status = KEPT
    for r in passing:
        if r is not chosen:
            r.reason = _why_not(r, chosen, prefer)
    return chosen


def _why_not(r: ModeReport, chosen: ModeReport, prefer: str) -> str:
    assert r.latency is not None and chosen.latency is not None
    ratio = r.latency.median_ms / chosen.latency.median_ms if chosen.latency.median_ms > 0 else float("inf")
    size = f"{r.size_bytes:,} vs {chosen.size_bytes:,} bytes"
    if prefer == "size":
        return f"parity passed but larger than {chosen.mode} ({size})"
    if ratio > 1 + TIE_MARGIN:
        return f"parity passed but {ratio:.2f}x the latency of {chosen.mode} ({_ms(r)} vs {_ms(chosen)})"
    return f"parity passed, latency within 10% of {chosen.mode}, but larger ({size})"


def _forced_choice(reports: list[ModeReport]) -> ModeReport | None:
    """--force: the usable mode with the best worst-set Spearman (ops must still be builtin)."""
    usable = [r for r in reports if r.usable and r.parity is not None]
    if not usable:
        return None
    chosen = max(usable, key=lambda r: np.nan_to_num(r.parity.worst()["spearman"], nan=-1.0))  # type: ignore[union-attr]
    chosen.status = KEPT
    chosen.reason = f"FORCED despite failing parity ({chosen.reason})"
    return chosen


def _ms(r: ModeReport) -> str:
    return "-" if r.latency is None else f"{r.latency.median_ms:.3f} ms"


def _manifest_for(
    run: RunInfo, chosen: ModeReport, calibration_source: str, references: list[Reference]
) -> dict[str, Any]:
    assert chosen.model_bytes is not None
    info = inspect_model(chosen.model_bytes)
    details: dict[str, Any] = {"notes": chosen.notes}
    if chosen.mode == INT8:
        details["calibration"] = calibration_source
    conversion = {
        "chosen_because": chosen.reason,
        "parity": None if chosen.parity is None else chosen.parity.to_dict(),
        "latency_ms": None if chosen.latency is None else chosen.latency.to_dict(),
        "parity_sets": {ref.windows.name: int(len(ref.windows.raw)) for ref in references},
    }
    return build_manifest(run, chosen.mode, chosen.model_bytes, info, details, conversion)


def _table_dict(
    cfg: ConvertConfig,
    run: RunInfo,
    reports: list[ModeReport],
    chosen: ModeReport | None,
    references: list[Reference],
    calibration_source: str,
) -> dict[str, Any]:
    return {
        "run": str(run.path),
        "bundle": None if chosen is None else str(cfg.out),
        "requested": cfg.quantize,
        "prefer": cfg.prefer,
        "force": cfg.force,
        "chosen": None if chosen is None else chosen.mode,
        "threshold": run.threshold,
        "calibration": calibration_source,
        "parity_sets": {ref.windows.name: int(len(ref.windows.raw)) for ref in references},
        "latency_windows": int(len(references[0].windows.raw)),
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
