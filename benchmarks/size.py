"""Benchmark 3: model size per quantization mode and effective compute rate vs single-core peak.

For the reference model (3 features, window 64, units 32/16): the ``.vigil``
bundle size and the TFLite flatbuffer size per mode; the analytic FLOPs per
window (``benchmarks/flops.py``, cross-checked against Keras' parameter count);
the per-window latency through ``Scorer.score`` (1 thread, separate process
without TensorFlow); the effective rate FLOPs / latency; and that rate as a
share of this machine's single-core peak, measured as the best single-thread
numpy float32 matmul rate (OpenBLAS, 1 thread, pinned to one CPU) and computed
theoretically from the base clock and SIMD width.

Run: ``.venv/bin/python -m benchmarks.size``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import log, md_table, write_results
from benchmarks.flops import lstm_ae_flops, lstm_ae_params, measured_peak_gflops, theoretical_peak_gflops

COMMAND = ".venv/bin/python -m benchmarks.size"
WINDOW, FEATURES, UNITS = 64, 3, (32, 16)


def model_bytes(path: str) -> int:
    from edge_agent.bundle import load_bundle

    return len(load_bundle(path).model_bytes)


def keras_params(run_dir: Path) -> int:
    from trainer.rundir import read_run

    return int(read_run(run_dir).load_model().count_params())


def main(quick: bool = False) -> dict[str, Any]:
    from benchmarks.latency import test_windows, time_edge
    from benchmarks.reference import parity_by_mode, reference_bundles, reference_run

    run_dir = reference_run("ref_w64", window=WINDOW, hop=1)
    bundles = reference_bundles(run_dir)
    paths = {m: b["path"] for m, b in bundles.items() if b.get("path")}
    log("measuring single-core peak")
    peak = measured_peak_gflops()
    theory = theoretical_peak_gflops()
    flops = lstm_ae_flops(WINDOW, FEATURES, UNITS)
    log(f"timing {sorted(paths)}")
    edge = time_edge(paths, test_windows(run_dir), *((5, 100) if quick else (10, 200)))
    parity = parity_by_mode(bundles)
    modes = {}
    for mode, path in paths.items():
        lat = edge["latency"][mode]
        rate = flops["total"] / (lat["median_ms"] / 1e3) / 1e9
        modes[mode] = {"bundle_bytes": Path(path).stat().st_size, "model_bytes": model_bytes(path),
                       "resolved_mode": bundles[mode].get("mode"), "median_ms": lat["median_ms"],
                       "parity": parity.get(bundles[mode].get("mode") or mode),
                       "p99_ms": lat["p99_ms"], "gflops": rate,
                       "share_of_measured_peak": rate / peak["gflops"],
                       "share_of_theoretical_peak": rate / theory["gflops"] if theory["gflops"] else None}
    data = {"flops_per_window": flops, "params_formula": lstm_ae_params(FEATURES, UNITS),
            "params_keras": keras_params(run_dir), "peak_measured": peak, "peak_theoretical": theory,
            "modes": modes, "failed_modes": {m: b["error"] for m, b in bundles.items() if not b.get("path")},
            "edge_backend": edge["backend"]}
    write_results("size", data, render(data), COMMAND)
    return data


def render(data: dict[str, Any]) -> str:
    f32 = data["modes"].get("float32")
    rows = []
    for mode, m in data["modes"].items():
        label = f"`{mode}`" + (f" (= {m['resolved_mode']})" if mode == "auto" else "")
        rows.append((label, m["bundle_bytes"], m["model_bytes"],
                     m["model_bytes"] / f32["model_bytes"] if f32 else None, m["median_ms"],
                     m["median_ms"] / f32["median_ms"] if f32 else None, m["gflops"],
                     100 * m["share_of_measured_peak"], _parity_cell(m.get("parity"))))
    table = md_table(["mode", "bundle bytes", "tflite bytes", "size vs float32", "median ms/window",
                      "latency vs float32", "effective GFLOP/s", "% of 1-core peak",
                      "parity (worst Spearman, flipped)"], rows)
    fl = data["flops_per_window"]
    peak, theory = data["peak_measured"], data["peak_theoretical"]
    failed = "".join(f"\n- `{m}` could not be made: {e}" for m, e in data["failed_modes"].items())
    return (table + f"\n\nFLOPs per window (analytic, multiply-add = 2): {fl['total']:,} "
            f"({', '.join(f'{k} {v:,}' for k, v in fl.items() if k != 'total')}). Parameters: formula "
            f"{data['params_formula']:,}, Keras {data['params_keras']:,}.\n\n"
            f"Single-core peak: measured {peak['gflops']:.1f} GFLOP/s (best single-thread numpy float32 "
            f"matmul, sizes {sorted(peak['gflops_by_size'])}); theoretical {theory['gflops']:.1f} GFLOP/s "
            f"({theory['flop_per_cycle']} FLOP/cycle x {theory['mhz']:.0f} MHz base clock). The % column uses "
            f"the measured peak.{failed}\n")


def _parity_cell(p: dict[str, Any] | None) -> str:
    if not p or p.get("passed") is None:
        return "n/a"
    verdict = "pass" if p["passed"] else "**FAIL**"
    return f"{verdict} ({p['spearman']:.4f}, {100 * p['flipped_share']:.2f}%)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
