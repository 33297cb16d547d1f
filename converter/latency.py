"""Per-window latency through the edge runtime (``Scorer.score``: scale, reset, invoke, score).

Modes are timed in interleaved rounds (mode A, mode B, ..., then again) so a
burst of load on the machine hurts every mode alike instead of whichever
happened to be measured at that moment; median and p99 come from all rounds,
and each round's own median is kept so the choice can compare modes round by
round (``converter/choice.py``: the median of the per-round ratios).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_agent.runtime import Scorer


@dataclass
class Latency:
    median_ms: float
    p99_ms: float
    samples: int
    round_medians_ms: list[float] = field(default_factory=list)
    interleaved: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latency:
        return cls(median_ms=float(data["median_ms"]), p99_ms=float(data["p99_ms"]), samples=int(data["samples"]),
                   round_medians_ms=[float(v) for v in data.get("round_medians_ms", [])],
                   interleaved=bool(data.get("interleaved", True)))


def measure_latency(
    scorers: dict[str, Scorer], raw_windows: np.ndarray, rounds: int = 5, per_round: int = 40, warmup: int = 5
) -> dict[str, Latency]:
    """Median and p99 milliseconds per window for each scorer."""
    if len(raw_windows) == 0:
        raise ValueError("no windows to time")
    windows = [np.ascontiguousarray(raw_windows[i % len(raw_windows)]) for i in range(per_round)]
    for scorer in scorers.values():
        for w in windows[:warmup]:
            scorer.score(w)  # first invokes allocate and dequantize constant weights
    times: dict[str, list[float]] = {name: [] for name in scorers}
    round_medians: dict[str, list[float]] = {name: [] for name in scorers}
    clock = time.perf_counter
    for _ in range(rounds):
        for name, scorer in scorers.items():
            bucket: list[float] = []
            for w in windows:
                start = clock()
                scorer.score(w)
                bucket.append(clock() - start)
            times[name].extend(bucket)
            round_medians[name].append(float(np.median(bucket) * 1e3))
    return {
        name: Latency(
            median_ms=float(np.median(t) * 1e3),
            p99_ms=float(np.percentile(t, 99) * 1e3),
            samples=len(t),
            round_medians_ms=round_medians[name],
            interleaved=len(scorers) > 1,
        )
        for name, t in times.items()
    }
