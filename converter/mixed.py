"""Choose the storage of each weight matrix for ``int8-weights`` from measured sensitivity.

Storing every matrix as per-tensor int8 makes the file about 40% of float32
but, on a well-trained window-64 model, moved scores enough to fail parity
(Spearman 0.958, 3% flipped decisions on held-out windows). The error is not
spread evenly: one recurrent matrix caused a quarter of it and three matrices
most of it. So the plan starts from all-int8 and stores the matrices that
hurt the score most *per extra byte* as float16, while the file stays within
the size budget (half of the float32 file). Compute stays float32 either way,
so the latency is float32's.

Sensitivity is measured on *training* windows (and anomaly-like variants of
them), never on the held-out windows the parity check uses afterwards. Each
matrix is fake-quantized alone in the float32 flatbuffer (its bytes replaced
by what DEQUANTIZE would produce) and the windows are scored through the
device's ``Scorer``; the mean absolute score change is its sensitivity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from converter import weight_quant as wq
from edge_agent.runtime import Scorer

SIZE_BUDGET = 0.5  # of the float32 file
ScorerFactory = Callable[[bytes], Scorer]


@dataclass
class MixedPlan:
    result: wq.WeightQuantResult
    plan: dict[int, str]
    budget_bytes: int
    sensitivities: dict[str, float] = field(default_factory=dict)  # tensor name -> mean |score change|

    def notes(self) -> list[str]:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.result.counts.items()))
        return [
            f"weight storage: {counts} (of {len(self.plan)} matrices); float32 compute",
            f"size budget {self.budget_bytes:,} bytes (half of float32); most sensitive matrices kept float16",
        ]


def _values(model_bytes: bytes, tensors: list[wq.WeightTensor]) -> dict[int, np.ndarray]:
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    out = {}
    for t in tensors:
        buffer = model.Buffers(subgraph.Tensors(t.index).Buffer())
        out[t.index] = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype="<f4").reshape(t.shape)
    return out


def fake_quantized(model_bytes: bytes, values: np.ndarray, storage: str) -> bytes:
    """The float32 model with one matrix replaced by its ``storage`` round trip (same layout)."""
    original = values.tobytes()
    at = model_bytes.find(original)
    if at < 0:
        raise ValueError("weight bytes not found in the flatbuffer")
    stored, scales, _ = wq.encode(values, storage)
    replaced = wq.decode(stored, scales).astype("<f4").tobytes()
    return model_bytes[:at] + replaced + model_bytes[at + len(original) :]


def sensitivities(
    float32_bytes: bytes, tensors: list[wq.WeightTensor], make_scorer: ScorerFactory,
    raw_windows: np.ndarray, reference: np.ndarray,
) -> dict[int, float]:
    """Mean |score change| when only that matrix is stored as per-tensor int8."""
    values = _values(float32_bytes, tensors)
    out = {}
    for t in tensors:
        scorer = make_scorer(fake_quantized(float32_bytes, values[t.index], wq.INT8))
        scores = np.array([scorer.score(w).score for w in raw_windows])
        out[t.index] = float(np.mean(np.abs(scores - reference)))
    return out


def plan_weights(
    float32_bytes: bytes, make_scorer: ScorerFactory, raw_windows: np.ndarray, reference: np.ndarray,
    budget_fraction: float = SIZE_BUDGET,
) -> MixedPlan:
    """All matrices int8, then the most sensitive per byte as float16 while within the budget."""
    tensors = wq.weight_tensors(float32_bytes)
    plan = {t.index: wq.INT8 for t in tensors}
    budget = int(len(float32_bytes) * budget_fraction)
    base = wq.apply_plan(float32_bytes, plan)
    sens = sensitivities(float32_bytes, tensors, make_scorer, raw_windows, reference)
    by_index = {t.index: t for t in tensors}
    extra = {t.index: wq.stored_size(t, wq.FLOAT16) - wq.stored_size(t, wq.INT8) for t in tensors}
    order = sorted(sens, key=lambda i: sens[i] / max(extra[i], 1), reverse=True)
    room = budget - len(base.model_bytes)
    for index in order:
        if sens[index] <= 0 or extra[index] > room:
            continue
        plan[index] = wq.FLOAT16
        room -= extra[index]
    result = wq.apply_plan(float32_bytes, plan)
    # The size model ignores flatbuffer padding; give back upgrades until the file fits.
    upgraded = [i for i in reversed(order) if plan[i] == wq.FLOAT16]
    while len(result.model_bytes) > budget and upgraded:
        plan[upgraded.pop(0)] = wq.INT8
        result = wq.apply_plan(float32_bytes, plan)
    names = {by_index[i].name: round(v, 9) for i, v in sorted(sens.items(), key=lambda kv: -kv[1])}
    return MixedPlan(result=result, plan=plan, budget_bytes=budget, sensitivities=names)
