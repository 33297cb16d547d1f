"""Analytic FLOPs of the autoencoders per window, and this machine's single-core peak.

FLOPs count a multiply-add as 2. Per LSTM time step with input width ``d`` and
``u`` units: the four gate matmuls ``2*4*u*(d+u)``, their bias ``4u``, the gate
activations (3 sigmoid + 2 tanh, one FLOP each) ``5u``, and the cell/hidden
updates ``c = f*c + i*g`` (3u) and ``h = o*tanh(c)`` (u). The encoder's last
LSTM runs every step even though only its last output is kept. The reconstruction
head is a Dense ``u -> f`` per step. The score adds ``3*window*f`` (subtract,
square, sum). Transcendentals cost more than 1 FLOP in practice; they are a
small share here (< 2%), so the count stays a lower bound close to the truth.

Peak: the best sustained float32 matmul rate numpy's BLAS reaches on one thread
(a fresh interpreter with OPENBLAS/OMP/MKL threads = 1 and CPU affinity pinned
to one core), next to the theoretical FMA peak from the clock and SIMD width.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.common import cpu_flags, cpu_mhz


def lstm_step_flops(d: int, u: int) -> int:
    return 2 * 4 * u * (d + u) + 4 * u + 5 * u + 4 * u


def lstm_ae_flops(window: int, n_features: int, units: Sequence[int]) -> dict[str, int]:
    """FLOPs per window for trainer.model's LSTM autoencoder, by layer."""
    layers: dict[str, int] = {}
    d = n_features
    for i, u in enumerate(units):
        name = "latent" if i == len(units) - 1 else f"enc_{i}"
        layers[name] = window * lstm_step_flops(d, u)
        d = u
    for i, u in enumerate(reversed(units)):
        layers[f"dec_{i}"] = window * lstm_step_flops(d, u)
        d = u
    layers["reconstruction"] = window * (2 * d * n_features + n_features)
    layers["score"] = 3 * window * n_features
    layers["total"] = sum(layers.values())
    return layers


def lstm_ae_params(n_features: int, units: Sequence[int]) -> int:
    """Parameter count (to cross-check the FLOP formula's shapes against Keras)."""
    total, d = 0, n_features
    for u in list(units) + list(reversed(units)):
        total += 4 * u * (d + u + 1)
        d = u
    return total + d * n_features + n_features


_PEAK_SCRIPT = r"""
import json, time, numpy as np
rng = np.random.default_rng(0)
best = {}
for n in (256, 512, 1024):
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    reps = max(3, int(2e9 / (2 * n ** 3)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        rates.append(2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
    best[n] = max(rates)
print(json.dumps(best))
"""


def measured_peak_gflops() -> dict[str, Any]:
    """Single-thread numpy float32 matmul GFLOP/s (best of 5, per matrix size)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _PEAK_SCRIPT]
    if hasattr(os, "sched_getaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    rates = {int(k): v for k, v in json.loads(out.stdout).items()}
    return {"gflops_by_size": rates, "gflops": max(rates.values())}


def theoretical_peak_gflops() -> dict[str, Any]:
    """Clock x float32 lanes x 2 (FMA) x 2 FMA ports; an upper bound, turbo not known."""
    flags, mhz = cpu_flags(), cpu_mhz()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    per_cycle = lanes * fma * 2  # two FMA/vector ports per core on recent x86 cores
    return {"flop_per_cycle": per_cycle, "mhz": mhz,
            "gflops": None if mhz is None else per_cycle * mhz / 1e3}


if __name__ == "__main__":
    print(json.dumps({"flops_3f_64_32_16": lstm_ae_flops(64, 3, (32, 16)),
                      "params": lstm_ae_params(3, (32, 16)),
                      "measured": measured_peak_gflops(), "theoretical": theoretical_peak_gflops()}, indent=1))
