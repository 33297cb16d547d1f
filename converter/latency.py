"""Per-window latency through the edge runtime (``Scorer.score``: scale, reset, invoke, score).

Modes are timed in interleaved rounds (mode A, mode B, ..., then again) so a
burst of load on the machine hurts every mode alike instead of whichever
happened to be measured at that moment; median and p99 come from all rounds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from edge_agent.runtime import Scorer


@dataclass
class Latency:
    median_ms: float
    p99_ms: float
    samples: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


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
    clock = time.perf_counter
    for _ in range(rounds):
        for name, scorer in scorers.items():
            bucket = times[name]
            for w in windows:
                start = clock()
                scorer.score(w)
                bucket.append(clock() - start)
    return {
        name: Latency(
            median_ms=float(np.median(t) * 1e3),
            p99_ms=float(np.percentile(t, 99) * 1e3),
            samples=len(t),
        )
        for name, t in times.items()
    }
