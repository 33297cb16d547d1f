"""Benchmark: what the detection logic costs per scored window, next to the model's ``Interpreter.invoke``.

The same bundle, the same 3-axis samples, fed in agent-sized reads (``--read-seconds``
of samples per block) through :class:`edge_agent.pipeline.StreamingPipeline`,
interleaved in rounds (thread CPU time, medians over rounds):

- ``invoke``: ``Interpreter.invoke()`` alone, timed call by call, on the very
  windows the pipeline scores (their inputs set as the Scorer sets them). The
  denominator of the target: the model's own cost, nothing of ours in it.
- ``scorer path``: the pipeline with the bundle's TFLite :class:`Scorer`
  (scaling, invoke, error arithmetic and everything around it).
- ``logic, <mode>``: the pipeline with a scorer that replays the results the
  Scorer gave in the model run, per score mode (window mean, per-row): every
  cost but the model's, with the same decisions, events and refits.
- ``baseline``: the same replay with what the pipeline did before the detection
  issue (window mean, static threshold, no smoothing, k = n = m = 1, no
  sensor-health checks): quality step, windowing, event detector, bookkeeping.

``new logic = logic - baseline`` is what the issue added (smoothing, dynamic
threshold above its POT floor, the derived k-of-n / m policy, sensor-health
checks, per-row localization); ``new logic / invoke`` is the ratio the issue
bounds at 5%. ``logic / invoke`` (all pipeline work, old and new) is reported
beside it.

Run: ``.venv/bin/python -m benchmarks.detection_cost [--bundle B.vigil ...] [--read-seconds 0.1]``
(default: the agent-footprint reference bundle, window 128 / hop 32 at 1 kHz, and the
demo's bundle, window 64 / hop 4 at 250 Hz, when it is in benchmarks/.work).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import log, md_table, write_results

COMMAND = ".venv/bin/python -m benchmarks.detection_cost"


class ReplayedScorer:
    """Hands out, in order, the results the real Scorer gave for the same windows: the pipeline without the model."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.next = 0

    def score(self, _window: np.ndarray) -> Any:
        result = self.results[self.next]
        self.next += 1
        return result


class RecordingScorer:
    """The real Scorer, keeping each result and each window's model input (for the invoke-only loop)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.results: list[Any] = []
        self.inputs: list[np.ndarray] = []

    def score(self, window: np.ndarray) -> Any:
        result = self.scorer.score(window)
        self.results.append(result)
        self.inputs.append(self.scorer._input.copy())  # what reconstruct() handed the interpreter
        return result


def _blocks(values: np.ndarray, rate: float, block: int) -> list[Any]:
    from edge_agent.sources.base import SampleBlock

    stamps = 1.7e9 + np.arange(len(values)) / rate
    return [SampleBlock(values[i:i + block], stamps[i:i + block]) for i in range(0, len(values), block)]


def _run(bundle: Any, scorer: Any, blocks: list[Any], rate: float, settings: Any) -> tuple[float, int]:
    from edge_agent.pipeline import StreamingPipeline

    pipeline = StreamingPipeline(bundle, settings, scorer=scorer, rate_hz=rate)
    started = time.thread_time()
    for block in blocks:
        pipeline.process(block)
    return time.thread_time() - started, pipeline.windows_scored


def _invoke_only(scorer: Any, inputs: list[np.ndarray]) -> float:
    """Thread CPU seconds of ``Interpreter.invoke()`` for these inputs (reset and set as Scorer does).

    One loop with invoke minus the same loop without it: a clock read around each call would
    add its own cost (and this VM's clock reads are not free) to the denominator.
    """
    it, index = scorer._interpreter, scorer._input_index
    started = time.thread_time()
    for x in inputs:
        it.reset_all_variables()
        it.set_tensor(index, x)
        it.invoke()
    with_invoke = time.thread_time() - started
    started = time.thread_time()
    for x in inputs:
        it.reset_all_variables()
        it.set_tensor(index, x)
    return with_invoke - (time.thread_time() - started)


def _settings(bundle: Any) -> dict[str, Any]:
    """Pipeline settings per contender: each score mode with the bundle's detection, and the pre-issue baseline."""
    from edge_agent.alerts import AlertPolicy
    from edge_agent.detection.settings import ScoreSettings
    from edge_agent.pipeline import PipelineSettings

    base = PipelineSettings.for_bundle(bundle)
    return {
        "window": replace(base, score=ScoreSettings("window")),
        "row": replace(base, score=ScoreSettings("row")),
        "baseline": replace(base, score=ScoreSettings("window"), policy=AlertPolicy(), smoothing_alpha=None,
                            dynamic_threshold=False, sensor_faults=False),
    }


def measure(path: Path, read_seconds: float, block: int | None, seconds: float, rounds: int,
            seed: int = 2) -> dict[str, Any]:
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer
    from edge_agent.sources.synthetic import generate_vibration

    bundle = load_bundle(path)
    rate = bundle.sampling_rate_hz or 1000.0
    block = block or max(1, round(read_seconds * rate))
    values, _ = generate_vibration(int(seconds * rate), rate_hz=rate, seed=seed, faults=False)
    blocks = _blocks(np.asarray(values, dtype=np.float32), rate, block)
    settings = _settings(bundle)
    scorer = Scorer(bundle)
    samples: dict[str, list[float]] = {"invoke": [], "scorer path": [], **{k: [] for k in settings}}
    windows = 0
    for r in range(rounds):
        recorder = RecordingScorer(scorer)
        spent, windows = _run(bundle, recorder, blocks, rate, settings["window"])
        samples["scorer path"].append(spent)
        samples["invoke"].append(_invoke_only(scorer, recorder.inputs))
        for name, contender in settings.items():
            replayed = ReplayedScorer(recorder.results)
            samples[name].append(_run(bundle, replayed, blocks, rate, contender)[0])
        log(f"{path.name} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in samples.items())
            + f", {windows} windows")
    us = {k: statistics.median(v) / windows * 1e6 for k, v in samples.items()}
    invoke = us["invoke"]
    modes = {}
    for mode in ("window", "row"):
        new = us[mode] - us["baseline"]
        modes[mode] = {"us_logic": us[mode], "us_new_logic": new, "new_logic_over_invoke": new / invoke,
                       "logic_over_invoke": us[mode] / invoke}
    return {"bundle": str(path), "window": bundle.spec.window, "hop": bundle.spec.hop, "rate_hz": rate,
            "block_samples": block, "signal_seconds": seconds, "signal_seed": seed, "rounds": rounds,
            "windows": windows,
            "us_per_window": us, "score_modes": modes, "default_score_mode": _default_mode(bundle),
            "rounds_s": samples}


def _default_mode(bundle: Any) -> str:
    """The score mode the trainer writes for this geometry today (the reference bundles predate it)."""
    from edge_agent.detection.policy import recommended_score

    return recommended_score(bundle.spec.window, bundle.spec.hop).mode


def default_bundles() -> list[Path]:
    from benchmarks.reference import WORK, convert, reference_run

    paths = []
    footprint = WORK / "ref_w128" / "bundles" / "auto.vigil"  # the agent-footprint geometry's bundle
    if not footprint.is_file():
        run_dir = reference_run("ref_w128", window=128, hop=32, rows=60000, epochs=10)
        convert(run_dir, footprint, "auto")
    paths.append(footprint)
    demo = WORK / "row-score" / "demo.vigil"  # the demo's geometry: window 64, hop 4 at 250 Hz
    if demo.is_file():
        paths.append(demo)
    return paths


def main(bundles: list[str], read_seconds: float, block: int | None, seconds: float, rounds: int,
         seed: int = 2) -> None:
    paths = [Path(b) for b in bundles] if bundles else default_bundles()
    runs = [measure(p, read_seconds, block, seconds, rounds, seed) for p in paths]
    rows = []
    for run in runs:
        us = run["us_per_window"]
        for mode, m in run["score_modes"].items():
            rows.append([f"{run['window']} / {run['hop']} @ {run['rate_hz']:g} Hz", run["block_samples"],
                         mode + (" (trainer default)" if mode == run["default_score_mode"] else ""), run["windows"],
                         us["invoke"], us["scorer path"], us["baseline"], m["us_logic"], m["us_new_logic"],
                         m["new_logic_over_invoke"], m["logic_over_invoke"]])
    table = md_table(["window / hop", "read (samples)", "score mode", "windows", "invoke us", "scorer path us",
                      "baseline logic us", "logic us", "new logic us", "new logic / invoke", "all logic / invoke"],
                     rows)
    write_results("detection_cost", {"runs": runs, "target_new_logic_over_invoke": 0.05}, table, COMMAND)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=[], help="bundle to measure (repeatable)")
    parser.add_argument("--read-seconds", type=float, default=0.1, help="seconds of samples per read (agent: ~0.1)")
    parser.add_argument("--block", type=int, help="samples per read (overrides --read-seconds)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of 3-axis signal per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2,
                        help="seed of the synthetic 3-axis signal (2: not the reference bundles' training seed)")
    args = parser.parse_args()
    main(args.bundle, args.read_seconds, args.block, args.seconds, args.rounds, args.seed)
