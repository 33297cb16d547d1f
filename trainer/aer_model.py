"""AER model option (``vigil train --model aer``): an LSTM autoencoder that also regresses.

Wong et al., 2022, "AER: Auto-Encoder with Regression for Time Series Anomaly
Detection", in the causal arrangement of ``edge_agent.core.aer``: the network
sees the window's inner rows, reconstructs them and regresses the first row
(backward) and the last row (forward). One decoder emits all ``W`` rows (as in
Orion's AER, whose decoder emits the window plus its two neighbours), so the
model's prediction has the window's shape: ``[backward, inner..., forward]``.

Training minimises Orion's loss, ``0.5 * regression mse + 0.5 *
reconstruction mse`` (``reg_ratio`` 0.5). After training the two parts'
typical errors on the held-out windows become the scales of the AER score and
are frozen into the saved model: its output is ``input - gain * (input -
prediction)`` with the per-row gain of ``edge_agent.core.aer.residual_gain``,
so every existing scoring path (Keras scoring, the converter's parity check,
the device's ``Scorer``, the pipeline's per-row errors) computes the combined
AER score without knowing it is one. The gain is a ``Normalization`` layer with
fixed constants: a built-in layer (no custom objects to load) that TFLite
lowers to SUB + MUL next to the fused UNIDIRECTIONAL_SEQUENCE_LSTM ops.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from edge_agent.core.aer import DEFAULT_LAMBDA_REC, part_errors, residual_gain, row_errors, row_factors
from trainer.keras_backend import keras


class AerFitConfig(Protocol):
    """What :func:`fit_aer` reads of ``trainer.fit.TrainConfig`` (a protocol: no import back into fit)."""

    units: Sequence[int]
    loss: str
    learning_rate: float
    center: bool
    epochs: int
    batch_size: int
    patience: int
    score: str
    weights: Any
    echo: Callable[[str], None]

LATENT_LAYER = "latent"  # the encoder's last layer, as in trainer.model (the latent-map plot reads it)
MEAN_LAYER = "window_mean"
PREDICTION_LAYER = "prediction"
GAIN_LAYER = "aer_gain"
MODEL_NAME = "aer"
# Held-out error scales below these are float32 noise (a constant training set): floor them.
MIN_SCALE = {"mse": 1e-6, "mae": 1e-3}
_SECTIONS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def build_aer(window: int, n_features: int, units: Sequence[int] = (32, 16), loss: str = "mse",
              learning_rate: float = 1e-3, batch_size: int | None = None, center: bool = True,
              gain: Sequence[float] | np.ndarray | None = None) -> Any:
    """Compiled AER model ``[batch, window, features] -> same shape`` (``input - gain * residual``).

    ``gain`` (per row, ``[window]``) defaults to the training gain of Orion's
    equal-weight loss for ``loss``; :func:`finalize_aer` swaps in the score's.
    """
    k = keras()
    layers = k.layers
    if gain is None:
        gain = residual_gain(row_factors(window, DEFAULT_LAMBDA_REC), loss)
    inputs = k.Input(shape=(window, n_features), batch_size=batch_size, name="window")
    inner = layers.Cropping1D((1, 1), name="inner_rows")(inputs)
    x = inner
    mean = None
    if center:  # the level pass-through of trainer.model, with the level of the rows the model sees
        mean = layers.GlobalAveragePooling1D(name=MEAN_LAYER)(inner)
        x = layers.Subtract(name="centered")([inner, layers.RepeatVector(window - 2, name="mean_inner")(mean)])
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = layers.LSTM(u, return_sequences=not last, name=LATENT_LAYER if last else f"enc_{i}")(x)
    x = layers.RepeatVector(window, name="repeat")(x)
    for i, u in enumerate(reversed(units)):
        x = layers.LSTM(u, return_sequences=True, name=f"dec_{i}")(x)
    prediction = layers.TimeDistributed(layers.Dense(n_features), name="shape")(x)
    if mean is not None:
        prediction = layers.Add(name=PREDICTION_LAYER)(
            [prediction, layers.RepeatVector(window, name="mean_repeat")(mean)])
    else:
        prediction = layers.Activation("linear", name=PREDICTION_LAYER)(prediction)
    residual = layers.Subtract(name="residual")([inputs, prediction])
    g = np.asarray(gain, dtype=np.float64)
    # Normalization computes (x - mean) / sqrt(variance): variance 1 / gain^2 multiplies by the gain.
    variance = np.repeat((1.0 / np.maximum(g, 1e-12) ** 2)[:, None], n_features, axis=1)
    weighted = layers.Normalization(axis=(1, 2), mean=np.zeros((window, n_features)), variance=variance,
                                    name=GAIN_LAYER)(residual)
    outputs = layers.Subtract(name="aer_output")([inputs, weighted])
    model = k.Model(inputs, outputs, name=MODEL_NAME)
    model.compile(optimizer=k.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    return model


def prediction_model(model: Any) -> Any:
    """Sub-model emitting the raw prediction ``[backward, inner reconstruction..., forward]``."""
    return keras().Model(model.inputs, model.get_layer(PREDICTION_LAYER).output)


def predict_raw(model: Any, windows: np.ndarray) -> np.ndarray:
    """Raw predictions of scaled windows (for the skill ratio and the scales)."""
    from trainer.keras_scoring import predict_windows

    return predict_windows(prediction_model(model), windows)


def finalize_aer(model: Any, held_windows: np.ndarray, fn: str, weights: list[float] | None,
                 lambda_rec: float = DEFAULT_LAMBDA_REC) -> tuple[Any, dict[str, Any]]:
    """The trained model with the score's gain frozen in, and the ``aer`` section of run.json."""
    _, window, n_features = model.input_shape
    steps = row_errors(held_windows, predict_raw(model, held_windows), fn)
    rec, reg = part_errors(steps, weights)
    floor = MIN_SCALE[fn]
    rec_scale = max(float(np.mean(rec)), floor) if len(rec) else 1.0
    reg_scale = max(float(np.mean(reg)), floor) if len(reg) else 1.0
    gain = residual_gain(row_factors(window, lambda_rec, rec_scale, reg_scale), fn)
    units = [layer.units for layer in model.layers if layer.name.startswith("enc_") or layer.name == LATENT_LAYER]
    centered = any(layer.name == MEAN_LAYER for layer in model.layers)
    final = build_aer(window, n_features, units, fn, batch_size=None, center=centered, gain=gain)
    final.set_weights(model.get_weights())
    section = {"lambda_rec": lambda_rec, "reconstruction_scale": rec_scale, "regression_scale": reg_scale,
               "regressed_rows": [0, int(window) - 1], "score_function": fn,
               "heldout": {"reconstruction_mean": float(np.mean(rec)) if len(rec) else None,
                           "regression_mean": float(np.mean(reg)) if len(reg) else None}}
    return final, section


def fit_aer(cfg: AerFitConfig, fit_windows: np.ndarray,
            held_windows: np.ndarray) -> tuple[Any, dict[str, list[float]]]:
    """Train on ``fit_windows`` (early stopping on ``held_windows``), then :func:`finalize_aer`.

    Returns what ``trainer.fit`` expects of a fit (model, history); the
    scales are kept for :func:`aer_section`.
    """
    from trainer.progress import progress_callback

    k = keras()
    window, n_features = int(fit_windows.shape[1]), int(fit_windows.shape[2])
    cfg.echo("building model ...")
    model = build_aer(window, n_features, cfg.units, cfg.loss, cfg.learning_rate, center=cfg.center)
    steps = int(np.ceil(len(fit_windows) / cfg.batch_size))
    progress = progress_callback(k, cfg.epochs, steps, cfg.echo)
    callbacks = [progress]
    if cfg.patience > 0:
        callbacks.append(k.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                   restore_best_weights=True))
    try:
        result = model.fit(fit_windows, fit_windows, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
                           validation_data=(held_windows, held_windows), callbacks=callbacks, verbose=0)
    finally:
        close = getattr(progress, "close", None)
        if close is not None:  # a failed fit must not leave a progress heartbeat printing
            close()
    history = {key: [float(v) for v in result.history.get(key, [])] for key in ("loss", "val_loss")}
    final, section = finalize_aer(model, held_windows, cfg.score, cfg.weights)
    cfg.echo(f"AER scales on the held-out windows: reconstruction {section['reconstruction_scale']:.3g}, "
             f"regression {section['regression_scale']:.3g} (each part counts half of the score)")
    _SECTIONS[final] = section
    return final, history


def aer_section(model: Any) -> dict[str, Any]:
    """run.json's ``model.aer`` section of a model :func:`fit_aer` returned."""
    return dict(_SECTIONS[model])
