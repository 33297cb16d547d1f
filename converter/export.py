"""tf_keras autoencoder -> TFLite flatbuffer, one quantization mode at a time.

The model is rebuilt with batch size 1 (``trainer.model.with_batch_size``) and
traced once into a concrete function that the converter reuses for every mode.
The function is wrapped in a bare ``tf.Module`` that holds only the variables:
handing the converter the Keras model itself makes it re-trace every layer
for a SavedModel export (~12 s per conversion instead of ~1 s).
tf_keras (not Keras 3) is what makes each LSTM layer a single fused
UNIDIRECTIONAL_SEQUENCE_LSTM op instead of a WHILE loop.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from converter.quantize import INT8_WEIGHTS, configure
from converter.weight_quant import quantize_weights_int8
from trainer.keras_backend import tensorflow
from trainer.model import with_batch_size


@dataclass
class Export:
    mode: str
    model_bytes: bytes
    seconds: float
    notes: list[str] = field(default_factory=list)


class Exporter:
    """Converts one trained model into every requested mode."""

    def __init__(self, model: Any) -> None:
        tf = tensorflow()
        self.window = int(model.input_shape[1])
        self.n_features = int(model.input_shape[2])
        self._fixed = with_batch_size(model, 1)
        holder = tf.Module()
        holder.variables_ = list(self._fixed.variables)
        fixed = self._fixed
        holder.reconstruct = tf.function(
            lambda window: fixed(window, training=False),
            input_signature=[tf.TensorSpec([1, self.window, self.n_features], tf.float32, name="window")],
        )
        self._holder = holder
        self._function = holder.reconstruct.get_concrete_function()
        self._float32: bytes | None = None

    def export(self, mode: str, calibration: np.ndarray | None = None) -> Export:
        """Convert to ``mode``; raises whatever the TFLite converter raises."""
        started = time.perf_counter()
        notes: list[str] = []
        if mode == INT8_WEIGHTS:
            result = quantize_weights_int8(self._convert_float32())
            data = result.model_bytes
            notes.append(
                f"{result.quantized_tensors} weight matrices int8 "
                f"({result.float_bytes} -> {result.int8_bytes} bytes)"
            )
        else:
            data = self._convert(mode, calibration)
        return Export(mode=mode, model_bytes=data, seconds=time.perf_counter() - started, notes=notes)

    def _convert_float32(self) -> bytes:
        if self._float32 is None:
            self._float32 = self._convert("float32", None)
        return self._float32

    def _convert(self, mode: str, calibration: np.ndarray | None) -> bytes:
        tf = tensorflow()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([self._function], self._holder)
        configure(converter, mode, calibration)
        with _quiet():
            return bytes(converter.convert())


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the converter's stdout chatter ("fully_quantize: 0, ...") and warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            saved = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
            try:
                yield
            finally:
                if saved is None:
                    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
                else:
                    os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved
