"""tf_keras autoencoder -> TFLite flatbuffer, one quantization mode at a time.

The model is rebuilt with batch size 1 (``trainer.model.with_batch_size``) and
traced once into a concrete function that the converter reuses for every mode.
The function is wrapped in a bare ``tf.Module`` that holds only the variables:
handing the converter the Keras model itself makes it re-trace every layer
for a SavedModel export (~12 s per conversion instead of ~1 s).
tf_keras (not Keras 3) is what makes each LSTM layer a single fused
UNIDIRECTIONAL_SEQUENCE_LSTM op instead of a WHILE loop. The converter's
default lowering through a temporary SavedModel (~1-2 s per mode) is needed
too: with ``experimental_lower_to_saved_model = False`` the frozen-graph path
is faster but emits WHILE loops again (measured on TF 2.21).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from converter.lstm_clip import unclip_lstm_cells
from converter.quantize import FLOAT32, INT8_WEIGHTS, configure
from converter.weight_quant import quantize_weights_int8
from trainer.keras_backend import tensorflow
from trainer.model import with_batch_size


WeightPlanner = Callable[[bytes], tuple[bytes, list[str]]]


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
        self._float32_unclipped = 0

    def export(
        self, mode: str, calibration: np.ndarray | None = None, weight_planner: WeightPlanner | None = None
    ) -> Export:
        """Convert to ``mode``; raises whatever the TFLite converter raises.

        ``weight_planner`` (int8-weights only) maps the float32 flatbuffer to
        the stored model and its notes; without one every matrix is int8.
        """
        started = time.perf_counter()
        notes: list[str] = []
        if mode == INT8_WEIGHTS:
            if weight_planner is not None:
                data, notes = weight_planner(self.float32_bytes())
            else:
                result = quantize_weights_int8(self.float32_bytes())
                data = result.model_bytes
                notes.append(f"{sum(result.counts.values())} weight matrices int8 "
                             f"({result.float_bytes} -> {result.stored_bytes} bytes)")
            unclipped = self._float32_unclipped
        elif mode == FLOAT32:
            data, unclipped = self.float32_bytes(), self._float32_unclipped
        else:
            data, unclipped = unclip_lstm_cells(self._convert(mode, calibration))
        if unclipped:
            notes.append(f"cell_clip 10 -> none on {unclipped} LSTM ops (Keras does not clip)")
        return Export(mode=mode, model_bytes=data, seconds=time.perf_counter() - started, notes=notes)

    def float32_bytes(self) -> bytes:
        """The float32 flatbuffer, converted once (int8-weights is derived from it)."""
        if self._float32 is None:
            self._float32, self._float32_unclipped = unclip_lstm_cells(self._convert(FLOAT32, None))
        return self._float32

    def _convert(self, mode: str, calibration: np.ndarray | None) -> bytes:
        tf = tensorflow()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([self._function], self._holder)
        configure(converter, mode, calibration)
        with quiet():
            return bytes(converter.convert())


@contextlib.contextmanager
def quiet() -> Any:
    """Silence the converter's chatter ("fully_quantize: 0, ...") and warnings.

    The MLIR converter prints from C++ straight to file descriptors 1 and 2,
    which ``contextlib.redirect_stdout`` cannot catch, so the descriptors
    themselves are pointed at /dev/null for the duration.
    """
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            saved_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
            saved_fds = [os.dup(1), os.dup(2)]
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                yield
            finally:
                os.dup2(saved_fds[0], 1)
                os.dup2(saved_fds[1], 2)
                for fd in (*saved_fds, devnull):
                    os.close(fd)
                if saved_level is None:
                    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
                else:
                    os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved_level
