"""Raw LSTM scoring routes on TFLite, side by side with the naive C reference (PERFORMANCE.md).

Model: the footprint reference (window 128, 3 features, LSTM 32/16, centered;
``benchmarks/reference.py`` ``ref_w128``), the bundle ``--quantize auto``
picked plus the float32 one. Every contender reconstructs (or scores) the same
scaled windows in one worker process that never imports TensorFlow; the
contenders run in turn inside each round (interleaved, so a load burst hits all
alike) and each figure is the median over rounds of the calling thread's CPU
time per window (``time.thread_time``; the 2-thread interpreter is timed with
``time.process_time`` so its second thread counts). Ratios are per round, then
the median. Each TFLite variant's reconstruction is compared with the bundle's
(max abs difference, reported), the C loop's too.

Routes: interpreter op resolvers (default = XNNPACK delegate for the ops it
takes; without default delegates; reference kernels), 2 threads, models
exported with a fixed batch of 4/8/32 windows, an unrolled LSTM graph (built
with ``--variants`` through TensorFlow, cached in ``.work/perf/variants``),
and the Python around ``invoke`` (``Scorer.score`` vs ``score_many``).

Run: ``.venv/bin/python -m benchmarks.perf_routes`` (``--variants`` first builds
the exported variants: slow, needs TensorFlow; ``--rounds N``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, log, md_table, write_results
from benchmarks.reference import WORK

COMMAND = ".venv/bin/python -m benchmarks.perf_routes"
VARIANTS = WORK / "perf" / "variants"
WINDOW = 128
BATCHES = (4, 8, 32)
N_WINDOWS = 32


def build_variants(run_dir: Path, names: list[str]) -> None:
    """Fixed-batch and unrolled exports of the reference run (TensorFlow; cached)."""
    from converter.lstm_clip import unclip_lstm_cells
    from trainer.keras_backend import keras, tensorflow
    from trainer.rundir import read_run

    tf, k = tensorflow(), keras()
    model = read_run(run_dir).load_model()
    VARIANTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        out = VARIANTS / f"{name}.tflite"
        if out.is_file():
            continue
        batch, unroll = (1, True) if name == "unrolled_b1" else (int(name.split("_b")[1]), False)
        cfg = model.get_config()
        for layer in cfg["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"]["unroll"] = unroll
            if layer["class_name"] == "InputLayer":
                layer["config"]["batch_input_shape"] = [batch, WINDOW, 3]
        clone = k.Model.from_config(cfg)
        clone.set_weights(model.get_weights())
        fn = tf.function(lambda w, m=clone: m(w, training=False),
                         input_signature=[tf.TensorSpec([batch, WINDOW, 3], tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], clone)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        log(f"exporting {name}")
        data, _ = unclip_lstm_cells(bytes(converter.convert()))
        out.write_bytes(data)


# ----------------------------------------------------------------- worker (no TensorFlow)

def _interpreter(model: bytes, threads: int = 1, resolver: str = "AUTO") -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, num_threads=threads,
                     experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    return it


def _invoker(it: Any) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """``run(scaled [b, window, f]) -> reconstruction`` for an interpreter of batch ``b``."""
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    batch = int(it.get_input_details()[0]["shape"][0])

    def run(x: np.ndarray) -> np.ndarray:
        it.reset_all_variables()
        it.set_tensor(inp, x)
        it.invoke()
        return np.asarray(it.get_tensor(out)).reshape(x.shape)

    return run, batch


def contenders(paths: dict[str, str]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """name -> (per-window work over all windows, clock); plus raw and scaled windows."""
    from benchmarks.c_reference import CReference, build
    from benchmarks.latency import test_windows_for
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer

    auto, f32 = load_bundle(paths["auto"]), load_bundle(paths["float32"])
    raw = test_windows_for(f32.spec.window, N_WINDOWS)
    scaled = f32.scaler.transform(raw).astype(np.float32)
    out: dict[str, Any] = {}
    scorer, scorer_f32 = Scorer(auto), Scorer(f32)
    out["Scorer.score (auto bundle, production)"] = (lambda: [scorer.score(w) for w in raw], time.thread_time)
    out["Scorer.score_many, 3 windows a call"] = (
        lambda: [scorer.score_many(raw[i:i + 3]) for i in range(0, N_WINDOWS - 2, 3)], time.thread_time, 30)
    out["Scorer.reconstruct (float32)"] = (lambda: [scorer_f32.reconstruct(w) for w in scaled], time.thread_time)
    for label, threads, resolver, clock in (
            ("invoke, default resolver (XNNPACK for FC/ADD/MEAN), 1 thread", 1, "AUTO", time.thread_time),
            ("invoke, no default delegates", 1, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", time.thread_time),
            ("invoke, reference kernels", 1, "BUILTIN_REF", time.thread_time),
            ("invoke, 2 threads (process CPU)", 2, "AUTO", time.process_time)):
        run, _ = _invoker(_interpreter(f32.model_bytes, threads, resolver))
        out[label] = (lambda run=run: [run(w[None]) for w in scaled], clock)
    for path in sorted(VARIANTS.glob("*.tflite")):
        run, batch = _invoker(_interpreter(path.read_bytes()))
        label = ("invoke, unrolled LSTM graph (XNNPACK)" if "unrolled" in path.stem
                 else f"invoke, batch-{batch} export, per window")
        out[label] = (lambda run=run, b=batch: [run(scaled[i:i + b]) for i in range(0, N_WINDOWS, b)],
                      time.thread_time)
    for flavour in ("native", "baseline"):
        lib = build(flavour)
        if lib is not None:
            c = CReference(f32.model_bytes, f32.spec.window, f32.n_features, lib)
            out[f"naive C loop, -O3 {'-march=native' if flavour == 'native' else '(x86-64 baseline)'}"] = (
                lambda c=c: [c.reconstruct(w) for w in scaled], time.thread_time)
    return out, raw, scaled


def parity(paths: dict[str, str], scaled: np.ndarray) -> dict[str, float]:
    """Max abs difference of each variant's reconstruction from the float32 bundle's."""
    from benchmarks.c_reference import CReference, build
    from edge_agent.bundle import load_bundle

    f32 = load_bundle(paths["float32"])
    run, _ = _invoker(_interpreter(f32.model_bytes))
    ref = np.stack([run(w[None])[0] for w in scaled])
    diffs = {}
    for path in sorted(VARIANTS.glob("*.tflite")):
        vrun, b = _invoker(_interpreter(path.read_bytes()))
        got = np.concatenate([vrun(scaled[i:i + b]) for i in range(0, N_WINDOWS, b)])
        diffs[path.stem] = float(np.abs(got - ref).max())
    lib = build("native")
    if lib is not None:
        c = CReference(f32.model_bytes, f32.spec.window, f32.n_features, lib)
        diffs["c_native"] = float(np.abs(np.stack([c.reconstruct(w) for w in scaled]) - ref).max())
    return diffs


def worker(paths: dict[str, str], rounds: int) -> dict[str, Any]:
    work, _, scaled = contenders(paths)
    per_window: dict[str, list[float]] = {name: [] for name in work}
    for spec in work.values():  # warm-up
        spec[0]()
    for _ in range(rounds):
        for name, spec in work.items():
            fn, clock = spec[0], spec[1]
            n = spec[2] if len(spec) > 2 else N_WINDOWS
            start = clock()
            fn()
            per_window[name].append((clock() - start) / n)
    return {"per_window_s": per_window, "parity_max_abs": parity(paths, scaled),
            "tensorflow_imported": "tensorflow" in sys.modules}


# ----------------------------------------------------------------- driver

def main(rounds: int, variants: bool) -> dict[str, Any]:
    from benchmarks.reference import reference_bundles, reference_run

    run_dir = reference_run("ref_w128", window=WINDOW, hop=32, rows=60000, epochs=10)
    bundles = reference_bundles(run_dir)
    paths = {"auto": bundles["auto"]["path"], "float32": bundles["float32"]["path"]}
    if variants:
        build_variants(run_dir, [f"fused_b{b}" for b in BATCHES] + ["unrolled_b1"])
    load_before = os.getloadavg()
    log(f"timing {rounds} rounds")
    done = subprocess.run([sys.executable, "-m", "benchmarks.perf_routes", "--worker",
                           json.dumps({"paths": paths, "rounds": rounds})],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    data = {"model": {"window": WINDOW, "features": 3, "units": [32, 16], "auto_mode": bundles["auto"]["mode"]},
            "rounds": rounds, "load_before": load_before, "load_after": os.getloadavg(), **result,
            "summary": summarize(result["per_window_s"])}
    write_results("perf_routes", data, render(data), COMMAND)
    return data


def summarize(per_window: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    c_name = next((n for n in per_window if n.startswith("naive C loop, -O3 -march")), None)
    out = {}
    for name, times in per_window.items():
        row = {"median_ms": statistics.median(times) * 1e3}
        if c_name:
            row["x_naive_c"] = statistics.median(t / c for t, c in zip(times, per_window[c_name], strict=True))
        out[name] = row
    return out


def render(data: dict[str, Any]) -> str:
    rows = [(name, s["median_ms"], s.get("x_naive_c", "n/a")) for name, s in data["summary"].items()]
    table = md_table(["route (window 128 x 3, LSTM 32/16)", "thread CPU ms per window (median)",
                      "x naive C (-march=native), per-round median"], rows)
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in data["parity_max_abs"].items())
    return (table + f"\n\n{data['rounds']} interleaved rounds of {N_WINDOWS} windows; load average before "
            f"{[round(x, 2) for x in data['load_before']]}, after {[round(x, 2) for x in data['load_after']]}. "
            f"Auto bundle mode `{data['model']['auto_mode']}`. Max abs difference of each reconstruction from the "
            f"float32 bundle's: {diffs}. TensorFlow imported in the timed process: "
            f"{data['tensorflow_imported']}.\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", action="store_true", help="build the exported variants first (TensorFlow)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["paths"], spec["rounds"])))
    else:
        main(args.rounds, args.variants)
