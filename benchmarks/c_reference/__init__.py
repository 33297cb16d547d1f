"""The naive C reference of the LSTM autoencoder (benchmarks only, never shipped to devices).

:func:`build` compiles ``lstm_ae.c`` into ``benchmarks/.work/c_reference/`` with the
host's C compiler (``$CC``, else ``cc``) when one is present; :class:`CReference`
loads a bundle's weights from its TFLite flatbuffer (float32, float16 or
int8 weights, dequantized the way the interpreter's DEQUANTIZE op does) and
reconstructs one scaled window through ctypes. ``reconstruct`` is checked
against the TFLite interpreter by ``benchmarks.perf_routes`` before it is timed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = Path(__file__).resolve().parent / "lstm_ae.c"
BUILD = Path(__file__).resolve().parents[1] / ".work" / "c_reference"
KNOWN_OPS = {"MEAN", "RESHAPE", "SUB", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "TILE", "FULLY_CONNECTED",
             "ADD", "DEQUANTIZE"}
FLAVOURS = {"baseline": ["-O3"], "native": ["-O3", "-march=native"]}


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def build(flavour: str = "native") -> Path | None:
    """The shared library for ``flavour`` (compiled once); None without a C compiler."""
    cc = compiler()
    if cc is None:
        return None
    out = BUILD / f"lstm_ae-{flavour}.so"
    if out.is_file() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [cc, *FLAVOURS[flavour], "-shared", "-fPIC", "-o", str(out), str(SOURCE), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@dataclass
class Graph:
    """What the C loop needs from the flatbuffer: layer widths, weights, centering."""

    center: bool
    n_enc: int
    units: list[int]
    arrays: list[np.ndarray]  # per LSTM: wx [in, 4n], wh [n, 4n], b [4n]; then dense w, b
    scale_in: np.ndarray | None = None  # the trainer's bias-free per-feature layers [f, f], when present
    scale_out: np.ndarray | None = None


def read_graph(model_bytes: bytes) -> Graph:
    """The LSTM autoencoder's weights from a TFLite flatbuffer made by the converter."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sub = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    producers = {int(o): op for op in sub.operators for o in op.outputs}

    def op_name(op: Any) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        return str(names[max(code.builtinCode, code.deprecatedBuiltinCode)])

    def const(index: int) -> np.ndarray:
        return _constant(model, sub, producers, int(index), op_name)

    ops = [(op_name(op), op) for op in sub.operators]
    kinds = [k for k, _ in ops]
    unknown = sorted(set(kinds) - KNOWN_OPS)
    dense_ops = [op for k, op in ops if k == "FULLY_CONNECTED"]
    first_lstm = kinds.index("UNIDIRECTIONAL_SEQUENCE_LSTM")
    pre = dense_ops[:1] if dense_ops and kinds.index("FULLY_CONNECTED") < first_lstm else []
    main_and_post = dense_ops[len(pre):]
    if unknown or len(main_and_post) not in (1, 2):
        found = f"ops {unknown}" if unknown else f"{len(dense_ops)} dense layers"
        raise ValueError(f"the C reference covers the LSTM autoencoder graph ({', '.join(sorted(KNOWN_OPS))}; the "
                         f"output dense plus optional scale layers before and after); this model has {found}")
    lstm_ops = [op for k, op in ops if k == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    n_enc = kinds[: kinds.index("TILE")].count("UNIDIRECTIONAL_SEQUENCE_LSTM")
    arrays: list[np.ndarray] = []
    units = []
    for op in lstm_ops:
        ins = [int(i) for i in op.inputs]
        wx = np.concatenate([const(i) for i in ins[1:5]])
        wh = np.concatenate([const(i) for i in ins[5:9]])
        b = np.concatenate([const(i) for i in ins[12:16]])
        units.append(wh.shape[1])
        arrays += [wx.T, wh.T, b]  # the C loop walks inputs outside, gate rows inside
    dense = main_and_post[0]
    arrays += [const(dense.inputs[1]), const(dense.inputs[2])]
    scale_in = const(pre[0].inputs[1]) if pre else None
    scale_out = const(main_and_post[1].inputs[1]) if len(main_and_post) == 2 else None
    return Graph(center="MEAN" in kinds, n_enc=n_enc, units=units,
                 arrays=[np.ascontiguousarray(a, dtype=np.float32) for a in arrays],
                 scale_in=None if scale_in is None else np.ascontiguousarray(scale_in, np.float32),
                 scale_out=None if scale_out is None else np.ascontiguousarray(scale_out, np.float32))


def _constant(model: Any, sub: Any, producers: dict[int, Any], index: int, op_name: Any) -> np.ndarray:
    op = producers.get(index)
    if op is not None:
        if op_name(op) != "DEQUANTIZE":
            raise ValueError(f"tensor {index} is computed by {op_name(op)}, not a constant")
        return _dequantize(model, sub.tensors[int(op.inputs[0])])
    return _dequantize(model, sub.tensors[index])


def _dequantize(model: Any, tensor: Any) -> np.ndarray:
    dtypes = {0: np.float32, 1: np.float16, 9: np.int8, 2: np.int32}
    raw = np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8)
    values = raw.view(dtypes[tensor.type]).reshape([int(s) for s in tensor.shape])
    q = tensor.quantization
    if tensor.type in (9, 2) and q is not None and q.scale is not None and len(q.scale):
        scale = np.asarray(q.scale, np.float32)
        zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.float32)
        shape = [1] * values.ndim
        if len(scale) > 1:
            shape[int(q.quantizedDimension)] = len(scale)
        return (values.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)
    return values.astype(np.float32)


class CReference:
    """``reconstruct(scaled_window)`` through the compiled C loop, with a bundle's weights."""

    def __init__(self, model_bytes: bytes, window: int, n_features: int, library: Path) -> None:
        graph = read_graph(model_bytes)
        self.window, self.n_features = window, n_features
        self._lib = ctypes.CDLL(str(library))
        self._fn = self._lib.vigil_lstm_ae
        self._fn.restype = ctypes.c_int
        self._arrays = graph.arrays  # kept alive: the pointers below point into them
        self._weights = (ctypes.c_void_p * len(graph.arrays))(*[a.ctypes.data for a in graph.arrays])
        self._units = (ctypes.c_int * len(graph.units))(*graph.units)
        self._graph = graph
        widest = max([*graph.units, n_features])
        self._scratch = np.zeros(2 * window * widest + 6 * widest + window * n_features, np.float32)
        self._in = np.zeros((window, n_features), np.float32)
        self._out = np.zeros((window, n_features), np.float32)
        self._args = (ctypes.c_int(window), ctypes.c_int(n_features), ctypes.c_int(int(graph.center)),
                      ctypes.c_int(graph.n_enc), ctypes.c_int(len(graph.units) - graph.n_enc), self._units,
                      self._weights, _pointer(graph.scale_in), _pointer(graph.scale_out),
                      ctypes.c_void_p(self._in.ctypes.data), ctypes.c_void_p(self._out.ctypes.data),
                      ctypes.c_void_p(self._scratch.ctypes.data))

    def reconstruct(self, scaled_window: np.ndarray) -> np.ndarray:
        self._in[...] = scaled_window
        if self._fn(*self._args) != 0:
            raise ValueError("the C reference supports at most 64 features")
        return self._out.copy()


def _pointer(array: np.ndarray | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if array is None else array.ctypes.data)

