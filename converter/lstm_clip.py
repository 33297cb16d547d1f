"""Remove the cell-state clip the TFLite converter adds to Keras LSTM layers.

When the MLIR converter fuses a Keras LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM
it sets ``cell_clip = 10.0``; Keras itself never clips the cell state. In an
autoencoder's decoder, which is fed the same latent vector at every step, the
cell state keeps growing and passes 10 after a few dozen steps: measured on a
window-64 model, the float32 bundle's reconstruction drifted up to 0.17 away
from Keras from step ~25 on and scores correlated at only 0.83. A clip of 0
means "no clip" to every TFLite LSTM kernel (float, hybrid and integer), which
is exactly the Keras computation.
"""

from __future__ import annotations

from typing import Any

KERAS_CELL_CLIP = 0.0  # TFLite: a clip <= 0 disables clipping


def unclip_lstm_cells(model_bytes: bytes) -> tuple[bytes, int]:
    """Return the model with every LSTM's cell clip disabled, and how many ops changed."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    changed = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            if _builtin(model.operatorCodes[op.opcodeIndex]) != fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
                continue
            options = op.builtinOptions
            if options is not None and float(options.cellClip) != KERAS_CELL_CLIP:
                options.cellClip = KERAS_CELL_CLIP
                changed += 1
    if not changed:
        return model_bytes, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changed


def _builtin(op_code: Any) -> int:
    return max(int(op_code.builtinCode), int(op_code.deprecatedBuiltinCode))
