"""Weight-only storage quantization of a float32 TFLite flatbuffer (``int8-weights``).

TensorFlow's own int8 routes either run the LSTM as an integer kernel (full
int8: many times slower per window on these small models) or as a hybrid
kernel (dynamic range, and only for tensors of more than 1024 elements, so it
changes nothing here). This pass keeps float32 compute and only changes how
weight matrices are *stored*: each LSTM / fully-connected weight matrix
becomes an int8 tensor (symmetric, one scale per tensor or per output row) or
a float16 tensor, feeding a DEQUANTIZE op. TFLite's DEQUANTIZE kernel
computes a constant input once and keeps the float result, so after the first
window the graph runs exactly the float32 kernels.

Which matrices get which storage is a *plan* (``converter/mixed.py`` chooses
it from measured sensitivities); this module only applies one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

INT8 = "int8"  # one scale per tensor
INT8_ROWS = "int8-rows"  # one scale per output row (per channel, dimension 0)
FLOAT16 = "float16"
FLOAT32 = "float32"  # left as it is
STORAGES = (INT8, INT8_ROWS, FLOAT16, FLOAT32)

# Input slots that hold weight matrices (not biases, not state):
# UNIDIRECTIONAL_SEQUENCE_LSTM 1-4 input-to-gate, 5-8 recurrent-to-gate, 16 projection;
# FULLY_CONNECTED 1.
_LSTM_WEIGHT_SLOTS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 16})
_FC_WEIGHT_SLOTS = frozenset({1})
# DEQUANTIZE op versions (TFLite op_version.cc): int8 2, float16 3, per-channel int8 5.
_DEQUANTIZE_VERSION = {INT8: 2, FLOAT16: 3, INT8_ROWS: 5}


@dataclass(frozen=True)
class WeightTensor:
    index: int
    name: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class WeightQuantResult:
    model_bytes: bytes
    counts: dict[str, int]  # storage -> number of matrices
    float_bytes: int  # bytes of the changed matrices before (float32)
    stored_bytes: int  # ... and after (data plus quantization parameters)


def stored_size(tensor: WeightTensor, storage: str) -> int:
    """Bytes a matrix occupies in the flatbuffer under ``storage`` (data + parameters)."""
    n = tensor.elements
    if storage == INT8:
        return n + 4 + 8
    if storage == INT8_ROWS:
        return n + tensor.shape[0] * (4 + 8)  # float32 scale + int64 zero point per row
    if storage == FLOAT16:
        return 2 * n
    return 4 * n


def weight_tensors(model_bytes: bytes) -> list[WeightTensor]:
    """The constant float32 weight matrices a plan can choose storage for."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    subgraph = model.subgraphs[0]
    found = []
    for index in _weight_indices(model, subgraph, fb):
        tensor = subgraph.tensors[index]
        values = _constant_float32(model, tensor, fb)
        if values is None or values.ndim != 2:
            continue
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        found.append(WeightTensor(index, name, tuple(int(v) for v in tensor.shape)))
    return found


def apply_plan(model_bytes: bytes, plan: dict[int, str]) -> WeightQuantResult:
    """Store each weight tensor ``index`` as ``plan[index]`` (missing = float32)."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    subgraph = model.subgraphs[0]
    changes = {i: s for i, s in plan.items() if s != FLOAT32}
    if not changes:
        return WeightQuantResult(model_bytes, {}, 0, 0)
    version = max(_DEQUANTIZE_VERSION[s] for s in changes.values())
    deq_code = _dequantize_opcode(model, fb, version)
    new_ops: list[Any] = []
    counts: dict[str, int] = {}
    float_bytes = stored_bytes = 0
    for index, storage in sorted(changes.items()):
        tensor = subgraph.tensors[index]
        values = _constant_float32(model, tensor, fb)
        if values is None:
            raise ValueError(f"tensor {index} is not a constant float32 tensor")
        new_ops.append(_store(model, subgraph, index, values, storage, deq_code, fb))
        counts[storage] = counts.get(storage, 0) + 1
        shape = WeightTensor(index, "", tuple(values.shape))
        float_bytes += 4 * shape.elements
        stored_bytes += stored_size(shape, storage)
    # DEQUANTIZE ops first: the operator list must stay in execution order.
    subgraph.operators = new_ops + list(subgraph.operators)
    out = flatbuffer_utils.convert_object_to_bytearray(model)
    return WeightQuantResult(bytes(out), counts, float_bytes, stored_bytes)


def quantize_weights_int8(model_bytes: bytes) -> WeightQuantResult:
    """Every weight matrix as per-tensor int8 (the plain plan)."""
    return apply_plan(model_bytes, {t.index: INT8 for t in weight_tensors(model_bytes)})


def _builtin_code(op_code: Any) -> int:
    return max(int(op_code.builtinCode), int(op_code.deprecatedBuiltinCode))


def _dequantize_opcode(model: Any, fb: Any, version: int) -> int:
    for i, op_code in enumerate(model.operatorCodes):
        if _builtin_code(op_code) == fb.BuiltinOperator.DEQUANTIZE:
            op_code.version = max(int(op_code.version), version)
            return i
    op_code = fb.OperatorCodeT()
    op_code.builtinCode = fb.BuiltinOperator.DEQUANTIZE
    op_code.deprecatedBuiltinCode = fb.BuiltinOperator.DEQUANTIZE
    op_code.version = version
    model.operatorCodes.append(op_code)
    return len(model.operatorCodes) - 1


def _weight_indices(model: Any, subgraph: Any, fb: Any) -> list[int]:
    slots_by_op = {
        fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM: _LSTM_WEIGHT_SLOTS,
        fb.BuiltinOperator.FULLY_CONNECTED: _FC_WEIGHT_SLOTS,
    }
    found: set[int] = set()
    for op in subgraph.operators:
        slots = slots_by_op.get(_builtin_code(model.operatorCodes[op.opcodeIndex]), frozenset())
        inputs = list(op.inputs)
        found.update(int(inputs[s]) for s in slots if s < len(inputs) and inputs[s] >= 0)
    return sorted(found)


def _constant_float32(model: Any, tensor: Any, fb: Any) -> np.ndarray | None:
    buffer = model.buffers[tensor.buffer]
    if tensor.type != fb.TensorType.FLOAT32 or tensor.isVariable or buffer.data is None or len(buffer.data) == 0:
        return None
    values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype="<f4")
    return values.reshape([int(v) for v in tensor.shape])


def encode(values: np.ndarray, storage: str) -> tuple[np.ndarray, list[float], list[int]]:
    """Stored array, scales and zero points of ``values`` under ``storage``."""
    if storage == FLOAT16:
        return values.astype("<f2"), [], []
    if storage == INT8:
        peak = np.array([float(np.abs(values).max())])
    else:
        peak = np.abs(values).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    shaped = scale if storage == INT8 else scale[:, None]
    q = np.clip(np.rint(values / shaped), -127, 127).astype(np.int8)
    return q, [float(s) for s in scale], [0] * len(scale)


def decode(stored: np.ndarray, scales: list[float]) -> np.ndarray:
    """What DEQUANTIZE computes (used to predict the effect of a plan without a runtime)."""
    if stored.dtype == np.float16:
        return stored.astype(np.float32)
    scale = np.asarray(scales, np.float32)
    return stored.astype(np.float32) * (scale if len(scale) == 1 else scale[:, None])


def _store(model: Any, subgraph: Any, index: int, values: np.ndarray, storage: str, deq_code: int, fb: Any) -> Any:
    """Replace constant tensor ``index`` by a stored tensor + DEQUANTIZE; return the new op."""
    tensor = subgraph.tensors[index]
    stored, scales, zero_points = encode(values, storage)
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(stored.tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    q_tensor = fb.TensorT()
    q_tensor.shape = [int(v) for v in tensor.shape]
    q_tensor.type = fb.TensorType.FLOAT16 if storage == FLOAT16 else fb.TensorType.INT8
    q_tensor.buffer = len(model.buffers) - 1
    q_tensor.name = (tensor.name or b"weights") + f"/{storage}".encode()
    if scales:
        params = fb.QuantizationParametersT()
        params.scale = scales
        params.zeroPoint = zero_points
        params.quantizedDimension = 0
        q_tensor.quantization = params
    subgraph.tensors.append(q_tensor)
    # The float tensor stays (same index, same consumers) but is now computed.
    model.buffers[tensor.buffer].data = None
    op = fb.OperatorT()
    op.opcodeIndex = deq_code
    op.inputs = [len(subgraph.tensors) - 1]
    op.outputs = [index]
    op.builtinOptionsType = fb.BuiltinOptions.DequantizeOptions
    op.builtinOptions = fb.DequantizeOptionsT()
    return op
