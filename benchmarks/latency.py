"""Benchmark 1: scoring latency per window, edge runtime vs Keras vs IsolationForest.

Reference model: LSTM autoencoder, 3 features, window 64, units 32/16 (see
``benchmarks/reference.py``). Every timed call scores ONE raw window the way
each tool would on a device, including scaling and the error computation:

- edge: ``edge_agent.runtime.Scorer.score`` (scale, reset LSTM state, invoke,
  score), ``num_threads=1``, one bundle per quantization mode plus the one
  ``--quantize auto`` picks. Timed in a separate Python process that never
  imports TensorFlow (as on the device), modes interleaved in rounds.
- Keras ``model.predict(window[None])`` (what most users write) and the direct
  call ``model(window[None], training=False)``, TensorFlow's default threading.
- IsolationForest: the trainer's baseline (100 trees) scoring one window
  (``raw_window_scores`` -> sklearn ``score_samples``).

Run: ``.venv/bin/python -m benchmarks.latency`` (add ``--quick`` for fewer calls).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, log, md_table, stats_ms, time_calls, write_results

COMMAND = ".venv/bin/python -m benchmarks.latency"


def edge_worker(bundles: dict[str, str], windows_path: str, rounds: int, per_round: int) -> dict[str, Any]:
    """Time ``Scorer.score`` per bundle, modes interleaved so load bursts hit all alike."""
    from edge_agent.bundle import load_bundle
    from edge_agent.runtime import Scorer

    windows = np.load(windows_path, allow_pickle=False)
    scorers = {name: Scorer(load_bundle(path), num_threads=1) for name, path in bundles.items()}
    times: dict[str, list[float]] = {name: [] for name in scorers}
    for scorer in scorers.values():
        time_calls(scorer.score, list(windows[:20]), warmup=20)
    for r in range(rounds):
        batch = [windows[(r * per_round + i) % len(windows)] for i in range(per_round)]
        for name, scorer in scorers.items():
            times[name] += time_calls(scorer.score, batch, warmup=0)
    backend = next(iter(scorers.values())).backend if scorers else None
    return {"backend": backend, "tensorflow_imported": "tensorflow" in sys.modules,
            "latency": {name: stats_ms(t) for name, t in times.items()}}


def time_edge(bundles: dict[str, str], windows: np.ndarray, rounds: int, per_round: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "windows.npy"
        np.save(path, windows, allow_pickle=False)
        spec = json.dumps({"bundles": bundles, "windows": str(path), "rounds": rounds, "per_round": per_round})
        out = subprocess.run([sys.executable, "-m", "benchmarks.latency", "--edge-worker", spec],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_keras(run_dir: Path, windows: np.ndarray, calls: int) -> dict[str, Any]:
    """Keras predict() and direct call on single windows, with the same scaling and scoring."""
    from edge_agent.core import score_windows
    from trainer.rundir import read_run

    run = read_run(run_dir)
    model = run.load_model()
    scaler, fn, weights = run.scaler, run.score_function, run.score_weights

    def via_predict(w: np.ndarray) -> float:
        s = scaler.transform(w).astype(np.float32)
        recon = model.predict(s[None], verbose=0)
        return float(score_windows(s[None], recon, fn, weights)[0][0])

    def via_call(w: np.ndarray) -> float:
        s = scaler.transform(w).astype(np.float32)
        recon = np.asarray(model(s[None], training=False))
        return float(score_windows(s[None], recon, fn, weights)[0][0])

    batch = [windows[i % len(windows)] for i in range(calls)]
    return {"keras_predict": stats_ms(time_calls(via_predict, batch, warmup=10)),
            "keras_call": stats_ms(time_calls(via_call, batch, warmup=10))}


def time_isolation_forest(run_dir: Path, windows: np.ndarray, calls: int) -> dict[str, Any]:
    from trainer.baseline import baseline_from_run
    from trainer.rundir import read_run

    base = baseline_from_run(read_run(run_dir))
    batch = [windows[i % len(windows)] for i in range(calls)]
    return {"isolation_forest": stats_ms(time_calls(base.raw_window_scores, batch, warmup=5)),
            "n_estimators": base.n_estimators}


def test_windows(run_dir: Path, n: int = 400) -> np.ndarray:
    """Raw windows from fresh synthetic data (with faults, so some windows are anomalous)."""
    from trainer.rundir import read_run

    return test_windows_for(read_run(run_dir).spec.window, n)


def test_windows_for(window: int, n: int = 400) -> np.ndarray:
    """:func:`test_windows` for a window length (no run directory, no trainer import)."""
    from benchmarks.reference import vibration
    from edge_agent.core import WindowSpec, sliding_windows

    values, _ = vibration(window * 2 + n * 16, seed=7, faults=True)
    windows = sliding_windows(values, WindowSpec(window, 16))[:n]
    return np.ascontiguousarray(windows, dtype=np.float64)


def main(quick: bool = False) -> dict[str, Any]:
    from benchmarks.reference import reference_bundles, reference_run

    run_dir = reference_run("ref_w64", window=64, hop=1)
    bundles = reference_bundles(run_dir)
    paths = {m: b["path"] for m, b in bundles.items() if b.get("path")}
    windows = test_windows(run_dir)
    rounds, per_round = (5, 100) if quick else (10, 200)
    log(f"timing edge scorer for {sorted(paths)}")
    edge = time_edge(paths, windows, rounds, per_round)
    log("timing Keras")
    keras_t = time_keras(run_dir, windows, 50 if quick else 200)
    log("timing IsolationForest")
    iforest = time_isolation_forest(run_dir, windows, 100 if quick else 500)
    from benchmarks.reference import parity_by_mode

    data = {"reference": {"run": str(run_dir), "window": 64, "features": 3, "units": [32, 16]},
            "parity": parity_by_mode(bundles),
            "auto_mode": bundles.get("auto", {}).get("mode"), "edge": edge,
            "keras": keras_t, "isolation_forest": iforest,
            "bundles": {m: {k: v for k, v in b.items() if k != "table"} for m, b in bundles.items()},
            "tf_threads": "default (inter/intra op = all cores)", "edge_threads": 1,
            "cpus": os.cpu_count()}
    write_results("latency", data, render(data), COMMAND)
    return data


def render(data: dict[str, Any]) -> str:
    edge = data["edge"]["latency"]
    kp = data["keras"]["keras_predict"]["median_ms"]
    kc = data["keras"]["keras_call"]["median_ms"]
    rows = []
    for name, s in edge.items():
        label = f"edge `{name}`" + (f" (= {data['auto_mode']})" if name == "auto" else "")
        p = data["parity"].get(data["auto_mode"] if name == "auto" else name) or {}
        label += "" if p.get("passed") is not False else " (fails parity)"
        rows.append((label, s["median_ms"], s["p99_ms"], kp / s["median_ms"], kc / s["median_ms"]))
    for label, s in (("Keras `model.predict(w[None])`", data["keras"]["keras_predict"]),
                     ("Keras `model(w[None])`", data["keras"]["keras_call"]),
                     ("IsolationForest `score_samples` (100 trees)", data["isolation_forest"]["isolation_forest"])):
        rows.append((label, s["median_ms"], s["p99_ms"], kp / s["median_ms"], kc / s["median_ms"]))
    table = md_table(["scorer (one window, 64x3)", "median ms", "p99 ms", "x faster than predict",
                      "x faster than model()"], rows)
    return (table + f"\n\nEdge runtime backend: {data['edge']['backend']}, 1 thread, TensorFlow imported in the "
            f"timed process: {data['edge']['tensorflow_imported']}. Keras: TensorFlow default threads on "
            f"{data['cpus']} CPUs. Samples per scorer: edge {next(iter(edge.values()))['samples']}, "
            f"Keras {data['keras']['keras_predict']['samples']}.\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--edge-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edge_worker:
        spec = json.loads(args.edge_worker)
        print(json.dumps(edge_worker(spec["bundles"], spec["windows"], spec["rounds"], spec["per_round"])))
    else:
        main(quick=args.quick)
