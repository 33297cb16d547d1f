"""Fit the autoencoder on normal rows and write a run directory.

The training rows (``--train-rows``) are split in time: the first
``1 - validation_fraction`` are the *fitted* rows (the scaler and the model
see only these), the held-out tail is used for early stopping and for the
threshold. Thresholds computed on fitted windows would be too low, because
the model reconstructs what it was trained on better than new normal data.

Why the defaults (window 128, hop 4, Adam 3e-3 halved on plateaus, batch 64, at most 2048 windows per
epoch, patience 10, level pass-through with a per-feature deviation scale, minmax scaler, --false-alarms
auto (trainer.calibrate), no smoothing): window and hop were measured on the ECG record chfdb_chf01_275
(train rows 0:1833): 64- or 96-row windows let normal beats' score spikes reach 1.6-2.5x the threshold;
128-row windows average them out. Hop 4 quarters training and device compute and delays an alarm by at
most 3 rows. Adam 3e-3 reaches a lower validation loss than 1e-3 in fewer epochs; 1e-2 collapsed to the
mean.

Skill (benchmarks/notes/skill.md): the level pass-through (``center``) took the held-out error from
1.09-45x that of repeating each window's mean to 0.29-0.85 on four real series, patience 10 to
0.26-0.59. This round: the deviation scale (the network sees each window's deviations divided by their
typical size in training, ``trainer.model``) and halving the rate when the validation loss stalls
(``trainer.training``) took the ECG chfdb_chf13_45590 from 0.90 (stalled: its loss jumped back up at a
constant 3e-3) to 0.15; scale alone gave 0.47. The series still above the 0.8 limit are noise inside a
window (lag-1 autocorrelation of the held-out deviations below 0.5, ``trainer.skill``): no reconstruction
beats the mean there, and the warning says so.

Speed (benchmarks/train_speed.py): an epoch is at most 2048 windows of a tf.data stream that reshuffles
and repeats the fitted windows, so a long series costs at most 32 batches between validation checks and
early stopping acts at the same pace on long and short series; a series with fewer windows still sees
one pass per epoch. On the 20k-row x 3-feature reference the defaults train 41 epochs, 4.5 min wall on
2 shared cores (not the 2-minute target; the tf.data stream costs what arrays cost per batch).
Batch 256 at the same rate learns less per CPU second (last round:
val loss 0.018 after 38 CPU s vs 0.008 after 41 s with batch 64 on 20k rows x 3 features) and was worse
on the short real series (skill 0.74-0.90), so batch 64 stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core import Scaler, WindowSpec, ewma, score_windows, sliding_windows
from edge_agent.errors import VigilInputError
from edge_agent.readers import Table, load_table
from trainer.baseline import IsolationForestBaseline
from trainer.calibrate import (
    DEFAULT_FALSE_ALARMS,
    FalseAlarmBudget,
    calibrate_threshold,
    expected_rate_text,
    false_alarm_info,
    parse_false_alarms,
)
from trainer.detection_meta import detection_section, device_smoothing
from trainer.labeled_rows import Labeled, labeled_rows
from trainer.prepare import (
    choose_window,
    clean_windows,
    constant_feature_notes,
    feature_stats,
    near_constant_features,
    parse_clean,
)
from trainer.run_meta import build_meta
from trainer.rundir import RUN_JSON, RunInfo, read_run, write_run
from trainer.skill import deviation_autocorrelation, skill_ratio, skill_warning
from trainer.spectral_train import finish_meta, spectral_input
from trainer.split import split_train_rows
from trainer.threshold import (
    ThresholdStrategy,
    error_stats,
    labeled_threshold,
    normal_threshold,
    parse_strategy,
)
from trainer.training import FitSettings
from trainer.window_choice import MIN_AUTO_WINDOW, dominant_period

__all__ = ["TrainConfig", "run_train", "split_train_rows"]

MIN_HELDOUT_WINDOWS = 8
# A threshold below float32 reconstruction noise would alarm on a perfectly reconstructed
# window (a fully constant training set gives held-out errors of ~1e-12).
MIN_THRESHOLD = {"mse": 1e-6, "mae": 1e-3}


@dataclass
class TrainConfig:
    """Everything ``vigil train`` accepts; the defaults are the CLI's defaults."""

    data: str | Path
    out: str | Path
    columns: list[str] | None = None
    train_rows: tuple[int | None, int | None] | None = None
    timestamp_column: str | None = None
    window: int = 128
    hop: int = 4
    # The fit's knobs: their defaults are declared once, in trainer.training.FitSettings.
    model: str = FitSettings.model
    units: tuple[int, ...] = FitSettings.units
    loss: str = FitSettings.loss
    center: bool = FitSettings.center
    epochs: int = FitSettings.epochs
    batch_size: int = FitSettings.batch_size
    patience: int = FitSettings.patience
    learning_rate: float = FitSettings.learning_rate
    lr_schedule: str = FitSettings.lr_schedule
    shape_scale: bool = FitSettings.shape_scale
    clipnorm: float | None = FitSettings.clipnorm
    windows_per_epoch: int | None = FitSettings.windows_per_epoch
    min_improvement: float = FitSettings.min_improvement
    validation_fraction: float = 0.2
    scaler: str = "minmax"
    clip: float | None = None
    clean: str = "auto"
    threshold: str = "pot"
    false_alarms: str = DEFAULT_FALSE_ALARMS
    k: float = 3.0
    labels: str | Path | None = None
    label_rows: tuple[int | None, int | None] | None = None
    channel: str | None = None
    series: str | None = None
    smoothing: float | None = None
    score: str = "mse"
    weights: list[float] | None = None
    seed: int = 0
    features: str = "raw"  # raw samples, or spectral frame features (trainer.spectral_train)
    frontend: dict[str, Any] | None = None  # spectral overrides: frame, hop, bands, normalise
    baseline_estimators: int = 100
    echo: Callable[[str], None] = field(default=print, repr=False)


def run_train(cfg: TrainConfig) -> RunInfo:
    """Load, fit, set the threshold, fit the baseline, write ``cfg.out``; return the run."""
    _check_config(cfg)
    strategy = parse_strategy(cfg.threshold, cfg.k)
    budget = parse_false_alarms(cfg.false_alarms) if strategy.name == "pot" else None
    clean = parse_clean(cfg.clean)
    out = _prepare_out(Path(cfg.out))
    cfg.echo(f"reading {cfg.data} ...")
    table = load_table(cfg.data, cfg.columns, cfg.train_rows, cfg.timestamp_column, min_rows=MIN_AUTO_WINDOW)
    cfg, table, frontend, raw_table = spectral_input(cfg, table)  # spectral: from here on rows are frames
    _check_weights(cfg, table)
    fit_rows, heldout_rows = split_train_rows(table.values, cfg.validation_fraction)
    spec, window_note = _window_spec(cfg, table, fit_rows)
    _check_split(cfg, table, spec, len(fit_rows), len(heldout_rows))
    labeled = labeled_rows(cfg, strategy, spec.window)  # before training: bad labels should not cost a fit
    stats = feature_stats(fit_rows, table.names)
    near_constant = near_constant_features(fit_rows, table.names)
    for note in constant_feature_notes(stats, near_constant):
        cfg.echo(note)

    cfg.echo("loading TensorFlow ...")  # the import takes seconds: say so before it starts
    from trainer.keras_backend import set_seed

    set_seed(cfg.seed)
    scaler = Scaler.fit(fit_rows, cfg.scaler, clip=cfg.clip)
    fit_windows = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    held_windows = np.ascontiguousarray(sliding_windows(scaler.transform(heldout_rows), spec))
    fit_windows, clean_info = clean_windows(fit_windows, clean, cfg.seed)
    if clean_info["dropped"]:
        cfg.echo(f"--clean {clean.text}: dropped {clean_info['dropped']} of {clean_info['n_windows']} training "
                 f"windows that an IsolationForest isolates most (likely anomalies in the training rows)")
    cfg.echo(f"training on {len(fit_windows)} windows of {spec.window} rows ({len(fit_rows)} rows x "
             f"{table.values.shape[1]} features), validating on {len(held_windows)} held-out windows "
             f"({len(heldout_rows)} rows)")
    model, history = _fit_model(cfg, spec, fit_windows, held_windows)

    from trainer.keras_scoring import predict_windows, score_rows

    recon = predict_windows(model, held_windows)
    raw, _ = score_windows(held_windows, recon, cfg.score, cfg.weights)
    if not np.isfinite(raw).all():
        raise VigilInputError(f"training diverged (non-finite reconstruction errors); try a lower --learning-rate "
                              f"than {cfg.learning_rate:g} or --scaler standard", file=str(cfg.data))
    skill = _report_skill(cfg, spec, held_windows, _skill_recon(cfg, model, held_windows, recon), history, fit_rows)
    # The threshold is set on scores smoothed the way the device will smooth them (the policy's alpha).
    alpha = device_smoothing(cfg.smoothing, spec.window, spec.hop, table.sampling_rate_hz)
    held_scores = ewma(raw, alpha)
    threshold, t_params = _threshold(cfg, strategy, budget, table, spec, held_scores, labeled, lambda v: score_rows(
        model, v, scaler, spec, cfg.score, cfg.weights, alpha).row_scores)
    baseline = _fit_baseline(cfg, strategy, budget, table, fit_rows, heldout_rows, labeled, scaler, spec)

    training_extra = {"skill_ratio": skill, "feature_stats": stats, "near_constant_features": near_constant,
                      "clean": clean_info,
                      "window_choice": window_note, "dominant_period": dominant_period(fit_rows),
                      "lr_schedule": cfg.lr_schedule, "clipnorm": cfg.clipnorm, "shape_scale": _shape_scale(model),
                      "windows_per_epoch": cfg.windows_per_epoch,
                      "heldout_autocorrelation": deviation_autocorrelation(held_windows)}
    meta = build_meta(cfg, table, spec, scaler, strategy, threshold, t_params, history, baseline,
                      len(fit_windows), len(held_windows), error_stats(held_scores), len(fit_rows), training_extra)
    # What the device does with the scores (policy, dynamic threshold, sensor checks): see detection_meta.
    meta["smoothing"] = {"alpha": alpha}  # what the threshold was set on and the device applies
    if cfg.model == "aer":  # the AER score's scales (frozen into the model; recorded to explain it)
        from trainer.aer_model import aer_section

        meta["model"]["aer"] = aer_section(model)
    meta["detection"] = detection_section(fit_rows, table.names, spec.window, spec.hop, table.sampling_rate_hz,
                                          skill_ratio=skill, smoothing=alpha, false_alarm=false_alarm_info(t_params))
    finish_meta(meta, frontend, raw_table, out)
    write_run(out, meta, model, table.values)
    _plot(out, history, cfg, spec)
    cfg.echo(f"threshold {threshold:.6g} ({strategy.text}); baseline threshold {baseline.threshold:.6g}; "
             f"run written to {out}")
    return read_run(out)


# --------------------------------------------------------------------------- checks


def _check_config(cfg: TrainConfig) -> None:
    checks = [
        (cfg.window >= 2, "window", "--window must be at least 2"),
        (cfg.hop >= 1, "hop", "--hop must be at least 1"),
        (cfg.epochs >= 1, "epochs", "--epochs must be at least 1"),
        (cfg.batch_size >= 1, "batch-size", "--batch-size must be at least 1"),
        (cfg.lr_schedule in ("plateau", "constant"), "lr-schedule",
         f"--lr-schedule must be plateau or constant, not {cfg.lr_schedule!r}"),
        (cfg.windows_per_epoch is None or cfg.windows_per_epoch >= 1, "windows-per-epoch",
         "--windows-per-epoch must be at least 1"),
        (cfg.patience >= 0, "patience", "--patience must not be negative"),
        (0.0 < cfg.validation_fraction < 1.0, "validation-fraction", "--validation-fraction must be in (0, 1)"),
        (cfg.model in ("lstm", "dense", "aer"), "model", f"--model must be lstm, dense or aer, not {cfg.model!r}"),
        (cfg.model != "aer" or cfg.window >= 4, "window", "--model aer needs --window of at least 4"),
        (cfg.loss in ("mse", "mae"), "loss", f"--loss must be mse or mae, not {cfg.loss!r}"),
        (cfg.score in ("mse", "mae"), "score", f"--score must be mse or mae, not {cfg.score!r}"),
        (cfg.scaler in ("minmax", "standard", "robust"), "scaler",
         f"--scaler must be minmax, standard or robust, not {cfg.scaler!r}"),
        (cfg.clip is None or (np.isfinite(cfg.clip) and cfg.clip >= 0), "clip", "--clip must be a number >= 0"),
        (len(cfg.units) >= 1 and all(u >= 1 for u in cfg.units), "units", "--units must be positive integers"),
        (cfg.smoothing is None or 0.0 < cfg.smoothing <= 1.0, "smoothing", "--smoothing alpha must be in (0, 1]"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise VigilInputError(message, key=key)


def _check_weights(cfg: TrainConfig, table: Table) -> None:
    if cfg.weights is None:
        return
    w = np.asarray(cfg.weights, dtype=np.float64)
    if w.shape != (table.values.shape[1],) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise VigilInputError(f"--weights needs {table.values.shape[1]} non-negative numbers, not all zero "
                              f"(one per feature: {', '.join(table.names)})", key="weights")


def _window_spec(cfg: TrainConfig, table: Table, fit_rows: np.ndarray) -> tuple[WindowSpec, dict[str, Any] | None]:
    """The requested window, or a shorter one (and a note) when the slice is too short for it."""
    window, hop, note = choose_window(cfg.window, cfg.hop, table.n_rows, cfg.validation_fraction,
                                      MIN_HELDOUT_WINDOWS, lambda: fit_rows)
    if note is not None:
        why = (f"the data's dominant period is about {note['dominant_period']} rows"
               if note["dominant_period"] else "no dominant period found, so the largest that fits")
        shorter_hop = f" and hop {hop} (not {cfg.hop})" if hop != cfg.hop else ""
        cfg.echo(f"note: {table.n_rows} training rows are too few for window {cfg.window}; using window "
                 f"{window}{shorter_hop} ({why}; at most {note['largest_possible']} fits)")
    return WindowSpec(window, hop), note


def _check_split(cfg: TrainConfig, table: Table, spec: WindowSpec, n_fit: int, n_held: int) -> None:
    need_held = spec.window + (MIN_HELDOUT_WINDOWS - 1) * spec.hop
    if spec.count(n_fit) < 2 or n_held < need_held:
        need = int(np.ceil(max(need_held / cfg.validation_fraction,
                               (spec.window + spec.hop) / (1 - cfg.validation_fraction))))
        smallest = ""
        if spec.window > MIN_AUTO_WINDOW:  # the automatic choice goes down to this window at hop 1
            least = int(np.ceil(max((MIN_AUTO_WINDOW + MIN_HELDOUT_WINDOWS - 1) / cfg.validation_fraction,
                                    (MIN_AUTO_WINDOW + 1) / (1 - cfg.validation_fraction))))
            smallest = f"; the shortest automatic window ({MIN_AUTO_WINDOW} rows, hop 1) needs {least}"
        raise VigilInputError(f"has {table.n_rows} training rows; window {spec.window} with validation fraction "
                              f"{cfg.validation_fraction:g} needs at least {need} (a fitted part and "
                              f"{MIN_HELDOUT_WINDOWS} held-out windows){smallest}", file=str(cfg.data))


def _prepare_out(out: Path) -> Path:
    """Refuse to write into a file or a foreign non-empty directory; a previous run is replaced."""
    if out.exists() and not out.is_dir():
        raise VigilInputError("--out exists and is not a directory", file=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_JSON).is_file():
        raise VigilInputError("--out is a non-empty directory that is not a vigil run; choose another",
                              file=str(out))
    return out


# --------------------------------------------------------------------------- fitting


def _fit_model(cfg: TrainConfig, spec: WindowSpec, fit_windows: np.ndarray,
               held_windows: np.ndarray) -> tuple[Any, dict[str, list[float]]]:
    if cfg.model == "aer":  # a different network and loss: trainer.aer_model
        from trainer.aer_model import fit_aer

        return fit_aer(cfg, fit_windows, held_windows)
    from trainer.training import fit_autoencoder

    model, history = fit_autoencoder(fit_settings(cfg), fit_windows, held_windows, cfg.echo)
    if cfg.patience == 0 and history["val_loss"]:
        cfg.echo("note: --patience 0 disables early stopping; the last epoch's weights are kept")
    return model, history


def _shape_scale(model: Any) -> list[float] | None:
    from trainer.model import shape_scale_of

    return shape_scale_of(model)


def fit_settings(cfg: TrainConfig) -> Any:
    """The ``trainer.training.FitSettings`` of a config."""
    return FitSettings(model=cfg.model, units=tuple(cfg.units), loss=cfg.loss, center=cfg.center, epochs=cfg.epochs,
                       batch_size=cfg.batch_size, patience=cfg.patience, learning_rate=cfg.learning_rate,
                       lr_schedule=cfg.lr_schedule, shape_scale=cfg.shape_scale, clipnorm=cfg.clipnorm,
                       windows_per_epoch=cfg.windows_per_epoch, min_improvement=cfg.min_improvement)


def _skill_recon(cfg: TrainConfig, model: Any, held_windows: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """What the skill ratio compares: an AER model's output carries the score's gain, its raw prediction does not."""
    if cfg.model != "aer":
        return recon
    from trainer.aer_model import predict_raw

    return predict_raw(model, held_windows)


def _report_skill(cfg: TrainConfig, spec: WindowSpec, held_windows: np.ndarray, recon: np.ndarray,
                  history: dict[str, list[float]], fit_rows: np.ndarray) -> float | None:
    ratio = skill_ratio(held_windows, recon, cfg.score, cfg.weights)
    if not np.isfinite(ratio):
        cfg.echo("skill ratio: n/a (the held-out windows are flat: nothing to reconstruct beyond their level)")
        return None
    cfg.echo(f"skill ratio {ratio:.3f} (held-out error / error of repeating each window's mean; lower is better)")
    val = history["val_loss"]
    best = int(np.argmin(val)) + 1 if val and cfg.patience > 0 else len(val)
    warning = skill_warning(ratio, best, len(val), spec.window, dominant_period(fit_rows),
                            deviation_autocorrelation(held_windows))
    if warning:
        cfg.echo(warning)
    return ratio


def _threshold(cfg: TrainConfig, strategy: ThresholdStrategy, budget: FalseAlarmBudget | None, table: Table,
               spec: WindowSpec, held_scores: np.ndarray, labeled: Labeled | None,
               row_scorer: Callable[[np.ndarray], np.ndarray]) -> tuple[float, dict[str, Any]]:
    """Threshold value and the params recorded in run.json."""
    if labeled is not None:
        values, ranges, params = labeled
        value, achieved = labeled_threshold(row_scorer(values), ranges, strategy)
        return value, {**params, **achieved}
    if budget is not None:
        value, params, notes = calibrate_threshold(held_scores, budget, table.sampling_rate_hz, spec.hop)
        for note in notes:
            cfg.echo(f"note: {note}")
        cfg.echo(f"false-alarm budget {budget.text}: {params['q_risk']:.3g} per window, {expected_rate_text(params)} "
                 f"({params['pot']['method']}); {params['heldout_exceedance']:.2%} of held-out windows above")
    else:
        value, params = normal_threshold(held_scores, strategy), {**strategy.params, "from": "held-out normal windows"}
    floor = MIN_THRESHOLD[cfg.score]
    if value < floor:
        cfg.echo(f"note: the held-out scores are all tiny (threshold {value:.3g}); the threshold is raised to "
                 f"{floor:g}, below which a score is float32 reconstruction noise")
        params = {**params, "raised_to_floor": floor, "computed": float(value)}
        value = floor
    return float(value), params


def _fit_baseline(cfg: TrainConfig, strategy: ThresholdStrategy, budget: FalseAlarmBudget | None, table: Table,
                  fit_rows: np.ndarray, heldout_rows: np.ndarray, labeled: Labeled | None, scaler: Scaler,
                  spec: WindowSpec) -> IsolationForestBaseline:
    base = IsolationForestBaseline(cfg.baseline_estimators, smoothing_alpha=cfg.smoothing)
    base.fit(fit_rows, scaler, spec, cfg.seed)
    base.threshold_strategy = strategy.text
    if labeled is not None:
        from edge_agent.core import row_scores_from_windows

        values, ranges, _ = labeled
        rows = row_scores_from_windows(base.window_scores(values), len(values), spec)
        base.threshold = labeled_threshold(rows, ranges, strategy)[0]
    elif budget is not None:
        base.threshold = calibrate_threshold(base.window_scores(heldout_rows), budget, table.sampling_rate_hz,
                                             spec.hop)[0]
    else:
        base.threshold = normal_threshold(base.window_scores(heldout_rows), strategy)
    return base


def _plot(out: Path, history: dict[str, list[float]], cfg: TrainConfig, spec: WindowSpec) -> None:
    from trainer.plots_train import plot_loss

    plot_loss(history, out / "loss.png", title=f"{cfg.model} autoencoder, window {spec.window}")
