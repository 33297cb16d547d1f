"""Autoencoder architectures.

The classic LSTM autoencoder: stacked LSTM encoder -> RepeatVector -> stacked
LSTM decoder -> TimeDistributed Dense. The default units (32, 16) keep a model
around 20k parameters, small enough for a Pi-class CPU. A Dense autoencoder is
offered for long windows, where an LSTM's per-step cost adds up.
"""

from __future__ import annotations

from typing import Any, Sequence

from trainer.keras_backend import keras

MODEL_KINDS = ("lstm", "dense")
LATENT_LAYER = "latent"


def build_autoencoder(
    kind: str,
    window: int,
    n_features: int,
    units: Sequence[int] = (32, 16),
    loss: str = "mse",
    learning_rate: float = 1e-3,
    batch_size: int | None = None,
) -> Any:
    """Compiled autoencoder ``[batch, window, features] -> same shape``.

    ``batch_size`` fixes the batch dimension (1 for TFLite export); ``None``
    leaves it free for training.
    """
    if kind == "lstm":
        model = _lstm(window, n_features, units, batch_size)
    elif kind == "dense":
        model = _dense(window, n_features, units, batch_size)
    else:
        raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    k = keras()
    model.compile(optimizer=k.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    return model


def _lstm(window: int, n_features: int, units: Sequence[int], batch_size: int | None) -> Any:
    k = keras()
    layers = k.layers
    inputs = k.Input(shape=(window, n_features), batch_size=batch_size, name="window")
    x = inputs
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = layers.LSTM(u, return_sequences=not last, name=LATENT_LAYER if last else f"enc_{i}")(x)
    x = layers.RepeatVector(window, name="repeat")(x)
    for i, u in enumerate(reversed(units)):
        x = layers.LSTM(u, return_sequences=True, name=f"dec_{i}")(x)
    outputs = layers.TimeDistributed(layers.Dense(n_features), name="reconstruction")(x)
    return k.Model(inputs, outputs, name="lstm_autoencoder")


def _dense(window: int, n_features: int, units: Sequence[int], batch_size: int | None) -> Any:
    k = keras()
    layers = k.layers
    inputs = k.Input(shape=(window, n_features), batch_size=batch_size, name="window")
    x = layers.Flatten(name="flatten")(inputs)
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = layers.Dense(u, activation="relu", name=LATENT_LAYER if last else f"enc_{i}")(x)
    for i, u in enumerate(reversed(units[:-1])):
        x = layers.Dense(u, activation="relu", name=f"dec_{i}")(x)
    x = layers.Dense(window * n_features, name="dec_out")(x)
    outputs = layers.Reshape((window, n_features), name="reconstruction")(x)
    return k.Model(inputs, outputs, name="dense_autoencoder")


def latent_model(model: Any) -> Any:
    """Sub-model mapping a window to its latent code (for the 2-D map plot)."""
    k = keras()
    return k.Model(model.inputs, model.get_layer(LATENT_LAYER).output)


def with_batch_size(model: Any, batch_size: int = 1) -> Any:
    """Rebuild ``model`` with a fixed batch dimension and copy its weights."""
    kind = "lstm" if model.name == "lstm_autoencoder" else "dense"
    _, window, n_features = model.input_shape
    units = [layer.units for layer in model.layers if layer.name.startswith("enc_") or layer.name == LATENT_LAYER]
    fixed = build_autoencoder(kind, window, n_features, units, batch_size=batch_size)
    fixed.set_weights(model.get_weights())
    return fixed
