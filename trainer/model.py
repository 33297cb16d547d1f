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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.keras_backend import keras

MODEL_KINDS = ("lstm", "dense")
LATENT_LAYER = "latent"
MEAN_LAYER = "window_mean"


def build_autoencoder(
    kind: str,
    window: int,
    n_features: int,
    units: Sequence[int] = (32, 16),
    loss: str = "mse",
    learning_rate: float = 1e-3,
    batch_size: int | None = None,
    center: bool = False,
) -> Any:
    """Compiled autoencoder ``[batch, window, features] -> same shape``.

    ``batch_size`` fixes the batch dimension (1 for TFLite export); ``None``
    leaves it free for training. ``center`` adds the level pass-through.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    k = keras()
    inputs = k.Input(shape=(window, n_features), batch_size=batch_size, name="window")
    body = _lstm if kind == "lstm" else _dense
    if center:
        mean = k.layers.RepeatVector(window, name="mean_repeat")(
            k.layers.GlobalAveragePooling1D(name=MEAN_LAYER)(inputs))
        shape = body(k.layers.Subtract(name="centered")([inputs, mean]), window, n_features, units)
        outputs = k.layers.Add(name="reconstruction_level")([shape, mean])
    else:
        outputs = body(inputs, window, n_features, units)
    model = k.Model(inputs, outputs, name=f"{kind}_autoencoder")
    model.compile(optimizer=k.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    return model


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
    fixed = build_autoencoder(kind, window, n_features, units, batch_size=batch_size, center=centered)
    fixed.set_weights(model.get_weights())
    return fixed
