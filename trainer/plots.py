"""Evaluation figures as PNG files (matplotlib, Agg backend, no display needed).

Each function draws one figure from plain arrays, writes it to ``path`` and
returns the path. Rows are plotted against their *file* data-row number so the
figures line up with the label file. The LSTM autoencoder is always the
primary (first, solid) series; the IsolationForest baseline is the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from trainer.metrics import pr_curve, roc_curve, threshold_sweep

DPI = 110
AE_COLOR, IF_COLOR, LABEL_COLOR = "tab:blue", "tab:orange", "tab:red"
Range = tuple[int, int]

matplotlib.use("Agg")  # files only, never a window (and no display needed on a server)


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def _shade(ax: Any, ranges: Sequence[Range], label: bool = True) -> None:
    for i, (start, end) in enumerate(ranges):
        ax.axvspan(start - 0.5, end + 0.5, color=LABEL_COLOR, alpha=0.15, lw=0,
                   label="labeled anomaly" if label and i == 0 else None)


def _use_log(scores: np.ndarray, threshold: float) -> bool:
    """Log axis when a few huge errors would flatten everything else."""
    s = scores[np.isfinite(scores)]
    if s.size == 0 or s.min() <= 0 or threshold <= 0:
        return False
    return float(s.max()) / max(float(np.median(s)), 1e-300) > 50


def timeline(path: Path, rows: np.ndarray, values: np.ndarray, names: Sequence[str], ranges: Sequence[Range],
             scores: dict[str, tuple[np.ndarray, float]]) -> Path:
    """Data with labeled ranges shaded; under it each model's score and threshold.

    ``scores`` maps a model title to ``(row_scores, threshold)``, AE first.
    """
    plt = _pyplot()
    n_panels = 1 + len(scores)
    fig, axes = plt.subplots(n_panels, 1, figsize=(12, 2.4 + 2.0 * n_panels), sharex=True,
                             gridspec_kw={"height_ratios": [1.4] + [1.0] * len(scores)})
    ax = axes[0]
    for j, name in enumerate(list(names)[:8]):  # more than 8 lines is unreadable
        ax.plot(rows, values[:, j], lw=0.7, label=f"column {name}" if str(name).isdigit() else str(name))
    _shade(ax, ranges)
    ax.set_ylabel("value")
    ax.set_title("Test data (labeled anomalies shaded)")
    ax.legend(loc="upper right", fontsize=8, ncol=min(len(names) + 1, 5))
    for ax, (title, (s, thr)), color in zip(axes[1:], scores.items(), (AE_COLOR, IF_COLOR, "tab:green")):
        ax.plot(rows, s, lw=0.8, color=color, label=f"{title} score")
        ax.axhline(thr, color="black", ls="--", lw=1.0, label=f"threshold {thr:.4g}")
        anomalous = np.where(np.nan_to_num(s, nan=-np.inf) > thr, s, np.nan)
        ax.plot(rows, anomalous, lw=1.4, color=LABEL_COLOR, label="above threshold")
        _shade(ax, ranges, label=False)
        if _use_log(s, thr):
            ax.set_yscale("log")
        ax.set_ylabel("score")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("data row (file)")
    return _save(fig, path)


def roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], aucs: dict[str, float | None]) -> Path:
    """ROC curves of each model; ``curves`` maps title to ``(scores, label_mask)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (title, (s, y)), color in zip(curves.items(), (AE_COLOR, IF_COLOR)):
        fpr, tpr, _ = roc_curve(s, y)
        ax.plot(fpr, tpr, color=color, label=f"{title} (AUC {_fmt(aucs.get(title))})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
    ax.set_xlabel("false positive rate (rows)")
    ax.set_ylabel("true positive rate (rows)")
    ax.set_title("ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], aucs: dict[str, float | None]) -> Path:
    """Precision-recall curves; the chance level is the share of anomalous rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    prevalence = None
    for (title, (s, y)), color in zip(curves.items(), (AE_COLOR, IF_COLOR)):
        precision, recall, _ = pr_curve(s, y)
        ax.step(np.concatenate(([0.0], recall)), np.concatenate(([precision[0] if len(precision) else 1.0],
                precision)), where="pre", color=color, label=f"{title} (AP {_fmt(aucs.get(title))})")
        finite = np.isfinite(np.asarray(s, dtype=float))
        prevalence = float(np.mean(np.asarray(y)[finite])) if finite.any() else None
    if prevalence is not None:
        ax.axhline(prevalence, color="grey", ls=":", label=f"chance ({prevalence:.3f})")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall (rows)")
    ax.set_ylabel("precision (rows)")
    ax.set_title("Precision-recall")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def threshold_curves(path: Path, scores: np.ndarray, ranges_local: Sequence[Range], threshold: float,
                     title: str, n_points: int = 60) -> Path:
    """Point precision/recall/F1 and event F1 as the threshold moves."""
    plt = _pyplot()
    s = np.asarray(scores, dtype=float)
    finite = s[np.isfinite(s)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    # Quantiles resolve the crowded normal range, an even grid the sparse anomalous tail.
    quantiles = np.quantile(finite, np.linspace(0, 1, n_points)) if finite.size else np.empty(0)
    spread = np.geomspace(lo, hi, n_points) if lo > 0 and hi / lo > 50 else np.linspace(lo, hi, n_points)
    grid = np.unique(np.concatenate((quantiles, spread, [threshold])))
    sweep = threshold_sweep(s, ranges_local, grid)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(grid, sweep["point_precision"], color="tab:green", label="precision (point)")
    ax.plot(grid, sweep["point_recall"], color="tab:purple", label="recall (point)")
    ax.plot(grid, sweep["point_f1"], color="black", label="F1 (point)")
    ax.plot(grid, sweep["event_f1"], color="black", ls="--", label="F1 (event)")
    ax.axvline(threshold, color=LABEL_COLOR, ls=":", label=f"threshold {threshold:.4g}")
    if lo > 0 and hi / lo > 50:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("threshold on the score")
    ax.set_ylabel("metric")
    ax.set_title(f"{title}: precision / recall / F1 against threshold")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def error_histogram(path: Path, scores: np.ndarray, label_mask: np.ndarray, threshold: float, title: str) -> Path:
    """Score distribution of normal vs anomalous rows (densities) with the threshold."""
    plt = _pyplot()
    s = np.asarray(scores, dtype=float)
    y = np.asarray(label_mask, dtype=bool)
    finite = np.isfinite(s)
    normal, anomalous = s[finite & ~y], s[finite & y]
    both = s[finite]
    log = both.size > 0 and both.min() > 0 and both.max() / both.min() > 50
    if both.size == 0:
        bins: Any = 10
    elif log:
        bins = np.geomspace(both.min(), max(both.max(), threshold) * 1.001, 60)
    else:
        bins = np.linspace(min(both.min(), threshold), max(both.max(), threshold), 60)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if normal.size:
        ax.hist(normal, bins=bins, density=True, alpha=0.6, color=AE_COLOR, label=f"normal rows ({normal.size})")
    if anomalous.size:
        ax.hist(anomalous, bins=bins, density=True, alpha=0.6, color=LABEL_COLOR,
                label=f"anomalous rows ({anomalous.size})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.4g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("score (reconstruction error)")
    ax.set_ylabel("density")
    ax.set_title(f"{title}: score histogram")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def latent_map(path: Path, codes: np.ndarray, anomalous: np.ndarray, title: str) -> Path:
    """First two principal components of the latent codes, normal vs anomalous windows."""
    plt = _pyplot()
    xy, explained = pca_2d(codes)
    y = np.asarray(anomalous, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.scatter(xy[~y, 0], xy[~y, 1], s=6, alpha=0.4, color=AE_COLOR, label=f"normal windows ({int((~y).sum())})")
    ax.scatter(xy[y, 0], xy[y, 1], s=10, alpha=0.8, color=LABEL_COLOR,
               label=f"windows overlapping a label ({int(y.sum())})")
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"{title}: latent code (PCA)")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def pca_2d(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``[n, d]`` onto its first two principal axes; returns (xy, variance shares)."""
    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    x = x - x.mean(axis=0) if len(x) else x
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros(2)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * sv[:2]
    if xy.shape[1] < 2:  # one-dimensional code: second axis is flat
        xy = np.column_stack([xy, np.zeros(len(xy))])
    var = sv ** 2
    shares = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return xy, np.pad(shares, (0, 2 - len(shares)))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def published_timeline(path: Path, rows: np.ndarray, scores: np.ndarray, thresholds: np.ndarray,
                       ranges: Sequence[Range], events: Sequence[Range], faults: Sequence[tuple[Range, str]],
                       title: str) -> Path:
    """What the device publishes: the pipeline's score, the threshold in force (dynamic), events and faults."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(12, 3.6))
    ax.plot(rows, scores, lw=0.8, color=AE_COLOR, label=f"{title} score (smoothed, as on the device)")
    ax.plot(rows, thresholds, lw=1.0, color="black", ls="--", label="threshold in force")
    _shade(ax, ranges)
    for i, (start, end) in enumerate(events):
        ax.axvspan(start, end, ymin=0.0, ymax=0.06, color="tab:red", alpha=0.9,
                   label="published event" if i == 0 else None)
    for i, ((start, end), fault) in enumerate(faults):
        ax.axvspan(start, end, ymin=0.94, ymax=1.0, color="tab:purple", alpha=0.9,
                   label="sensor fault" if i == 0 else None)
        ax.text(start, 1.0, fault, transform=ax.get_xaxis_transform(), fontsize=7, va="bottom")
    finite = np.isfinite(thresholds)
    if finite.any() and _use_log(scores, float(np.nanmedian(thresholds[finite]))):
        ax.set_yscale("log")
    ax.set_xlabel("data row (file)")
    ax.set_ylabel("score")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Published: events (red) and sensor faults (purple) against the labels (shaded)")
    return _save(fig, path)
