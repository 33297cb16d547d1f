"""Spectral front-end: per-frame FFT features of raw vibration samples (numpy only).

A *frame* is ``frame`` consecutive samples; frame ``j`` of a clean run starts
at sample ``j * hop`` and ends at sample ``j * hop + frame - 1``. For each
frame and each input axis the features are, in this order:

* ``band0 .. band{B-1}``: log10 of the mean power of a Hann-windowed FFT in
  ``B`` bands whose edges are spaced on a log scale from FFT bin 1 to the
  Nyquist bin (bin 0, the DC level, is left out: gravity and sensor offset are
  not vibration). With ``normalise`` the band powers are divided by the
  frame's total power first, so the features describe the *shape* of the
  spectrum and not its level: a machine running faster vibrates more
  everywhere, a fault changes where the energy is.
* ``rms``: log10 of the frame's root mean square after its mean is removed.
* ``kurtosis``: ``mean(x^4) / mean(x^2)^2`` of the mean-removed frame (3 for
  Gaussian noise, 1.5 for a sine; impacts from a bearing defect raise it).
* ``crest``: ``max|x| / rms`` (sqrt(2) for a sine).

The same :func:`frame_features` serves the trainer (:func:`spectral_frames`,
whole arrays) and the device (:class:`Framer`, sample blocks of any size), so a
frame gets bit-identical features on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SPECTRAL_KIND = "spectral"
RAW_KIND = "raw"
FRONTEND_KINDS = (RAW_KIND, SPECTRAL_KIND)
PER_AXIS_STATS = ("rms", "kurtosis", "crest")
MIN_FRAME = 8
MAX_FRAME = 1 << 14
MAX_BANDS = 64
# Floors inside the logs: an all-zero frame (a dead axis) gives finite features.
POWER_FLOOR = 1e-20
RMS_FLOOR = 1e-10


@dataclass(frozen=True)
class SpectralSpec:
    """Frame length and hop in samples, band count, level normalisation and the input axes' names."""

    frame: int
    hop: int
    bands: int
    normalise: bool
    inputs: tuple[str, ...]
    rate_hz: float | None = None  # of the raw samples; informative (edges are in FFT bins)

    def __post_init__(self) -> None:
        if not MIN_FRAME <= int(self.frame) <= MAX_FRAME:
            raise ValueError(f"frame must be in [{MIN_FRAME}, {MAX_FRAME}] samples, got {self.frame}")
        if not 1 <= int(self.hop) <= int(self.frame):
            raise ValueError(f"hop must be in [1, frame={self.frame}] samples, got {self.hop}")
        if not 1 <= int(self.bands) <= min(MAX_BANDS, self.frame // 2):
            raise ValueError(f"bands must be in [1, {min(MAX_BANDS, self.frame // 2)}] for frame {self.frame}, "
                             f"got {self.bands}")
        if not self.inputs:
            raise ValueError("a spectral front-end needs at least one input axis")

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def per_axis(self) -> int:
        return int(self.bands) + len(PER_AXIS_STATS)

    @property
    def n_outputs(self) -> int:
        return self.n_inputs * self.per_axis

    @property
    def output_names(self) -> list[str]:
        """``<axis>.band<k>`` ..., ``<axis>.rms``, ``<axis>.kurtosis``, ``<axis>.crest`` per axis."""
        names = []
        for axis in self.inputs:
            names += [f"{axis}.band{k}" for k in range(self.bands)]
            names += [f"{axis}.{stat}" for stat in PER_AXIS_STATS]
        return names

    def frame_rate(self, rate_hz: float | None) -> float | None:
        """Frames per second for samples at ``rate_hz`` (None stays None)."""
        return None if rate_hz is None else float(rate_hz) / int(self.hop)

    def count(self, n_samples: int) -> int:
        """Complete frames in ``n_samples`` consecutive samples."""
        return 0 if n_samples < self.frame else (n_samples - self.frame) // self.hop + 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": SPECTRAL_KIND, "frame": int(self.frame), "hop": int(self.hop), "bands": int(self.bands),
                "normalise": bool(self.normalise), "window_function": "hann", "inputs": list(self.inputs),
                "rate_hz": self.rate_hz, "outputs": self.output_names}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpectralSpec:
        rate = d.get("rate_hz")
        return cls(frame=int(d["frame"]), hop=int(d["hop"]), bands=int(d["bands"]),
                   normalise=bool(d.get("normalise", False)), inputs=tuple(str(v) for v in d["inputs"]),
                   rate_hz=None if rate is None else float(rate))


def band_edges(frame: int, bands: int) -> np.ndarray:
    """``bands + 1`` strictly increasing rFFT bin edges, log-spaced from bin 1 to the last bin (inclusive).

    Band ``k`` is bins ``[edges[k], edges[k+1])``; the last band includes the Nyquist bin. Low bands
    that a log spacing would make narrower than one bin get one bin each.
    """
    last = frame // 2 + 1  # rfft bins 0 .. frame//2; the end edge is exclusive
    ideal = np.geomspace(1.0, float(last), bands + 1)
    edges = np.rint(ideal).astype(np.int64)
    for k in range(1, bands + 1):  # at least one bin per band, walking up from bin 1
        edges[k] = max(edges[k], edges[k - 1] + 1)
    for k in range(bands - 1, -1, -1):  # and back down from the end if that overran it
        edges[k] = min(edges[k], edges[k + 1] - 1)
    edges[-1] = last
    return edges


def _band_matrix(frame: int, bands: int) -> np.ndarray:
    """``[bins, bands]`` averaging matrix: ``power @ matrix`` = mean power per band."""
    edges = band_edges(frame, bands)
    matrix = np.zeros((frame // 2 + 1, bands))
    for k in range(bands):
        matrix[edges[k]:edges[k + 1], k] = 1.0 / (edges[k + 1] - edges[k])
    return matrix


_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _tables(frame: int, bands: int) -> tuple[np.ndarray, np.ndarray]:
    key = (frame, bands)
    if key not in _CACHE:
        # Periodic Hann (the FFT convention): np.hanning(frame + 1)[:-1].
        _CACHE[key] = (np.hanning(frame + 1)[:-1, None], np.ascontiguousarray(_band_matrix(frame, bands).T))
    return _CACHE[key]


def frame_features(frames: np.ndarray, spec: SpectralSpec) -> np.ndarray:
    """Features ``[n, n_outputs]`` (float64) of ``[n, frame, axes]`` frames; see the module docstring."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != spec.frame or x.shape[2] != spec.n_inputs:
        raise ValueError(f"expected [n, {spec.frame}, {spec.n_inputs}] frames, got shape {x.shape}")
    # Few, whole-array numpy calls: on the device this runs once per frame hop and its
    # per-call overhead, not the FFT, is most of the cost.
    n, length, n_bands = x.shape[0], spec.frame, spec.bands
    hann, band_rows = _tables(length, n_bands)
    x = x - x.sum(axis=1, keepdims=True) * (1.0 / length)
    spectrum = np.fft.rfft(x * hann, axis=1)  # [n, bins, axes]
    power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
    band_power = np.matmul(band_rows, power)  # [n, bands, axes]: mean power per band
    if spec.normalise:
        total = power[:, 1:, :].sum(axis=1, keepdims=True)  # DC left out, as in the bands
        band_power /= np.maximum(total, POWER_FLOOR)
    out = np.empty((n, n_bands + len(PER_AXIS_STATS), spec.n_inputs))
    np.log10(np.maximum(band_power, POWER_FLOOR), out=out[:, :n_bands])
    square = x * x
    mean_square = square.sum(axis=1) * (1.0 / length)  # [n, axes]
    live = mean_square > RMS_FLOOR * RMS_FLOOR
    safe_ms = np.where(live, mean_square, 1.0)
    rms = np.sqrt(safe_ms)
    out[:, n_bands] = np.where(live, np.log10(rms), np.log10(RMS_FLOOR))
    out[:, n_bands + 1] = np.where(live, (square * square).sum(axis=1) * (1.0 / length) / (safe_ms * safe_ms), 0.0)
    out[:, n_bands + 2] = np.where(live, np.abs(x).max(axis=1) / rms, 0.0)
    return out.transpose(0, 2, 1).reshape(n, spec.n_outputs)


def spectral_frames(values: np.ndarray, spec: SpectralSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features of every complete frame of ``[samples, axes]`` and each frame's last sample index."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = spec.count(x.shape[0])
    ends = np.arange(n, dtype=np.int64) * spec.hop + (spec.frame - 1)
    if n == 0:
        return np.empty((0, spec.n_outputs)), ends
    views = np.lib.stride_tricks.sliding_window_view(x, spec.frame, axis=0)[:: spec.hop][:n]  # [n, axes, frame]
    return frame_features(views.transpose(0, 2, 1), spec), ends


class Framer:
    """Streaming frames: push sample blocks of any size, get the frames they complete.

    Keeps the last ``frame - 1`` samples of the run so a frame that spans two
    blocks is the same frame as in one array; the features of a frame are
    computed once, when its last sample arrives (:func:`frame_features` on the
    frames completed by the block).
    """

    def __init__(self, spec: SpectralSpec) -> None:
        self.spec = spec
        self._tail = np.empty((0, spec.n_inputs), dtype=np.float64)
        self._next_start = 0  # sample index (in the run) where the next frame starts
        self._seen = 0  # samples of the run so far

    def reset(self) -> None:
        """A gap: the next frame starts at the next sample."""
        self._tail = np.empty((0, self.spec.n_inputs), dtype=np.float64)
        self._next_start = 0
        self._seen = 0

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features ``[m, n_outputs]`` of the frames completed by ``samples`` and their end positions in the block."""
        block = np.asarray(samples, dtype=np.float64).reshape(-1, self.spec.n_inputs)
        tail_start = self._seen - len(self._tail)  # run index of self._tail[0]
        joined = np.concatenate([self._tail, block]) if len(self._tail) else block
        self._seen += len(block)
        frame, hop = self.spec.frame, self.spec.hop
        starts = np.arange(self._next_start, self._seen - frame + 1, hop, dtype=np.int64)
        if len(starts):
            # The completed frames as one strided view [m, frame, axes] (no copy; sliding_window_view's
            # Python overhead was a fifth of the front-end's cost at 1 kHz).
            first = joined[int(starts[0] - tail_start):]
            row, col = first.strides
            views = np.lib.stride_tricks.as_strided(first, shape=(len(starts), frame, first.shape[1]),
                                                    strides=(hop * row, row, col), writeable=False)
            features = frame_features(views, self.spec)
            self._next_start = int(starts[-1]) + hop
        else:
            features = np.empty((0, self.spec.n_outputs))
        keep_from = max(self._next_start, self._seen - frame + 1) - tail_start  # oldest sample still needed
        self._tail = joined[max(0, keep_from):].copy()
        block_start = self._seen - len(block)
        return features, starts + frame - 1 - block_start
