"""tf_keras autoencoder -> TFLite flatbuffer, one quantization mode at a time.

The model is cloned with batch size 1 (its own config, checked against the
run's recorded ``trainer.rundir.ModelShape``; nothing is parsed from layer
names) and traced once into a concrete function that the converter reuses for every mode.
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
from trainer.rundir import ModelShape

WeightPlanner = Callable[[bytes], tuple[bytes, list[str]]]


@dataclass
class Export:
    mode: str
    model_bytes: bytes
    seconds: float
    notes: list[str] = field(default_factory=list)


class Exporter:
    """Converts one trained model into every requested mode."""

    def __init__(self, model: Any, shape: ModelShape, verbose: bool = False) -> None:
        tf = tensorflow()
        self.window = shape.window
        self.n_features = shape.n_features
        self.verbose = verbose
        self._fixed = batch_one(model, shape)
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
        with quiet(enabled=not self.verbose):
            return bytes(converter.convert())


def batch_one(model: Any, shape: ModelShape) -> Any:
    """``model`` with batch size 1 (what TFLite needs), weights copied.

    The architecture is cloned from the model's own config (so a layer the
    trainer adds, like the level pass-through of ``center``, comes along);
    the run's recorded shape must match the model's input.
    """
    from trainer.keras_backend import keras

    expected = (shape.window, shape.n_features)
    if tuple(int(v) for v in model.input_shape[1:]) != expected:
        raise ValueError(f"model input {list(model.input_shape[1:])} differs from run.json's window/features "
                         f"{list(expected)}")
    k = keras()
    fixed = k.models.clone_model(model, input_tensors=k.Input(shape=expected, batch_size=1, name="window"))
    fixed.set_weights(model.get_weights())
    return fixed


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Any:
    """Silence the converter's chatter ("fully_quantize: 0, ...") and warnings.

    The MLIR converter prints from C++ straight to file descriptors 1 and 2,
    which ``contextlib.redirect_stdout`` cannot catch, so the descriptors
    themselves are pointed at /dev/null for the duration. Conversions run in a
    worker process whose fd 2 is a log file (``converter/isolation.py``);
    faulthandler keeps writing a crash report there, because it was enabled on
    that file before anything was silenced and is re-pointed at it here.
    """
    import faulthandler
    import sys
    import warnings

    if not enabled:
        yield
        return

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
            crash_report = faulthandler.is_enabled()
            try:
                if crash_report:  # a segfault's traceback goes to the real fd 2, not /dev/null
                    faulthandler.enable(file=saved_fds[1], all_threads=True)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                yield
            finally:
                os.dup2(saved_fds[0], 1)
                os.dup2(saved_fds[1], 2)
                if crash_report:
                    faulthandler.enable(file=2, all_threads=True)
                for fd in (*saved_fds, devnull):
                    os.close(fd)
                if saved_level is None:
                    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
                else:
                    os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved_level
