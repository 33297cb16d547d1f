"""Pick a window length from the data when the default does not fit the training slice.

The dominant period is the lag of the first autocorrelation peak after the
first zero crossing that reaches 90% of the highest one there (the fundamental,
not one of its multiples, which a spike or noise can make marginally higher);
a signal without a zero crossing, a trend or random walk, has no period. A window of about one period
holds one cycle; it is bounded to
[MIN_AUTO_WINDOW, the largest window the slice allows].
"""

from __future__ import annotations

import numpy as np

MIN_AUTO_WINDOW = 16
MAX_AUTO_WINDOW = 128
MIN_PEAK_CORRELATION = 0.2  # weaker peaks are noise, not a period
FUNDAMENTAL_SHARE = 0.9


def dominant_period(values: np.ndarray, max_lag: int | None = None) -> int | None:
    """Dominant period in rows (mean over features' strongest), or None when there is none."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    periods = [p for p in (_period_1d(x[:, j], max_lag) for j in range(x.shape[1])) if p is not None]
    return round(float(np.median(periods))) if periods else None


def _period_1d(x: np.ndarray, max_lag: int | None) -> int | None:
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 8:
        return None
    x = x - x.mean()
    power = float(np.dot(x, x))
    if power <= 1e-12:
        return None
    lag_limit = min(n // 2, max_lag or n // 2)
    spectrum = np.fft.rfft(x, 2 * n)  # zero-padded: linear, not circular, correlation
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: lag_limit + 1] / power
    below = np.flatnonzero(acf < 0)
    if below.size == 0:
        return None
    start = int(below[0])
    if start >= lag_limit:
        return None
    tail = acf[start:]
    best = float(tail.max())
    if best < MIN_PEAK_CORRELATION or start + int(np.argmax(tail)) >= lag_limit:
        return None
    inner = np.arange(1, len(tail) - 1)
    peaks = inner[(tail[inner] >= tail[inner - 1]) & (tail[inner] >= tail[inner + 1])
                  & (tail[inner] >= FUNDAMENTAL_SHARE * best)]
    return start + int(peaks[0]) if peaks.size else start + int(np.argmax(tail))


def largest_window(n_rows: int, validation_fraction: float, hop: int, min_heldout_windows: int) -> int:
    """Largest window for which ``n_rows`` leave 2 fitted and ``min_heldout_windows`` held-out windows."""
    n_held = round(n_rows * validation_fraction)
    n_fit = n_rows - n_held
    return max(min(n_held - (min_heldout_windows - 1) * hop, n_fit - hop), 0)


def auto_window(values: np.ndarray, upper: int) -> tuple[int, int | None]:
    """(window, period or None) for a slice whose largest feasible window is ``upper``."""
    upper = min(upper, MAX_AUTO_WINDOW)
    period = dominant_period(values)
    if period is None:
        return upper, None
    return int(min(max(period, MIN_AUTO_WINDOW), upper)), period
