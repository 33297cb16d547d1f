"""Score windows with a bundle's TFLite model: the device's one scoring path.

The agent, ``vigil score`` and the converter's parity check all score through
:class:`Scorer`, so a number seen on the workstation is the number the device
computes. Only numpy and a TFLite interpreter are imported: ai-edge-litert,
else tflite-runtime (armv7l); never TensorFlow.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import warnings
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.core import WindowScore, score_windows_with_steps
from edge_agent.core.scoring import normalised_weights
from edge_agent.errors import VigilInputError

INTERPRETER_BACKENDS = ("ai_edge_litert", "tflite_runtime")


def load_interpreter_class() -> tuple[type, str]:
    """The first available TFLite ``Interpreter`` class and its backend name."""
    broken: list[str] = []  # installed but failing to import (e.g. tflite-runtime 2.14 under NumPy 2)
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError as exc:
        if getattr(exc, "name", None) != "ai_edge_litert":
            broken.append(f"ai-edge-litert is installed but does not import ({_first_line(exc)})")
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef, unused-ignore]

        return Interpreter, "tflite_runtime"
    except ImportError as exc:
        if getattr(exc, "name", None) != "tflite_runtime":
            broken.append(f"tflite-runtime is installed but does not import ({_first_line(exc)}; tflite-runtime "
                          "2.14 needs NumPy 1)")
    # No tensorflow.lite fallback: the agent must not import TensorFlow. The
    # workstation gets ai-edge-litert with the train extra, so parity checks
    # there run this very interpreter.
    if broken:
        raise VigilInputError("no usable TFLite interpreter: " + "; ".join(broken))
    raise VigilInputError(
        "no TFLite interpreter found: pip install 'vigil-edge[edge]' (ai-edge-litert or tflite-runtime)"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Quant:
    """Affine quantization of one integer tensor: ``real = (q - zero_point) * scale``."""

    def __init__(self, detail: dict[str, Any]) -> None:
        self.dtype = np.dtype(detail["dtype"])
        scale, zero_point = detail["quantization"]
        self.integer = np.issubdtype(self.dtype, np.integer)
        self.scale = np.float32(scale if scale else 1.0)
        self.zero_point = np.float32(zero_point)
        if self.integer:
            info = np.iinfo(self.dtype)
            self.low, self.high = float(info.min), float(info.max)


class Scorer:
    """One interpreter scoring one window at a time, with no state between windows.

    The fused LSTM keeps its hidden and cell state in variable tensors that
    survive ``invoke()``; every window starts from a reset so its score does
    not depend on which windows were scored before it.
    """

    def __init__(self, bundle: Bundle, num_threads: int = 1) -> None:
        interpreter_class, self.backend = load_interpreter_class()
        self.bundle = bundle
        self.num_threads = int(num_threads)
        self._interpreter = _make_interpreter(interpreter_class, bundle, self.num_threads)
        input_detail = self._interpreter.get_input_details()[0]
        output_detail = self._interpreter.get_output_details()[0]
        self._input_index = int(input_detail["index"])
        self._output_index = int(output_detail["index"])
        self._in_q = _Quant(input_detail)
        self._out_q = _Quant(output_detail)
        self.input_shape = tuple(int(v) for v in input_detail["shape"])
        expected = (1, bundle.spec.window, bundle.n_features)
        if self.input_shape != expected:
            raise VigilInputError(
                f"model input shape {list(self.input_shape)} does not match the manifest {list(expected)}",
                file=bundle.path,
                key="io.input.shape",
            )
        # Preallocated input buffers: the hot path only writes into them.
        self._input = np.zeros(self.input_shape, dtype=self._in_q.dtype)
        self._staging = np.zeros(self.input_shape, dtype=np.float32)
        self._weights = None if bundle.weights is None else np.asarray(bundle.weights, np.float64)

    def reconstruct(self, scaled_window: np.ndarray) -> np.ndarray:
        """Reconstruction ``[window, features]`` (float32) of one scaled window."""
        it = self._interpreter
        # Reset before every window (see the class docstring).
        it.reset_all_variables()
        self._fill_input(scaled_window)
        it.set_tensor(self._input_index, self._input)
        it.invoke()
        out: np.ndarray = it.get_tensor(self._output_index)[0]
        if self._out_q.integer:
            return (out.astype(np.float32) - self._out_q.zero_point) * self._out_q.scale
        return out

    def score(self, raw_window: np.ndarray) -> WindowScore:
        """Scale, reconstruct and score one raw ``[window, features]`` window."""
        scaled = self.bundle.scaler.transform(raw_window)
        recon = self.reconstruct(scaled)
        scores, errors, steps = score_windows_with_steps(scaled[None], recon[None], self.bundle.score_function,
                                                         self._weights)
        return WindowScore(score=float(scores[0]), feature_errors=errors[0], step_errors=steps[0])

    def score_many(self, raw_windows: np.ndarray) -> list[WindowScore]:
        """:meth:`score` of each raw window of ``[n, window, features]``, with the same numbers.

        The interpreter still runs one window per invoke (the model has batch
        size 1; a batch-N fused LSTM is only ~5% cheaper per window, see
        PERFORMANCE.md); scaling and the error arithmetic run once for all
        windows, which saves the per-window numpy call overhead.
        """
        windows = np.asarray(raw_windows)
        if windows.ndim != 3 or windows.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"windows shape {windows.shape}, model expects [n, *{list(self.input_shape[1:])}]")
        if len(windows) == 0:
            return []
        if self.bundle.model_kind == "aer":  # its score combines two outputs: score() is the one path
            return [self.score(w) for w in windows]
        scaled = self.bundle.scaler.transform(windows)
        recon = np.empty(scaled.shape, dtype=np.float32)
        for i in range(len(scaled)):
            recon[i] = self.reconstruct(scaled[i])
        _, errors, steps = score_windows_with_steps(scaled, recon, self.bundle.score_function, self._weights)
        # One dot per window, not ``errors @ w`` over the batch: BLAS sums a matrix-vector product in
        # another order than a single row's, and a window's score must not depend on its batch (1 ulp).
        weights = normalised_weights(self._weights, errors.shape[1])
        return [WindowScore(score=float(errors[i] @ weights), feature_errors=errors[i], step_errors=steps[i])
                for i in range(len(scaled))]

    def _fill_input(self, scaled_window: np.ndarray) -> None:
        window = np.asarray(scaled_window)
        if window.shape != self.input_shape[1:]:
            raise ValueError(f"window shape {window.shape}, model expects {self.input_shape[1:]}")
        if not self._in_q.integer:
            self._input[0] = window
            return
        q = self._in_q
        staging = self._staging[0]
        np.divide(window, q.scale, out=staging)
        np.add(staging, q.zero_point, out=staging)
        np.rint(staging, out=staging)
        np.clip(staging, q.low, q.high, out=staging)
        self._input[0] = staging


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide the runtime's C++ banner ("INFO: Created TensorFlow Lite XNNPACK delegate") but no crash report.

    The banner is written straight to file descriptor 2, so fd 2 points at a
    temporary file while the interpreter is built; afterwards every captured
    line except ``INFO:`` lines is written back to the real stderr, so a
    native error message is still seen. A segfault inside the interpreter
    (``allocate_tensors`` has crashed on degenerate int8 models) would lose
    its report in that file, so for the same moment faulthandler writes to
    the real stderr (enabled just for the moment if it was off). Load errors
    still arrive as Python exceptions with their message.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded use): leave it alone
        yield
        return
    capture = _anonymous_file()
    was_enabled = faulthandler.is_enabled()
    try:
        faulthandler.enable(file=saved, all_threads=True)
        os.dup2(capture.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        if was_enabled:  # the previous file is not queryable; fd 2 is where it normally points
            faulthandler.enable(file=2, all_threads=True)
        else:
            faulthandler.disable()
        os.close(saved)
        _replay_native_lines(capture)


def _anonymous_file() -> IO[bytes]:
    """A nameless read/write file: a memfd on Linux (the agent need not import ``tempfile`` for it)."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("vigil-native-stderr"), "w+b")
    import tempfile

    return tempfile.TemporaryFile()


def _replay_native_lines(capture: IO[bytes]) -> None:
    """Write what the runtime printed, except its INFO banner, to the real stderr."""
    try:
        capture.seek(0)
        lines = capture.read().decode("utf-8", "replace").splitlines()
    finally:
        capture.close()
    kept = [line for line in lines if line.strip() and not line.startswith("INFO:")]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


def _make_interpreter(interpreter_class: type, bundle: Bundle, num_threads: int) -> Any:
    with warnings.catch_warnings(), _native_stderr_silenced():
        # Interpreter constructors may warn (deprecations); those are not the user's problem.
        warnings.simplefilter("ignore")
        try:
            interpreter = interpreter_class(model_content=bundle.model_bytes, num_threads=num_threads)
            interpreter.allocate_tensors()
            return interpreter
        except (ValueError, RuntimeError) as exc:
            raise VigilInputError(f"the TFLite runtime cannot load the model: {exc}", file=bundle.path) from None
