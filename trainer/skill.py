"""Skill ratio: does the autoencoder reconstruct more than each window's level?

``skill_ratio = mean score of the model's reconstructions / mean score of the
trivial reconstruction`` on held-out windows, where the trivial reconstruction
replaces every window by its own per-feature mean. Both are computed in the
scaled space with the run's score function and weights, so the ratio is what
the threshold sees. 1.0 means the model is no better than "the window's mean";
an anomaly detector at that ratio ranks windows by their variance.

Warning limit 0.8: the model must remove at least a fifth of the error that is
left after subtracting each window's mean. Measured on 4 real series
(benchmarks/notes/skill.md) the models that learnt shape reached 0.26-0.59,
the skill-less ones 1.09-45 (previous defaults) and the stalled ones 0.83-0.90
(best epoch 2-12 of a too-short run, or an early stop at epoch 11); 0.8 sits
between the groups, with a 0.2 margin above the worst trained series.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core import score_windows

SKILL_WARN_LIMIT = 0.8
# Below this lag-1 autocorrelation of the in-window deviations a window is noise around its level:
# nothing in it is predictable from its neighbours, so no reconstruction beats the mean. Measured on the
# held-out windows of the team's 23 series (benchmarks/notes/skill.md): 18 at 0.75-0.99, the other five
# -0.43 to 0.35 (TEK14's quiet held-out tail 0.08, NAB cpu_utilization 0.35, ec2_request_latency -0.43,
# rogue_agent_key_hold -0.13, rogue_agent_key_updown flat).
NOISE_AUTOCORRELATION = 0.5


def trivial_reconstruction(windows: np.ndarray) -> np.ndarray:
    """Every window replaced by its own per-feature mean ``[n, window, f]``."""
    w = np.asarray(windows, dtype=np.float64)
    return np.broadcast_to(w.mean(axis=1, keepdims=True), w.shape)


def skill_ratio(windows: np.ndarray, reconstructions: np.ndarray, fn: str = "mse",
                weights: list[float] | None = None) -> float:
    """Model error / trivial error on the same windows (NaN when the trivial error is 0).

    A trivial error of 0 means every held-out window is flat: nothing to reconstruct
    beyond the level, so no ratio is defined.
    """
    if len(windows) == 0:
        return float("nan")
    model, _ = score_windows(windows, reconstructions, fn, weights)
    trivial, _ = score_windows(windows, trivial_reconstruction(windows), fn, weights)
    denominator = float(np.mean(trivial))
    if not np.isfinite(denominator) or denominator <= 1e-12:
        return float("nan")
    return float(np.mean(model)) / denominator


def deviation_autocorrelation(windows: np.ndarray) -> float | None:
    """Lag-1 autocorrelation of the windows' deviations from their own means (None when they are flat)."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3 or w.shape[1] < 3:
        return None
    dev = w - w.mean(axis=1, keepdims=True)
    power = float(np.sum(dev * dev))
    if power <= 1e-12:
        return None
    return float(np.sum(dev[:, 1:] * dev[:, :-1]) / power)


def skill_warning(ratio: float, best_epoch: int, epochs_run: int, window: int,
                  period: int | None, autocorrelation: float | None = None) -> str | None:
    """One line naming the likely cause when ``ratio`` is above the limit, else None."""
    if not np.isfinite(ratio) or ratio <= SKILL_WARN_LIMIT:
        return None
    head = (f"warning: skill ratio {ratio:.2f} > {SKILL_WARN_LIMIT:g}: the model reconstructs little more "
            f"than each window's mean, so scores rank windows by their variance")
    if autocorrelation is not None and autocorrelation < NOISE_AUTOCORRELATION:
        cause = (f"likely cause: inside a window the signal is noise around its level (lag-1 autocorrelation "
                 f"{autocorrelation:.2f} < {NOISE_AUTOCORRELATION:g}), which no model can reconstruct better than "
                 f"the mean; the score then ranks windows by how noisy they are")
    elif best_epoch <= 2 and epochs_run > best_epoch:
        cause = (f"likely cause: training stalled (best epoch {best_epoch} of {epochs_run}); try a lower "
                 f"--learning-rate or a larger --patience")
    elif period is not None and period > 2 * window:
        cause = (f"likely cause: the window ({window} rows) is short for the signal's time scale "
                 f"(dominant period about {period} rows); try a longer --window or resample")
    elif period is not None and period * 8 < window:
        cause = (f"likely cause: the window ({window} rows) holds {window // max(period, 1)} periods of "
                 f"{period} rows, too much detail for the code size; try --window {max(16, 2 * period)}")
    else:
        cause = ("likely cause: the held-out windows are mostly noise around a level (nothing predictable "
                 "inside a window), or the model is too small; try more --units or a longer --window")
    return f"{head}; {cause}"
