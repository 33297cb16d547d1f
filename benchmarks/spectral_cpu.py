"""Benchmark: where a spectral bundle's CPU goes on a 3-axis 1 kHz stream (issue 13, spectral target).

Spectral bundles trained on the raw reference's data (``benchmarks/reference.py``
``ref_w128``: generated 3-axis 1 kHz vibration) with the trainer's spectral
defaults (frame 128 samples at 1 kHz, frame hop 64, 12 bands, window 16 frames)
and model hops of 1 (the default: a window per frame), 2 and 4 frames, 10 epochs,
float32. Two parts:

* **pipeline**: thread CPU of ``StreamingPipeline.process`` per second of signal,
  the signal read in blocks of 50 samples (a 20 Hz reader), 250 (the agent's
  ``service.BLOCK_S`` = 0.25 s gather) and 1000 samples; next to it, on the same
  blocks, the front-end alone (``Framer.push``) and ``Interpreter.invoke`` alone
  (the bundle's interpreter on the pipeline's windows, one invoke each), so the
  rest (scaling, window buffer, scores, thresholds, events) is the difference.
  Interleaved rounds, medians.
* **agent**: the whole agent (``vigil agent run``, paced synthetic 3-axis 1 kHz
  source, MQTT to a local mosquitto with its spool, JSONL sink), utime+stime of
  all threads over ``--seconds`` after a 5 s warm-up, one run per bundle per round,
  interleaved, medians; the raw reference bundle (window 128, hop 32) beside it.

Run: ``nice -n 10 .venv/bin/python -m benchmarks.spectral_cpu`` (about 10 min).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import log, md_table, write_results
from benchmarks.reference import WORK

COMMAND = "nice -n 10 .venv/bin/python -m benchmarks.spectral_cpu"
OUT = WORK / "spectral" / "cpu_hops"
HOPS = (1, 2, 4)
BLOCKS = (50, 250, 1000)
SIGNAL_S = 60.0
RATE_HZ = 1000.0


def spectral_bundle(hop: int) -> Path:
    from benchmarks.vibration import RAW_REFERENCE_DATA, train_and_convert

    options = {"features": "spectral", "window": 16, "hop": hop, "epochs": 10, "columns": ["x", "y", "z"]}
    return train_and_convert(f"spectral hop {hop}", RAW_REFERENCE_DATA, OUT / f"hop{hop}", options)


def _blocks(values: np.ndarray, size: int) -> list[Any]:
    from edge_agent.sources.base import SampleBlock

    return [SampleBlock(values[i:i + size].astype(np.float32), (i + np.arange(size)) / RATE_HZ)
            for i in range(0, len(values) - size + 1, size)]


def pipeline_share(bundle_path: Path, values: np.ndarray, size: int) -> dict[str, float]:
    """Per second of signal, as a share of one core: the whole pipeline, the front-end alone, invoke alone."""
    from edge_agent.bundle import load_bundle
    from edge_agent.core.spectral import Framer
    from edge_agent.pipeline import PipelineSettings, StreamingPipeline
    from edge_agent.runtime import Scorer

    bundle = load_bundle(bundle_path)
    blocks = _blocks(values, size)
    signal_s = len(blocks) * size / RATE_HZ
    pipeline = StreamingPipeline(bundle, PipelineSettings.for_bundle(bundle), rate_hz=RATE_HZ)
    started = time.thread_time()
    for block in blocks:
        pipeline.process(block)
    whole = time.thread_time() - started

    assert bundle.frontend is not None
    framer = Framer(bundle.frontend)
    started = time.thread_time()
    for block in blocks:
        framer.push(block.values)
    frontend = time.thread_time() - started

    # The interpreter alone, as the scorer drives it (reset, set input, invoke), once per scored window.
    scorer = Scorer(bundle)
    interpreter, index = scorer._interpreter, scorer._input_index  # noqa: SLF001 (benchmark: bare invoke)
    window = np.zeros(scorer.input_shape, dtype=np.float32)
    windows = pipeline.windows_scored
    started = time.thread_time()
    for _ in range(windows):
        interpreter.reset_all_variables()
        interpreter.set_tensor(index, window)
        interpreter.invoke()
    invoke = time.thread_time() - started
    return {"whole": 100 * whole / signal_s, "frontend": 100 * frontend / signal_s,
            "invoke": 100 * invoke / signal_s, "rest": 100 * (whole - frontend - invoke) / signal_s,
            "windows_per_s": windows / signal_s}


def pipeline_part(bundles: dict[str, Path], rounds: int) -> dict[str, Any]:
    from edge_agent.sources.synthetic import generate_vibration

    values, _ = generate_vibration(int(SIGNAL_S * RATE_HZ), rate_hz=RATE_HZ, seed=11)
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):  # interleaved: every contender sees the same host load
        for name, path in bundles.items():
            for size in BLOCKS:
                runs.setdefault(f"{name}|{size}", []).append(pipeline_share(path, values, size))
    medians = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in runs.items()}
    return {"rounds": rounds, "signal_s": SIGNAL_S, "runs": runs, "medians": medians}


def agent_part(bundles: dict[str, Path], rounds: int, seconds: float) -> dict[str, Any]:
    from benchmarks.footprint import VIGIL, agent_config, agent_env, sustained
    from benchmarks.procstat import Child
    from benchmarks.vibration import RAW_REFERENCE
    from tests.broker import MosquittoBroker

    contenders = {"raw (window 128, hop 32)": RAW_REFERENCE, **bundles}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="vigil-spectral-cpu-") as tmp:
        folder = Path(tmp)
        broker = MosquittoBroker(folder / "mosquitto").start()
        try:
            for r in range(rounds):
                for i, (name, path) in enumerate(contenders.items()):
                    log(f"agent round {r + 1}/{rounds}: {name}")
                    sub = folder / f"r{r}-{i}"
                    sub.mkdir()
                    cfg = agent_config(sub, str(path), "realtime", debug=False, port=broker.port)
                    child = Child([str(VIGIL), "agent", "run", "--config", str(cfg)], Path.cwd(), env=agent_env(),
                                  stderr_path=sub / "agent.err")
                    runs[name].append(sustained(child, r"agent .* ready", r"stopped: \d+ samples, \d+ windows",
                                                seconds))
        finally:
            broker.stop()
    medians = {name: {k: statistics.median(float(x[k]) for x in rs if x.get(k) is not None)
                      for k in ("share_of_one_core", "peak_rss_mb", "kept_up")} for name, rs in runs.items()}
    return {"rounds": rounds, "seconds": seconds, "runs": runs, "medians": medians}


def render(data: dict[str, Any]) -> str:
    pipe = data["pipeline"]["medians"]
    rows = []
    for key, m in pipe.items():
        name, size = key.split("|")
        rows.append([name, int(size), m["whole"], m["frontend"], m["invoke"], m["rest"], m["windows_per_s"]])
    text = ("### Pipeline: % of one core per second of 3-axis 1 kHz signal, by model hop and read size "
            f"(median of {data['pipeline']['rounds']} interleaved rounds of {SIGNAL_S:.0f} s)\n\n")
    text += md_table(["bundle", "samples per read", "pipeline", "front-end alone", "invoke alone", "rest",
                      "windows/s"], rows)
    agent = data.get("agent")
    if agent:
        text += (f"\n\n### Whole agent, paced 3-axis 1 kHz synthetic source, MQTT + spool + JSONL "
                 f"(median of {agent['rounds']} interleaved runs of {agent['seconds']:.0f} s)\n\n")
        rows = [[n, 100 * m["share_of_one_core"], m["peak_rss_mb"], m["kept_up"]] for n, m in agent["medians"].items()]
        text += md_table(["bundle", "% of one core (all threads)", "peak RSS MB", "kept up"], rows)
    return text + "\n"


def main(rounds: int, agent_rounds: int, seconds: float) -> dict[str, Any]:
    bundles = {f"spectral, model hop {h} frame{'s' if h > 1 else ''}": spectral_bundle(h) for h in HOPS}
    data: dict[str, Any] = {"bundles": {k: str(v) for k, v in bundles.items()}, "rate_hz": RATE_HZ}
    log("pipeline rounds")
    data["pipeline"] = pipeline_part(bundles, rounds)
    if agent_rounds:
        data["agent"] = agent_part(bundles, agent_rounds, seconds)
    write_results("spectral_cpu", data, render(data), COMMAND)
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agent-rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    main(args.rounds, args.agent_rounds, args.seconds)
