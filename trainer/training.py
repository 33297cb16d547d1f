"""Fit the autoencoder: optimiser, learning-rate schedule, early stopping, progress.

One function, :func:`fit_autoencoder`, used by ``trainer.fit`` and by the
benchmarks (``benchmarks/skill.py``, ``benchmarks/train_speed.py``) so that what
is measured is what ``vigil train`` does. Why the defaults: ``trainer.fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LR_SCHEDULES = ("plateau", "constant")
# The shape scale's floor (scaled units): a feature with no in-window deviation in training
# must not be amplified without bound (its departures are still scored: the scale only
# conditions what the network sees).
MIN_SHAPE_SCALE = 1e-4


@dataclass(frozen=True)
class FitSettings:
    """The knobs of one fit; the defaults are ``vigil train``'s (``TrainConfig`` fills them from the CLI)."""

    model: str = "lstm"
    units: tuple[int, ...] = (32, 16)
    loss: str = "mse"
    center: bool = True
    epochs: int = 50
    batch_size: int = 64
    patience: int = 10
    learning_rate: float = 3e-3
    lr_schedule: str = "plateau"
    shape_scale: bool = True
    clipnorm: float | None = None
    windows_per_epoch: int | None = 2048  # None: one pass over the fitted windows per epoch
    min_improvement: float = 0.0  # relative: an epoch counts as better only below best * (1 - this)
    pipeline: str = "tfdata"  # or "arrays" (measured in benchmarks/train_speed.py)


def shape_scale(fit_windows: np.ndarray) -> np.ndarray:
    """Per-feature RMS of the fitted windows around their own means (the deviations the model learns)."""
    w = np.asarray(fit_windows, dtype=np.float64)
    dev = w - w.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(dev**2, axis=(0, 1)))
    return np.maximum(rms, MIN_SHAPE_SCALE)


def fit_autoencoder(settings: FitSettings, fit_windows: np.ndarray, held_windows: np.ndarray,
                    echo: Callable[[str], None] = print,
                    extra_callbacks: list[Any] | None = None) -> tuple[Any, dict[str, list[float]]]:
    """(trained Keras model with the best weights, {"loss": [...], "val_loss": [...], "lr": [...]})."""
    started = time.perf_counter()
    echo("building model ...")  # the graph build and first trace take seconds: say so first
    from trainer.keras_backend import keras
    from trainer.model import build_autoencoder
    from trainer.progress import progress_callback

    k = keras()
    scale = shape_scale(fit_windows) if settings.shape_scale and settings.center else None
    model = build_autoencoder(settings.model, fit_windows.shape[1], fit_windows.shape[2], settings.units,
                              settings.loss, settings.learning_rate, center=settings.center,
                              shape_scale=None if scale is None else scale.tolist(), clipnorm=settings.clipnorm)
    steps = steps_per_epoch(settings, len(fit_windows))
    progress = progress_callback(k, settings.epochs, steps, echo, started)
    callbacks = [progress, *(extra_callbacks or [])]
    if settings.patience > 0:
        callbacks.append(_early_stopping(k, settings.patience, settings.min_improvement))
    if settings.lr_schedule == "plateau":
        # Halve the step when the validation loss stalls: large steps early, fine ones to settle
        # (a constant 3e-3 jitters around the minimum and can jump out of it; see trainer.fit).
        # min_delta 0: Keras' default 1e-4 is absolute, and on series whose validation loss is ~1e-3
        # every epoch's real improvement fell below it, halving the rate every 3 epochs down to the
        # floor by epoch 25 (ECG mitdb__100_180: still improving at epoch 50, skill 0.87).
        callbacks.append(k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, min_delta=0.0,
                                                       patience=max(2, settings.patience // 3),
                                                       min_lr=settings.learning_rate / 32, verbose=0))
    try:
        result = model.fit(epochs=settings.epochs, callbacks=callbacks, verbose=0,
                           **_inputs(settings, fit_windows, held_windows))
    finally:
        progress.close()  # a failed fit must not leave the heartbeat printing
    history = {key: [float(v) for v in result.history[key]] for key in ("loss", "val_loss", "lr")
               if key in result.history}
    return model, history


def _early_stopping(k: Any, patience: int, min_improvement: float) -> Any:
    """Keras early stopping on val_loss whose improvement threshold is relative to the best so far.

    Keras' ``min_delta`` is absolute, but validation losses range over decades between series
    (1e-5 to 1e-1 on the team's data): a relative threshold means the same on all of them.
    """

    class RelativeEarlyStopping(k.callbacks.EarlyStopping):  # type: ignore[misc,name-defined]
        def _is_improvement(self, monitor_value: Any, reference_value: Any) -> bool:
            return bool(monitor_value < reference_value * (1.0 - min_improvement))

    return RelativeEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)


def steps_per_epoch(settings: FitSettings, n_windows: int) -> int:
    """Batches per epoch: one pass, or ``windows_per_epoch`` windows when there are more."""
    n = n_windows if settings.windows_per_epoch is None else min(n_windows, settings.windows_per_epoch)
    return max(1, int(np.ceil(n / settings.batch_size)))


def _inputs(settings: FitSettings, fit_windows: np.ndarray, held_windows: np.ndarray) -> dict[str, Any]:
    """``model.fit`` data arguments: arrays (one pass per epoch), or a tf.data stream.

    The stream reshuffles the fitted windows at every pass and repeats; an epoch is
    ``steps_per_epoch`` batches of it, so with ``windows_per_epoch`` a long series is
    seen in slices (every window still comes round) and early stopping checks the
    validation loss at the same pace whatever the series' length.
    """
    validation = {"validation_data": (held_windows, held_windows), "validation_batch_size": 256}
    if settings.pipeline == "arrays":
        return {"x": fit_windows, "y": fit_windows, "batch_size": settings.batch_size, "shuffle": True, **validation}
    from trainer.keras_backend import tensorflow

    tf = tensorflow()
    stream = (tf.data.Dataset.from_tensor_slices((fit_windows, fit_windows))
              .shuffle(len(fit_windows), reshuffle_each_iteration=True).repeat()
              .batch(settings.batch_size).prefetch(tf.data.AUTOTUNE))
    return {"x": stream, "steps_per_epoch": steps_per_epoch(settings, len(fit_windows)), **validation}
