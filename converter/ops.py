"""What is inside a TFLite flatbuffer: ops, subgraphs, I/O tensors.

Parsed from the flatbuffer itself (not from an interpreter, whose op list
depends on which delegate claimed which node). The bundle must be builtin ops
only, one subgraph, no WHILE loop, batch size 1, and every quantization scale
a normal float32: calibrating on constant data gives zero-width ranges, the
converter then writes subnormal scales (4.6e-41 measured) and the integer
LSTM kernel segfaults in ``allocate_tensors``; such a model is refused here,
before any interpreter sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORBIDDEN_OPS = frozenset({"WHILE", "IF", "CALL_ONCE", "CUSTOM"})
FLEX_PREFIX = "Flex"
MIN_SCALE = float(np.finfo(np.float32).tiny)  # smallest normal float32


@dataclass
class ModelInfo:
    ops: list[str]  # distinct op names, sorted; custom ops as "CUSTOM:<code>"
    op_counts: dict[str, int]
    subgraphs: int
    io: dict[str, dict[str, Any]] = field(default_factory=dict)
    degenerate_scales: list[str] = field(default_factory=list)  # "tensor name: scale"

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "op_counts": self.op_counts, "subgraphs": self.subgraphs, "io": self.io,
                "degenerate_scales": self.degenerate_scales}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(ops=list(data["ops"]), op_counts=dict(data["op_counts"]), subgraphs=int(data["subgraphs"]),
                   io=dict(data["io"]), degenerate_scales=list(data.get("degenerate_scales", [])))

    def problems(self, window: int, n_features: int) -> list[str]:
        """Reasons this model cannot go into a bundle (empty when it can)."""
        found = []
        bad = [op for op in self.ops if op.split(":")[0] in FORBIDDEN_OPS or FLEX_PREFIX in op]
        if bad:
            found.append(f"non-builtin or loop ops {bad}")
        if self.subgraphs != 1:
            found.append(f"{self.subgraphs} subgraphs (control flow)")
        if self.degenerate_scales:
            found.append(f"degenerate quantization scales (zero-width calibration range; the integer kernels "
                         f"would crash): {', '.join(self.degenerate_scales[:3])}"
                         + (f" and {len(self.degenerate_scales) - 3} more" if len(self.degenerate_scales) > 3 else ""))
        expected = [1, window, n_features]
        for side in ("input", "output"):
            shape = self.io[side]["shape"]
            if shape != expected or self.io[side]["shape_signature"] != expected:
                signature = self.io[side]["shape_signature"]
                found.append(f"{side} shape {shape} / signature {signature}, expected {expected}")
        return found


def _op_names(fb: Any) -> dict[int, str]:
    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _type_names(fb: Any) -> dict[int, str]:
    return {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_") and isinstance(v, int)}


def inspect_model(model_bytes: bytes) -> ModelInfo:
    """Op list, subgraph count and I/O tensor details of a flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model_bytes, 0))
    names = _op_names(fb)
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
            name = names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
                name = f"CUSTOM:{custom}"
            counts[name] = counts.get(name, 0) + 1
    main = model.subgraphs[0]
    io = {
        "input": _tensor_info(main.tensors[main.inputs[0]], fb),
        "output": _tensor_info(main.tensors[main.outputs[0]], fb),
    }
    return ModelInfo(ops=sorted(counts), op_counts=dict(sorted(counts.items())), subgraphs=len(model.subgraphs), io=io,
                     degenerate_scales=_degenerate_scales(model))


def _degenerate_scales(model: Any) -> list[str]:
    """Tensors whose quantization scale is zero, subnormal or not finite."""
    found = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors or []:
            quant = tensor.quantization
            if quant is None or quant.scale is None or len(quant.scale) == 0:
                continue
            scales = np.abs(np.asarray(quant.scale, dtype=np.float64))
            bad = scales[~np.isfinite(scales) | (scales < MIN_SCALE)]
            if len(bad):
                name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
                found.append(f"{name}: {float(bad[0]):.3g}")
    return found


def _tensor_info(tensor: Any, fb: Any) -> dict[str, Any]:
    shape = [int(v) for v in np.asarray(tensor.shape).tolist()]
    signature = tensor.shapeSignature
    signature = shape if signature is None or len(signature) == 0 else [int(v) for v in np.asarray(signature).tolist()]
    quant = tensor.quantization
    scale = [] if quant is None or quant.scale is None else [float(v) for v in np.asarray(quant.scale).tolist()]
    zero = [] if quant is None or quant.zeroPoint is None else [int(v) for v in np.asarray(quant.zeroPoint).tolist()]
    return {
        "shape": shape,
        "shape_signature": signature,
        "dtype": _type_names(fb).get(int(tensor.type), str(tensor.type)),
        "quantization": {"scale": scale[0] if scale else None, "zero_point": zero[0] if zero else None},
    }
