"""Synthetic 3-axis vibration of a rotating machine (numpy only), with optional faults.

The normal signal, in g, axes x, y (radial) and z (axial, carrying gravity):

- shaft harmonics 1x, 2x, 3x of a 25-30 Hz shaft (speed wanders by a few tenths
  of a percent; the phase is the exact integral of that speed), per-axis
  amplitudes and phases drawn from the seed, plus a weak gear-mesh tone at 11x
  when it fits below Nyquist;
- slow load modulation of the amplitudes (+-5 %, ~31 s period);
- slow offset drift per axis (temperature: ~10 min and ~47 s periods, ~0.02 g);
- white sensor noise (~0.03 g) and 1 g of gravity on z.

Everything except the noise is a function of the sample time, and the noise is
drawn row by row from its own generator, so the stream can be produced in chunks
of any size and still equal the one-shot array (:class:`SyntheticSource` relies
on that).

``faults=True`` injects four faults into separate segments, in this order, all
inside the last 60 % of the rows (rows ``[0, 0.4 * n_rows)`` are always normal, so
callers can train on a head slice): bearing-impact bursts (decaying resonance
ringing at the outer-race defect rate, 3.57x shaft), growing imbalance (1x
amplitude on x/y ramping up to 4x), spikes (single-sample +-2.5..4 g on random
axes), and a flat-lined y axis (stuck at its first value). Rows outside the
returned ``fault_ranges`` are identical to the ``faults=False`` signal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edge_agent.sources.replay import PacedRows

AXES = ["x", "y", "z"]
HARMONIC_AMPLITUDES_G = np.array([[0.50, 0.20, 0.08],   # x: 1x, 2x, 3x
                                  [0.40, 0.25, 0.06],   # y
                                  [0.15, 0.10, 0.05]])  # z
NOISE_G = np.array([0.03, 0.03, 0.025])
GRAVITY_G = np.array([0.0, 0.0, 1.0])
BPFO_ORDER = 3.57  # outer-race defect frequency of a typical deep-groove bearing, in shaft orders
MIN_ROWS_WITH_FAULTS = 500


class VibrationModel:
    """The normal signal as a stream: :meth:`take` returns the next ``k`` rows."""

    def __init__(self, rate_hz: float = 1000.0, seed: int = 0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        params, noise, self.fault_seed = np.random.SeedSequence(int(seed)).spawn(3)
        rng = np.random.default_rng(params)
        self.rate_hz = float(rate_hz)
        self.shaft_hz = float(rng.uniform(25.0, 30.0))
        self.amplitudes = HARMONIC_AMPLITUDES_G * rng.uniform(0.85, 1.15, size=(3, 3))
        self.phases = rng.uniform(0.0, 2 * np.pi, size=(3, 3))
        self.mesh_amplitude = 0.03 if 11 * self.shaft_hz < 0.45 * self.rate_hz else 0.0
        self.mesh_phase = rng.uniform(0.0, 2 * np.pi, size=3)
        # (relative amplitude, period s, phase) of the speed wander
        self.wander = [(0.004, 23.0, rng.uniform(0, 2 * np.pi)), (0.002, 7.0, rng.uniform(0, 2 * np.pi))]
        self.load_phase = float(rng.uniform(0, 2 * np.pi))
        self.drift_phases = rng.uniform(0.0, 2 * np.pi, size=(2, 3))
        self._noise = np.random.default_rng(noise)
        self.position = 0

    def shaft_phase(self, t: np.ndarray) -> np.ndarray:
        """Integral of 2*pi*f(t) with f = shaft_hz * (1 + sum e*cos(w*t + p))."""
        phase = t.copy()
        for rel, period, p in self.wander:
            w = 2 * np.pi / period
            phase += rel / w * (np.sin(w * t + p) - np.sin(p))
        return 2 * np.pi * self.shaft_hz * phase

    def harmonic(self, phase: np.ndarray, order: int, axis: int) -> np.ndarray:
        wave: np.ndarray = self.amplitudes[axis, order - 1] * np.sin(order * phase + self.phases[axis, order - 1])
        return wave

    def load(self, t: np.ndarray) -> np.ndarray:
        return 1.0 + 0.05 * np.sin(2 * np.pi * t / 31.0 + self.load_phase)

    def take(self, k: int) -> np.ndarray:
        t = (self.position + np.arange(k, dtype=np.float64)) / self.rate_hz
        self.position += k
        phase = self.shaft_phase(t)
        load = self.load(t)
        out = np.empty((k, 3), dtype=np.float64)
        for axis in range(3):
            tone = sum(self.harmonic(phase, order, axis) for order in (1, 2, 3))
            tone = tone + self.mesh_amplitude * np.sin(11 * phase + self.mesh_phase[axis])
            drift = (0.02 * np.sin(2 * np.pi * t / 600.0 + self.drift_phases[0, axis])
                     + 0.008 * np.sin(2 * np.pi * t / 47.0 + self.drift_phases[1, axis]))
            out[:, axis] = load * tone + drift + GRAVITY_G[axis]
        out += self._noise.standard_normal((k, 3)) * NOISE_G
        return out


def fault_segments(n_rows: int) -> list[tuple[int, int]]:
    """Four inclusive row ranges in the last 60 % of ``n_rows``, centred in equal slots."""
    head = int(0.4 * n_rows)
    slot = (n_rows - head) / 4.0
    length = max(20, int(0.06 * n_rows))
    out = []
    for i in range(4):
        start = int(head + i * slot + (slot - length) / 2)
        out.append((start, start + length - 1))
    return out


def _bearing_impacts(model: VibrationModel, t: np.ndarray, phase: np.ndarray) -> np.ndarray:
    resonance = min(0.3 * model.rate_hz, 3000.0)
    tau = 3.0 / resonance
    period = 1.0 / (BPFO_ORDER * model.shaft_hz)
    since = np.mod(t - t[0], period)
    ring = np.exp(-since / tau) * np.sin(2 * np.pi * resonance * since)
    load_zone = 0.6 + 0.4 * np.cos(phase)  # impacts are strongest when the defect is loaded
    impacts: np.ndarray = (ring * load_zone)[:, None] * np.array([0.8, 0.6, 0.3])
    return impacts


def _apply_faults(values: np.ndarray, model: VibrationModel) -> list[tuple[int, int]]:
    rng = np.random.default_rng(model.fault_seed)
    (a0, a1), (b0, b1), (c0, c1), (d0, d1) = segments = fault_segments(len(values))
    t = np.arange(len(values), dtype=np.float64) / model.rate_hz
    phase = model.shaft_phase(t)
    sl = slice(a0, a1 + 1)
    values[sl] += _bearing_impacts(model, t[sl], phase[sl])
    sl = slice(b0, b1 + 1)
    ramp = np.linspace(0.0, 3.0, b1 - b0 + 1)  # extra 1x amplitude: 1x -> 4x
    for axis in (0, 1):
        values[sl, axis] += ramp * model.load(t[sl]) * model.harmonic(phase[sl], 1, axis)
    n_spikes = max(3, (c1 - c0 + 1) // 40)
    rows = np.unique(np.concatenate([[c0, c1], rng.integers(c0, c1 + 1, size=n_spikes - 2)]))
    axes = rng.integers(0, 3, size=len(rows))
    values[rows, axes] += rng.choice([-1.0, 1.0], size=len(rows)) * rng.uniform(2.5, 4.0, size=len(rows))
    values[d0:d1 + 1, 1] = values[d0, 1]  # y stuck at its last reading
    return segments


def generate_vibration(n_rows: int, rate_hz: float = 1000.0, seed: int = 0,
                       faults: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(values float64 [n_rows, 3] in g (x, y, z), fault_ranges)``; see the module docstring.

    ``fault_ranges`` are inclusive ``(start, end)`` row indices, empty without faults.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    if faults and n_rows < MIN_ROWS_WITH_FAULTS:
        raise ValueError(f"faults need n_rows >= {MIN_ROWS_WITH_FAULTS}, got {n_rows}")
    model = VibrationModel(rate_hz, seed)
    values = model.take(int(n_rows))
    ranges = _apply_faults(values, model) if faults else []
    return values, ranges


class SyntheticSource(PacedRows):
    """Streams :func:`generate_vibration`'s signal, fast or paced at ``rate_hz * speed``.

    ``n_rows = 0`` streams the normal signal forever (faults need a finite
    ``n_rows``: their placement depends on the length); with ``n_rows > 0`` the
    stream ends after that many rows unless ``loop``. ``fault_ranges`` holds the
    injected faults' row ranges (of one pass).
    """

    def __init__(self, *, rate_hz: float = 1000.0, seed: int = 0, faults: bool = False, n_rows: int = 0,
                 loop: bool = False, pace: str = "realtime", speed: float = 1.0, block_rows: int = 256,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 start_time: float | None = None) -> None:
        if faults and n_rows <= 0:
            raise ValueError("faults need a finite n_rows")
        super().__init__(features=list(AXES), rate_hz=rate_hz, pace=pace, speed=speed, block_rows=block_rows,
                         clock=clock, sleep=sleep, start_time=start_time)
        self.seed, self.loop, self.n_rows = int(seed), bool(loop), int(n_rows)
        self.fault_ranges: list[tuple[int, int]] = []
        self._model: VibrationModel | None = None
        self._data: np.ndarray | None = None
        self._pos = 0
        if self.n_rows > 0:
            self._data, self.fault_ranges = generate_vibration(self.n_rows, rate_hz, self.seed, faults)
        else:
            self._model = VibrationModel(rate_hz, self.seed)

    def _take(self, k: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        if self._model is not None:
            return self._model.take(k), None
        assert self._data is not None
        if self._pos >= len(self._data):
            if not self.loop:
                return None
            self._pos = 0
            self.stats.extra["loops"] = self.stats.extra.get("loops", 0) + 1
        rows = self._data[self._pos:self._pos + k]
        self._pos += len(rows)
        return rows, None
