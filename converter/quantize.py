"""Quantization modes: how each one is asked of the TFLite converter, and its parity bar.

``float32``       plain conversion, the reference.
``float16``       weights stored as float16, dequantized once when the
                  interpreter prepares; float compute.
``dynamic``       TensorFlow's dynamic-range quantization: int8 weights (only
                  tensors of more than 1024 elements) run by hybrid kernels;
                  on 32-unit models nothing qualifies and it equals float32.
``int8``          full-integer quantization with a representative data set of
                  normal windows (int8 activations; the integer LSTM kernel
                  keeps its cell state in int16). Float input and output.
``int8-weights``  vigil's weight-only route: every LSTM / fully-connected
                  weight matrix stored as symmetric int8 (one scale per
                  matrix) or, for the matrices the score is most sensitive
                  to, float16 (``mixed.py``), behind DEQUANTIZE ops that run
                  on constants; float32 compute, so float32's latency at no
                  more than half its size.

Why these and not others, with the figures, is in ``converter/QUANTIZATION.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT32 = "float32"
FLOAT16 = "float16"
DYNAMIC = "dynamic"
INT8 = "int8"
INT8_WEIGHTS = "int8-weights"
MODES = (FLOAT32, FLOAT16, DYNAMIC, INT8, INT8_WEIGHTS)
AUTO = "auto"
MODE_DESCRIPTIONS = {
    FLOAT32: "float32 weights and compute (reference)",
    FLOAT16: "float16 weights, dequantized once at load; float32 compute",
    DYNAMIC: "dynamic-range: int8 weights of large tensors, hybrid int8/float kernels",
    INT8: "full integer: int8 weights and activations (calibrated), float input/output",
    INT8_WEIGHTS: "weight-only storage: int8 (per-tensor symmetric), float16 for the most score-sensitive "
    "matrices, behind DEQUANTIZE; float32 compute",
}


@dataclass(frozen=True)
class ParityLimits:
    """What a mode must reach to pass parity (per parity set)."""

    min_spearman: float
    max_flipped: float

    def to_dict(self) -> dict[str, float]:
        return {"min_spearman": self.min_spearman, "max_flipped": self.max_flipped}


FLOAT_LIMITS = ParityLimits(min_spearman=0.999, max_flipped=0.001)
QUANTIZED_LIMITS = ParityLimits(min_spearman=0.99, max_flipped=0.01)


def parity_limits(mode: str) -> ParityLimits:
    return FLOAT_LIMITS if mode in (FLOAT32, FLOAT16) else QUANTIZED_LIMITS


def needs_calibration(mode: str) -> bool:
    return mode == INT8


def representative_dataset(windows: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration generator: one scaled window per step, batch 1 like the model."""
    data = np.ascontiguousarray(windows, dtype=np.float32)

    def generate() -> Iterator[list[np.ndarray]]:
        for window in data:
            yield [window[None]]

    return generate


def configure(converter: Any, mode: str, calibration: np.ndarray | None) -> None:
    """Set a ``tf.lite.TFLiteConverter`` up for ``mode`` (builtin ops only)."""
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode in (FLOAT32, INT8_WEIGHTS):
        return  # int8-weights is a pass over the float32 flatbuffer (weight_quant.py)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    elif mode == INT8:
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 needs calibration windows")
        converter.representative_dataset = representative_dataset(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif mode != DYNAMIC:
        raise ValueError(f"unknown quantization mode {mode!r}; use one of {', '.join(MODES)}")
