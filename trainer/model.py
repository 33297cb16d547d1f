"""Autoencoder architectures.

The classic LSTM autoencoder: stacked LSTM encoder -> RepeatVector -> stacked
LSTM decoder -> TimeDistributed Dense. The default units (32, 16) keep a model
around 20k parameters, small enough for a Pi-class CPU. A Dense autoencoder is
offered for long windows, where an LSTM's per-step cost adds up.

``center=True`` (the default of ``vigil train``) wraps either kind in a level
pass-through: the network sees each window minus its own per-feature mean and
the mean is added back to its output. Without it the code has to carry the
window's level too, and on slow or drifting signals the level error swamps
everything (held-out error 1.1-45x that of simply repeating the window's mean,
benchmarks/notes/skill.md). With it the model starts at the trivial
reconstruction and can only learn shape on top. A level shift is then seen at
the step (an unusual shape), not for as long as the new level lasts.

``shape_scale`` (per feature, set by the trainer from the fitted windows)
divides the centred window by the typical size of its deviations and
multiplies the output back, so the network always learns deviations of about
unit size. Without it a slow or spiky signal whose in-window deviations are a
few percent of its scaled range leaves targets of ~0.01 that Adam's steps
(~lr per weight) jitter around: the model stalls at "the window's mean"
(skill ratio ~1, benchmarks/notes/skill.md). The scale is two fixed diagonal
Dense layers, saved with the model and exported to TFLite like the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.keras_backend import keras

MODEL_KINDS = ("lstm", "dense")
LATENT_LAYER = "latent"
MEAN_LAYER = "window_mean"
SCALE_IN_LAYER = "shape_scale_in"
SCALE_OUT_LAYER = "shape_scale_out"


def build_autoencoder(
    kind: str,
    window: int,
    n_features: int,
    units: Sequence[int] = (32, 16),
    loss: str = "mse",
    learning_rate: float = 1e-3,
    batch_size: int | None = None,
    center: bool = False,
    shape_scale: Sequence[float] | None = None,
    clipnorm: float | None = None,
) -> Any:
    """Compiled autoencoder ``[batch, window, features] -> same shape``.

    ``batch_size`` fixes the batch dimension (1 for TFLite export); ``None``
    leaves it free for training. ``center`` adds the level pass-through;
    ``shape_scale`` (only with ``center``) the fixed per-feature deviation scale.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    k = keras()
    inputs = k.Input(shape=(window, n_features), batch_size=batch_size, name="window")
    body = _lstm if kind == "lstm" else _dense
    if center:
        mean = k.layers.RepeatVector(window, name="mean_repeat")(
            k.layers.GlobalAveragePooling1D(name=MEAN_LAYER)(inputs))
        centered = k.layers.Subtract(name="centered")([inputs, mean])
        if shape_scale is not None:
            centered = _diagonal(centered, SCALE_IN_LAYER, 1.0 / np.asarray(shape_scale, dtype=np.float64))
        shape = body(centered, window, n_features, units)
        if shape_scale is not None:
            shape = _diagonal(shape, SCALE_OUT_LAYER, np.asarray(shape_scale, dtype=np.float64))
        outputs = k.layers.Add(name="reconstruction_level")([shape, mean])
    else:
        outputs = body(inputs, window, n_features, units)
    model = k.Model(inputs, outputs, name=f"{kind}_autoencoder")
    model.compile(optimizer=k.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm), loss=loss)
    return model


def _diagonal(x: Any, name: str, factors: np.ndarray) -> Any:
    """``x * factors`` per feature as a frozen diagonal Dense layer (serialisable, TFLite-exportable)."""
    layer = keras().layers.Dense(len(factors), use_bias=False, trainable=False, name=name)
    y = layer(x)
    layer.set_weights([np.diag(factors).astype(np.float32)])
    return y


def shape_scale_of(model: Any) -> list[float] | None:
    """The model's per-feature deviation scale, or None when it has none."""
    names = {layer.name for layer in model.layers}
    if SCALE_OUT_LAYER not in names:
        return None
    return [float(v) for v in np.diag(model.get_layer(SCALE_OUT_LAYER).get_weights()[0])]


def _lstm(x: Any, window: int, n_features: int, units: Sequence[int]) -> Any:
    layers = keras().layers
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = layers.LSTM(u, return_sequences=not last, name=LATENT_LAYER if last else f"enc_{i}")(x)
    x = layers.RepeatVector(window, name="repeat")(x)
    for i, u in enumerate(reversed(units)):
        x = layers.LSTM(u, return_sequences=True, name=f"dec_{i}")(x)
    return layers.TimeDistributed(layers.Dense(n_features), name="reconstruction")(x)


def _dense(x: Any, window: int, n_features: int, units: Sequence[int]) -> Any:
    layers = keras().layers
    x = layers.Flatten(name="flatten")(x)
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = layers.Dense(u, activation="relu", name=LATENT_LAYER if last else f"enc_{i}")(x)
    for i, u in enumerate(reversed(units[:-1])):
        x = layers.Dense(u, activation="relu", name=f"dec_{i}")(x)
    x = layers.Dense(window * n_features, name="dec_out")(x)
    return layers.Reshape((window, n_features), name="reconstruction")(x)


def latent_model(model: Any) -> Any:
    """Sub-model mapping a window to its latent code (for the 2-D map plot)."""
    k = keras()
    return k.Model(model.inputs, model.get_layer(LATENT_LAYER).output)


def with_batch_size(model: Any, batch_size: int = 1) -> Any:
    """Rebuild ``model`` with a fixed batch dimension and copy its weights."""
    kind = "lstm" if model.name == "lstm_autoencoder" else "dense"
    _, window, n_features = model.input_shape
    units = [layer.units for layer in model.layers if layer.name.startswith("enc_") or layer.name == LATENT_LAYER]
    centered = any(layer.name == MEAN_LAYER for layer in model.layers)
    fixed = build_autoencoder(kind, window, n_features, units, batch_size=batch_size, center=centered,
                              shape_scale=shape_scale_of(model))
    fixed.set_weights(model.get_weights())
    return fixed
