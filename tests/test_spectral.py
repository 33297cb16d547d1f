"""Spectral front-end features by hand: band of a sine, RMS, crest factor, kurtosis; streaming = batch."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.spectral import Framer, SpectralSpec, band_edges, frame_features, spectral_frames
from edge_agent.pipeline.frontend import SpectralFrontEnd
from edge_agent.quality import CleanRun

RATE = 1000.0
FRAME = 256


def _spec(normalise: bool = False, inputs: tuple[str, ...] = ("x",), bands: int = 12) -> SpectralSpec:
    return SpectralSpec(frame=FRAME, hop=FRAME // 2, bands=bands, normalise=normalise, inputs=inputs, rate_hz=RATE)


def _sine(freq_hz: float, n: int, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / RATE)


def _band_of(freq_hz: float, spec: SpectralSpec) -> int:
    edges = band_edges(spec.frame, spec.bands)
    fft_bin = int(round(freq_hz * spec.frame / RATE))
    return int(np.searchsorted(edges, fft_bin, side="right") - 1)


def test_band_edges_are_log_spaced_strictly_increasing_and_cover_bin_1_to_nyquist() -> None:
    edges = band_edges(256, 12)
    assert edges[0] == 1 and edges[-1] == 129 and len(edges) == 13
    assert np.all(np.diff(edges) >= 1)
    widths = np.diff(edges)
    assert widths[-1] > 10 * widths[0]  # log scale: high bands are much wider
    assert np.array_equal(band_edges(16, 8), np.arange(1, 10))  # too few bins for a log spacing: one bin each


@pytest.mark.parametrize("freq_hz", [31.25, 125.0, 375.0])  # on-bin tones: bins 8, 32, 96 of 256 at 1 kHz
def test_sine_energy_is_in_its_band(freq_hz: float) -> None:
    spec = _spec()
    features, _ = spectral_frames(_sine(freq_hz, 4 * FRAME), spec)
    bands = features[:, : spec.bands]
    expected = _band_of(freq_hz, spec)
    assert np.all(np.argmax(bands, axis=1) == expected)
    # Hann leakage reaches one bin either side (maybe into a neighbouring band): the bands beyond are
    # >= 4 decades (40 dB) below.
    near = [k for k in (expected - 1, expected, expected + 1) if 0 <= k < spec.bands]
    others = np.delete(bands, near, axis=1)
    assert np.all(bands[:, expected][:, None] - others > 4.0)


def test_normalised_bands_ignore_the_level_and_rms_follows_it() -> None:
    spec = _spec(normalise=True)
    quiet, _ = spectral_frames(_sine(125.0, 2 * FRAME, 0.1), spec)
    loud, _ = spectral_frames(_sine(125.0, 2 * FRAME, 10.0), spec)
    np.testing.assert_allclose(quiet[:, : spec.bands], loud[:, : spec.bands], atol=1e-9)
    # Normalised band powers are shares of the frame's total: they sum to at most 1.
    assert np.all((10 ** loud[:, : spec.bands]).sum(axis=1) <= 1.0 + 1e-9)
    rms = spec.bands  # index of x.rms
    np.testing.assert_allclose(loud[:, rms] - quiet[:, rms], 2.0, atol=1e-9)  # log10(10 / 0.1)


def test_rms_crest_and_kurtosis_of_a_sine_by_hand() -> None:
    spec = _spec()
    amplitude = 3.0
    features, _ = spectral_frames(_sine(125.0, 2 * FRAME, amplitude) + 5.0, spec)  # the offset is removed
    log_rms, kurtosis, crest = features[0, spec.bands:]
    assert 10 ** log_rms == pytest.approx(amplitude / np.sqrt(2), rel=1e-9)
    assert crest == pytest.approx(np.sqrt(2), rel=1e-9)  # 32 whole periods: the peak is sampled exactly
    assert kurtosis == pytest.approx(1.5, rel=1e-9)  # mean(sin^4) / mean(sin^2)^2 = (3/8) / (1/4)


def test_kurtosis_of_gaussian_noise_is_3_and_impacts_raise_it_and_the_crest() -> None:
    spec = _spec()
    noise = np.random.default_rng(0).normal(0.0, 1.0, size=200 * FRAME)
    features, _ = spectral_frames(noise, spec)
    kurtosis, crest = features[:, spec.bands + 1], features[:, spec.bands + 2]
    assert np.median(kurtosis) == pytest.approx(3.0, abs=0.15)
    impacts = noise.copy()
    impacts[:: FRAME // 4] += 12.0  # a bearing defect: sharp impacts every quarter frame
    hit, _ = spectral_frames(impacts, spec)
    assert np.median(hit[:, spec.bands + 1]) > 2 * np.median(kurtosis)
    assert np.median(hit[:, spec.bands + 2]) > 1.5 * np.median(crest)


def test_dead_axis_gives_finite_features() -> None:
    spec = _spec(normalise=True, inputs=("x", "y"))
    values = np.column_stack([_sine(125.0, 2 * FRAME), np.zeros(2 * FRAME)])
    features, _ = spectral_frames(values, spec)
    assert np.isfinite(features).all()
    y = features[:, spec.per_axis:]
    assert np.all(y[:, spec.bands + 1:] == 0.0)  # kurtosis and crest of nothing: 0


def test_feature_names_and_layout_per_axis() -> None:
    spec = _spec(inputs=("x", "y", "z"), bands=4)
    assert spec.output_names[:7] == ["x.band0", "x.band1", "x.band2", "x.band3", "x.rms", "x.kurtosis", "x.crest"]
    assert spec.n_outputs == 21 and len(spec.output_names) == 21
    assert SpectralSpec.from_dict(spec.to_dict()) == spec
    values = np.column_stack([_sine(125.0, FRAME), 2 * _sine(125.0, FRAME), _sine(375.0, FRAME)])
    one = frame_features(values[None], spec)[0]
    assert one[4 + 7] - one[4] == pytest.approx(np.log10(2.0))  # y.rms - x.rms


@pytest.mark.parametrize("sizes", [(1,), (7, 300, 2), (FRAME // 2,), (5000,), (129, 1, 64, 1000)])
def test_framer_gives_the_batch_frames_for_any_block_sizes(sizes: tuple[int, ...]) -> None:
    spec = _spec(inputs=("x", "y", "z"))
    values = np.random.default_rng(1).normal(size=(3000, 3))
    expected, expected_ends = spectral_frames(values, spec)
    framer, got, ends, start, i = Framer(spec), [], [], 0, 0
    while start < len(values):
        block = values[start:start + sizes[i % len(sizes)]]
        features, local_ends = framer.push(block)
        got.append(features)
        ends.extend(local_ends + start)
        start, i = start + len(block), i + 1
    assert np.array_equal(np.concatenate(got), expected)  # bit for bit: the same code on the same frames
    assert np.array_equal(ends, expected_ends)


def test_frontend_rows_are_the_frames_last_sample_and_a_reset_starts_a_new_frame() -> None:
    spec = _spec()
    frontend = SpectralFrontEnd(spec)
    values = _sine(125.0, 900).astype(np.float32)[:, None]
    rows = np.arange(100, 1000, dtype=np.int64)
    first = frontend.apply(CleanRun(values[:300], rows[:300].astype(float), False, rows[:300]))
    assert list(first.rows) == [100 + FRAME - 1]  # one frame ends inside the first 300 samples
    second = frontend.apply(CleanRun(values[300:], rows[300:].astype(float), True, rows[300:]))
    # After the reset the next frame starts at the run's first sample (row 400 -> ends 655), not at 228.
    assert second.reset_before and list(second.rows) == [655, 783, 911]
    assert second.values.dtype == np.float32 and second.values.shape == (3, spec.n_outputs)


def test_bad_parameters_are_refused() -> None:
    for kwargs, needle in [({"frame": 4}, "frame"), ({"hop": 0}, "hop"), ({"hop": 300}, "hop"),
                           ({"bands": 200}, "bands"), ({"inputs": ()}, "input")]:
        params = {"frame": FRAME, "hop": 128, "bands": 12, "normalise": False, "inputs": ("x",), **kwargs}
        with pytest.raises(ValueError, match=needle):
            SpectralSpec(**params)  # type: ignore[arg-type]
