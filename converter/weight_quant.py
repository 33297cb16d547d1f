"""Weight-only int8 quantization of a float32 TFLite flatbuffer (``int8-weights``).

TensorFlow's own int8 routes either run the LSTM as an integer kernel (full
int8) or as a hybrid kernel (dynamic range, and only for tensors of >= 1024
elements); on the small models vigil trains both are slower than float32 or
do nothing. This pass keeps float compute and only changes how the weights are
*stored*: every weight matrix of an LSTM or fully-connected op becomes a
symmetric int8 tensor (one scale per matrix, zero point 0) feeding a
DEQUANTIZE op. The TFLite DEQUANTIZE kernel computes a constant input once and
keeps the float result, so after the first window the graph runs exactly the
float32 kernels. Per-tensor (not per-channel) scales: per-channel zero points
are stored as int64 and cost more bytes than they save on matrices this small,
and a DEQUANTIZE of version 2 loads on every TFLite runtime since 2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Input slots that hold weight matrices (not biases, not state):
# UNIDIRECTIONAL_SEQUENCE_LSTM 1-4 input-to-gate, 5-8 recurrent-to-gate, 16 projection;
# FULLY_CONNECTED 1.
_LSTM_WEIGHT_SLOTS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 16})
_FC_WEIGHT_SLOTS = frozenset({1})
_MIN_ELEMENTS = 16  # smaller matrices are not worth a DEQUANTIZE op
_DEQUANTIZE_INT8_VERSION = 2


@dataclass(frozen=True)
class WeightQuantResult:
    model_bytes: bytes
    quantized_tensors: int
    float_bytes: int  # bytes of the quantized matrices before (float32)
    int8_bytes: int  # ... and after


def quantize_weights_int8(model_bytes: bytes) -> WeightQuantResult:
    """Return the model with its weight matrices stored as int8."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    deq_code = _dequantize_opcode(model, fb)
    float_bytes = int8_bytes = count = 0
    for subgraph in model.subgraphs:
        new_ops = []
        for tensor_index in _weight_tensors(model, subgraph, fb):
            op = _quantize_tensor(model, subgraph, tensor_index, deq_code, fb)
            if op is None:
                continue
            new_ops.append(op)
            n = int(np.prod(subgraph.tensors[tensor_index].shape))
            float_bytes += 4 * n
            int8_bytes += n
            count += 1
        # DEQUANTIZE ops first: the operator list must stay in execution order.
        subgraph.operators = new_ops + list(subgraph.operators)
    out = flatbuffer_utils.convert_object_to_bytearray(model)
    return WeightQuantResult(bytes(out), count, float_bytes, int8_bytes)


def _builtin_code(op_code: Any) -> int:
    return max(int(op_code.builtinCode), int(op_code.deprecatedBuiltinCode))


def _dequantize_opcode(model: Any, fb: Any) -> int:
    for i, op_code in enumerate(model.operatorCodes):
        if _builtin_code(op_code) == fb.BuiltinOperator.DEQUANTIZE:
            op_code.version = max(int(op_code.version), _DEQUANTIZE_INT8_VERSION)
            return i
    op_code = fb.OperatorCodeT()
    op_code.builtinCode = fb.BuiltinOperator.DEQUANTIZE
    op_code.deprecatedBuiltinCode = fb.BuiltinOperator.DEQUANTIZE
    op_code.version = _DEQUANTIZE_INT8_VERSION
    model.operatorCodes.append(op_code)
    return len(model.operatorCodes) - 1


def _weight_tensors(model: Any, subgraph: Any, fb: Any) -> list[int]:
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


def _quantize_tensor(model: Any, subgraph: Any, index: int, deq_code: int, fb: Any) -> Any | None:
    """Replace constant tensor ``index`` by int8 + DEQUANTIZE; return the new op."""
    tensor = subgraph.tensors[index]
    weights = _constant_float32(model, tensor, fb)
    if weights is None or weights.ndim != 2 or weights.size < _MIN_ELEMENTS:
        return None
    peak = float(np.abs(weights).max())
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)

    int8_buffer = fb.BufferT()
    int8_buffer.data = np.frombuffer(q.tobytes(), dtype=np.uint8)
    model.buffers.append(int8_buffer)
    params = fb.QuantizationParametersT()
    params.scale = [float(scale)]
    params.zeroPoint = [0]
    params.quantizedDimension = 0
    q_tensor = fb.TensorT()
    q_tensor.shape = [int(v) for v in tensor.shape]
    q_tensor.type = fb.TensorType.INT8
    q_tensor.buffer = len(model.buffers) - 1
    q_tensor.name = (tensor.name or b"weights") + b"/int8"
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
