"""Benchmark: what the detection logic costs per scored window, next to the model's invoke.

The same bundle, the same 3-axis samples, fed in agent-sized blocks (``--block``
samples per read), through :class:`edge_agent.pipeline.StreamingPipeline` twice,
interleaved in rounds: once with the bundle's TFLite :class:`Scorer`, once
with a scorer that returns a fixed score at once. The second run costs
everything but the model (quality, windowing, smoothing, dynamic threshold,
event logic, sensor-health checks); ``logic / invoke`` is the ratio the
detection issue bounds at 5%. The logic-only run is repeated for each score
mode (``--score-modes``: the window mean, per-row localized scores) in the
same rounds. Thread CPU time (``time.thread_time``), medians over rounds.

Run: ``.venv/bin/python -m benchmarks.detection_cost [--bundle B.vigil] [--block 100]``
(default bundle: a reference window-128 / hop-32 run trained and converted once into benchmarks/.work).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import log, md_table, write_results

COMMAND = ".venv/bin/python -m benchmarks.detection_cost"


class FixedScorer:
    """Returns one precomputed result per window: the pipeline's cost without the model."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def score(self, _window: np.ndarray) -> Any:
        return self.result


def _with_detection(bundle_path: Path, out: Path) -> Path:
    """The bundle with the trainer's detection section when it has none (an older reference bundle)."""
    from edge_agent.bundle import load_bundle, pack_bundle
    from trainer.detection_meta import detection_section

    bundle = load_bundle(bundle_path)
    if bundle.detection is not None:
        return bundle_path
    from edge_agent.sources.synthetic import generate_vibration

    rows, _ = generate_vibration(20_000, rate_hz=bundle.sampling_rate_hz or 1000.0, seed=1, faults=False)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["detection"] = detection_section(rows, bundle.features, bundle.spec.window, bundle.spec.hop,
                                              bundle.sampling_rate_hz or 1000.0)
    out.write_bytes(pack_bundle(manifest, bundle.model_bytes))
    return out


def _run(bundle: Any, scorer: Any, values: np.ndarray, block: int, rate: float,
         mode: str = "window") -> tuple[float, int]:
    from edge_agent.detection.settings import ScoreSettings
    from edge_agent.pipeline import PipelineSettings, StreamingPipeline
    from edge_agent.sources.base import SampleBlock

    settings = PipelineSettings.for_bundle(bundle, score=ScoreSettings(mode))
    pipeline = StreamingPipeline(bundle, settings, scorer=scorer, rate_hz=rate)
    stamps = 1.7e9 + np.arange(len(values)) / rate
    started = time.thread_time()
    for i in range(0, len(values), block):
        pipeline.process(SampleBlock(values[i:i + block], stamps[i:i + block]))
    return time.thread_time() - started, pipeline.windows_scored


def main(bundle_arg: str | None, block: int, seconds: float, rounds: int,
         modes: tuple[str, ...] = ("window", "row")) -> None:
    from benchmarks.reference import WORK, convert, reference_run
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer
    from edge_agent.sources.synthetic import generate_vibration

    if bundle_arg:
        path = Path(bundle_arg)
    else:  # the agent-footprint geometry: 3-axis 1 kHz, window 128, hop 32
        run_dir = reference_run("detection_cost", window=128, hop=32)
        path = run_dir.parent / "float32.vigil"
        if not path.is_file():
            convert(run_dir, path, "float32")
    path = _with_detection(path, WORK / "detection_cost.vigil")
    bundle = load_bundle(path)
    rate = bundle.sampling_rate_hz or 1000.0
    values, _ = generate_vibration(int(seconds * rate), rate_hz=rate, seed=2, faults=False)
    values = np.asarray(values, dtype=np.float32)
    scorer = Scorer(bundle)
    fixed = FixedScorer(scorer.score(values[: bundle.spec.window]))
    model_s: list[float] = []
    logic_s: dict[str, list[float]] = {m: [] for m in modes}
    windows = 0
    for r in range(rounds):
        seconds_model, windows = _run(bundle, scorer, values, block, rate, modes[0])
        model_s.append(seconds_model)
        for mode in modes:
            logic_s[mode].append(_run(bundle, fixed, values, block, rate, mode)[0])
        log(f"round {r + 1}: with model {seconds_model:.3f} s, logic only "
            + ", ".join(f"{m} {v[-1]:.3f} s" for m, v in logic_s.items()) + f", {windows} windows")
    per_window_total = statistics.median(model_s) / windows * 1e3
    logic = {m: statistics.median(v) / windows * 1e3 for m, v in logic_s.items()}
    invoke = per_window_total - logic[modes[0]]
    data = {"bundle": str(path), "window": bundle.spec.window, "hop": bundle.spec.hop, "rate_hz": rate,
            "block_samples": block, "signal_seconds": seconds, "rounds": rounds, "windows": windows,
            "ms_per_window_total": per_window_total, "ms_per_window_logic": logic[modes[0]],
            "ms_per_window_model": invoke, "logic_over_model": logic[modes[0]] / invoke,
            "score_modes": {m: {"ms_per_window_logic": logic[m], "logic_over_model": logic[m] / invoke}
                            for m in modes},
            "rounds_total_s": model_s, "rounds_logic_s": logic_s[modes[0]], "rounds_logic_s_by_mode": logic_s}
    table = md_table(["window / hop", "block", "score mode", "windows", "model ms/window", "logic ms/window",
                      "logic / model"],
                     [[f"{bundle.spec.window} / {bundle.spec.hop}", block, m, windows, invoke, logic[m],
                       logic[m] / invoke] for m in modes])
    write_results("detection_cost", data, table, COMMAND)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle")
    parser.add_argument("--block", type=int, default=100, help="samples per read (the agent reads ~0.1 s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of 3-axis signal per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--score-modes", default="window,row",
                        help="logic-only runs per score mode (the first is also paired with the model)")
    args = parser.parse_args()
    main(args.bundle, args.block, args.seconds, args.rounds, tuple(m for m in args.score_modes.split(",") if m))
