"""Fit the autoencoder on normal rows and write a run directory.

The training rows (``--train-rows``) are split in time: the first
``1 - validation_fraction`` are the *fitted* rows (the scaler and the model
see only these), the held-out tail is used for early stopping and for the
threshold. Thresholds computed on fitted windows would be too low, because
the model reconstructs what it was trained on better than new normal data.

Why the defaults (window 128, hop 4, Adam 3e-3, mean + 3 std, no smoothing):
measured on the ECG record chfdb_chf01_275 (train rows 0:1833, 1.6 heart beats
held out). With 64- or 96-row windows the per-beat score spikes of *normal*
test beats reached 1.6-2.5x a mean+3std threshold, and how far depended on the
seed (k from 3 to 9 was needed); longer training made it worse (the threshold
tightens faster than new beats are learned). 128-row windows average those
spikes: every k in about [1.75, 18] gave recall 1 with no false event for
seeds 0-2, at hop 2 and hop 4. Hop 4 quarters training and device compute
(~0.5 s per epoch here, ~25-30 epochs) and delays an alarm by at most 3 rows.
Adam at 3e-3 reaches a lower validation loss than 1e-3 in fewer epochs (25-30
versus ~38; both pass); 1e-2 collapsed to reconstructing the mean. Caveat: at
these sizes the 32/16 LSTM reconstructs little more than each window's level
and slow shape, so on the ECG the score acts largely as the window's deviation
from a smooth curve (whether larger --units learn more shape was not measured).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_agent.core import Scaler, WindowSpec, ewma, sliding_windows
from edge_agent.errors import VigilInputError
from edge_agent.readers import Table, load_table
from trainer.baseline import IsolationForestBaseline
from trainer.keras_scoring import keras_window_scores, score_rows
from trainer.rundir import RUN_JSON, RunInfo, read_run, write_run
from trainer.threshold import ThresholdStrategy, error_stats, labeled_threshold, normal_threshold, parse_strategy

MIN_HELDOUT_WINDOWS = 8


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
    model: str = "lstm"
    units: tuple[int, ...] = (32, 16)
    loss: str = "mse"
    epochs: int = 50
    batch_size: int = 64
    patience: int = 5
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2
    scaler: str = "minmax"
    threshold: str = "mean+k*std"
    k: float = 3.0
    labels: str | Path | None = None
    label_rows: tuple[int | None, int | None] | None = None
    channel: str | None = None
    series: str | None = None
    smoothing: float | None = None
    score: str = "mse"
    weights: list[float] | None = None
    seed: int = 0
    baseline_estimators: int = 100
    echo: Callable[[str], None] = field(default=print, repr=False)


def split_train_rows(rows: np.ndarray, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, held-out tail): the pinned split the converter's parity repeats."""
    n_heldout = int(round(len(rows) * validation_fraction))
    return rows[: len(rows) - n_heldout], rows[len(rows) - n_heldout :]


def run_train(cfg: TrainConfig) -> RunInfo:
    """Load, fit, set the threshold, fit the baseline, write ``cfg.out``; return the run."""
    from trainer.keras_backend import set_seed

    _check_config(cfg)
    strategy = parse_strategy(cfg.threshold, cfg.k)
    out = _prepare_out(Path(cfg.out))
    table = load_table(cfg.data, cfg.columns, cfg.train_rows, cfg.timestamp_column, min_rows=cfg.window)
    spec = WindowSpec(cfg.window, cfg.hop)
    _check_weights(cfg, table)
    fit_rows, heldout_rows = split_train_rows(table.values, cfg.validation_fraction)
    _check_split(cfg, table, spec, len(fit_rows), len(heldout_rows))
    labeled = _labeled_rows(cfg, strategy)  # before training: bad labels should not cost a fit

    set_seed(cfg.seed)
    scaler = Scaler.fit(fit_rows, cfg.scaler)
    fit_windows = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    held_windows = np.ascontiguousarray(sliding_windows(scaler.transform(heldout_rows), spec))
    cfg.echo(f"training on {len(fit_windows)} windows ({len(fit_rows)} rows x {table.values.shape[1]} "
             f"features), validating on {len(held_windows)} held-out windows ({len(heldout_rows)} rows)")
    model, history = _fit_model(cfg, fit_windows, held_windows)

    raw, _ = keras_window_scores(model, held_windows, cfg.score, cfg.weights)
    if not np.isfinite(raw).all():
        raise VigilInputError(f"training diverged (non-finite reconstruction errors); try a lower --learning-rate "
                              f"than {cfg.learning_rate:g} or --scaler standard", file=str(cfg.data))
    held_scores = ewma(raw, cfg.smoothing)
    threshold, t_params = _threshold(strategy, held_scores, labeled, lambda v: score_rows(
        model, v, scaler, spec, cfg.score, cfg.weights, cfg.smoothing).row_scores)
    baseline = _fit_baseline(cfg, strategy, fit_rows, heldout_rows, labeled, scaler, spec)

    meta = _meta(cfg, table, spec, scaler, strategy, threshold, t_params, history, baseline,
                 len(fit_windows), len(held_windows), error_stats(held_scores), len(fit_rows))
    write_run(out, meta, model, table.values)
    _plot(out, history, cfg)
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
        (cfg.patience >= 0, "patience", "--patience must not be negative"),
        (0.0 < cfg.validation_fraction < 1.0, "validation-fraction", "--validation-fraction must be in (0, 1)"),
        (cfg.model in ("lstm", "dense"), "model", f"--model must be lstm or dense, not {cfg.model!r}"),
        (cfg.loss in ("mse", "mae"), "loss", f"--loss must be mse or mae, not {cfg.loss!r}"),
        (cfg.score in ("mse", "mae"), "score", f"--score must be mse or mae, not {cfg.score!r}"),
        (cfg.scaler in ("minmax", "standard"), "scaler", f"--scaler must be minmax or standard, not {cfg.scaler!r}"),
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


def _check_split(cfg: TrainConfig, table: Table, spec: WindowSpec, n_fit: int, n_held: int) -> None:
    need_held = cfg.window + (MIN_HELDOUT_WINDOWS - 1) * cfg.hop
    if spec.count(n_fit) < 2 or n_held < need_held:
        need = int(np.ceil(max(need_held / cfg.validation_fraction, (cfg.window + cfg.hop) / (1 - cfg.validation_fraction))))
        raise VigilInputError(f"has {table.n_rows} training rows; window {cfg.window} with validation fraction "
                              f"{cfg.validation_fraction:g} needs at least {need} (a fitted part and "
                              f"{MIN_HELDOUT_WINDOWS} held-out windows)", file=str(cfg.data))


def _prepare_out(out: Path) -> Path:
    """Refuse to write into a file or a foreign non-empty directory; a previous run is replaced."""
    if out.exists() and not out.is_dir():
        raise VigilInputError("--out exists and is not a directory", file=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_JSON).is_file():
        raise VigilInputError("--out is a non-empty directory that is not a vigil run; choose another",
                              file=str(out))
    return out


# --------------------------------------------------------------------------- fitting


def _fit_model(cfg: TrainConfig, fit_windows: np.ndarray, held_windows: np.ndarray) -> tuple[Any, dict[str, list[float]]]:
    from trainer.keras_backend import keras
    from trainer.model import build_autoencoder

    k = keras()
    model = build_autoencoder(cfg.model, cfg.window, fit_windows.shape[2], cfg.units, cfg.loss, cfg.learning_rate)
    callbacks = [_progress_callback(k, cfg.epochs, cfg.echo)]
    if cfg.patience > 0:
        callbacks.append(k.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                   restore_best_weights=True))
    result = model.fit(fit_windows, fit_windows, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
                       validation_data=(held_windows, held_windows), callbacks=callbacks, verbose=0)
    history = {key: [float(v) for v in result.history.get(key, [])] for key in ("loss", "val_loss")}
    if cfg.patience == 0 and history["val_loss"]:
        cfg.echo("note: --patience 0 disables early stopping; the last epoch's weights are kept")
    return model, history


def _progress_callback(k: Any, epochs: int, echo: Callable[[str], None]) -> Any:
    class Progress(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        """One line per epoch: the user sees that training moves and whether it still improves."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            echo(f"epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', float('nan')):.5g}  "
                 f"val_loss {logs.get('val_loss', float('nan')):.5g}  ({time.perf_counter() - self._start:.1f} s)")

    return Progress()


Labeled = tuple[np.ndarray, list[tuple[int, int]], dict[str, Any]]  # raw rows, local ranges, run.json params


def _threshold(strategy: ThresholdStrategy, held_scores: np.ndarray, labeled: Labeled | None,
               row_scorer: Callable[[np.ndarray], np.ndarray]) -> tuple[float, dict[str, Any]]:
    """Threshold value and the params recorded in run.json."""
    if labeled is None:
        return normal_threshold(held_scores, strategy), {**strategy.params, "from": "held-out normal windows"}
    values, ranges, params = labeled
    value, achieved = labeled_threshold(row_scorer(values), ranges, strategy)
    return value, {**params, **achieved}


def _labeled_rows(cfg: TrainConfig, strategy: ThresholdStrategy) -> Labeled | None:
    """Raw rows of ``--label-rows`` and their label ranges as indices into those rows."""
    from trainer.labels import load_labels

    if not strategy.needs_labels:
        if cfg.labels is not None:
            cfg.echo(f"note: --labels is only used by --threshold best-f1/pr-balance; ignored for {strategy.text}")
        return None
    if cfg.labels is None:
        raise VigilInputError(f"--threshold {strategy.text} needs --labels FILE (and --label-rows S:E)",
                              key="threshold")
    rows = cfg.label_rows
    if rows is None:  # default: everything after the training rows
        train_end = cfg.train_rows[1] if cfg.train_rows else None
        if train_end is None:
            raise VigilInputError("--label-rows is required when --train-rows does not end before the "
                                  "end of the file", key="label-rows")
        rows = (train_end, None)
    table = load_table(cfg.data, cfg.columns, rows, cfg.timestamp_column, min_rows=cfg.window)
    _check_no_overlap(cfg, table)
    ranges = _load_label_ranges(cfg, table, load_labels)
    local = [(lo - table.row_offset, hi - table.row_offset) for lo, hi in ranges]
    if not local:
        raise VigilInputError(f"no labeled anomaly inside rows {table.row_offset}:{table.row_offset + table.n_rows}; "
                              f"--threshold {strategy.text} needs at least one", file=str(cfg.labels))
    params = {"labels": str(cfg.labels), "label_rows": [table.row_offset, table.row_offset + table.n_rows],
              "from": "labeled validation rows"}
    return table.values, local, params


def _load_label_ranges(cfg: TrainConfig, table: Table, load_labels: Any) -> list[tuple[int, int]]:
    kwargs = dict(n_rows=table.n_rows, timestamps=table.timestamps, row_offset=table.row_offset,
                  channel=cfg.channel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ranges = load_labels(cfg.labels, series=cfg.series, **kwargs)
        except VigilInputError:
            if cfg.series is not None:
                raise
            # A label file with several series: the data path usually names its key.
            ranges = load_labels(cfg.labels, series=str(cfg.data), **kwargs)
    for warning in caught:
        cfg.echo(f"note: {warning.message}")
    return ranges


def _check_no_overlap(cfg: TrainConfig, labeled: Table) -> None:
    start, end = cfg.train_rows if cfg.train_rows else (None, None)
    start = 0 if start is None else start
    end = float("inf") if end is None else end
    if labeled.row_offset < end and labeled.row_offset + labeled.n_rows > start:
        raise VigilInputError("--label-rows overlap --train-rows; the threshold must be chosen on rows the "
                              "model was not trained on", key="label-rows")


def _fit_baseline(cfg: TrainConfig, strategy: ThresholdStrategy, fit_rows: np.ndarray, heldout_rows: np.ndarray,
                  labeled: Labeled | None, scaler: Scaler, spec: WindowSpec) -> IsolationForestBaseline:
    base = IsolationForestBaseline(cfg.baseline_estimators, smoothing_alpha=cfg.smoothing)
    base.fit(fit_rows, scaler, spec, cfg.seed)
    base.threshold_strategy = strategy.text
    if labeled is not None:
        from edge_agent.core import row_scores_from_windows

        values, ranges, _ = labeled
        rows = row_scores_from_windows(base.window_scores(values), len(values), spec)
        base.threshold = labeled_threshold(rows, ranges, strategy)[0]
    else:
        base.threshold = normal_threshold(base.window_scores(heldout_rows), strategy)
    return base


# --------------------------------------------------------------------------- run.json


def _meta(cfg: TrainConfig, table: Table, spec: WindowSpec, scaler: Scaler, strategy: ThresholdStrategy,
          threshold: float, t_params: dict[str, Any], history: dict[str, list[float]],
          baseline: IsolationForestBaseline, n_fit_windows: int, n_held_windows: int,
          stats: dict[str, float], n_fit_rows: int) -> dict[str, Any]:
    val = history["val_loss"]
    # EarlyStopping restores the best epoch's weights; without it (patience 0) the last epoch's stay.
    best_epoch = int(np.argmin(val)) + 1 if val and cfg.patience > 0 else len(history["loss"])
    first = table.row_offset
    return {
        "features": list(table.names),
        "timestamp_column": table.timestamp_column,
        "sampling_rate_hz": table.sampling_rate_hz,
        "window": spec.window,
        "hop": spec.hop,
        "scaler": scaler.to_dict(),
        "score": {"function": cfg.score, "weights": None if cfg.weights is None else [float(w) for w in cfg.weights]},
        "smoothing": {"alpha": cfg.smoothing},
        "threshold": {"value": float(threshold), "strategy": strategy.text, "params": t_params},
        "model": {"kind": cfg.model, "units": [int(u) for u in cfg.units], "loss": cfg.loss},
        "training": {
            "source": str(cfg.data),
            "rows": [first, first + table.n_rows],
            "fit_rows": [first, first + n_fit_rows],
            "heldout_rows": [first + n_fit_rows, first + table.n_rows],
            "epochs": cfg.epochs, "epochs_run": len(history["loss"]), "best_epoch": best_epoch,
            "batch_size": cfg.batch_size, "patience": cfg.patience, "learning_rate": cfg.learning_rate,
            "n_fit_windows": n_fit_windows, "n_heldout_windows": n_held_windows,
            "validation_fraction": cfg.validation_fraction,
            "error_stats": stats,
            "history": history,
        },
        "baseline": baseline.to_dict(),
        "seed": cfg.seed,
        "versions": _versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for key, dist in (("numpy", "numpy"), ("tensorflow", "tensorflow"), ("tf_keras", "tf-keras"),
                      ("sklearn", "scikit-learn"), ("vigil", "vigil-edge")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def _plot(out: Path, history: dict[str, list[float]], cfg: TrainConfig) -> None:
    from trainer.plots_train import plot_loss

    plot_loss(history, out / "loss.png", title=f"{cfg.model} autoencoder, window {cfg.window}")
