"""Training data as users have it: constant features, contamination, short slices.

- :func:`feature_stats`: per feature min, max, std, constant / near-constant
  flags and the resolution floor the scaler uses for a constant feature.
- :func:`clean_windows`: the seed-style IsolationForest pre-filter
  (``--clean auto|off|contamination=F``).
- :func:`choose_window`: a shorter window when the slice is too short for the
  requested one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.core.scaler import resolution_floor
from edge_agent.errors import VigilInputError
from trainer.window_choice import MIN_AUTO_WINDOW, auto_window, largest_window

NEAR_CONSTANT_SHARE = 0.99  # a feature at one value in >= 99% of the rows carries almost no signal
AUTO_OUTLIER_Z = 5.0  # "auto" drops windows whose IF score is this many robust sigmas above the median
AUTO_MAX_CONTAMINATION = 0.05  # ... but never more than 5% of the windows
MAX_CLEAN_FIT_WINDOWS = 20000


def feature_stats(rows: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    """run.json ``training.feature_stats``: ``{name: {min, max, std, resolution, constant, ...}}``.

    The keys are those :mod:`edge_agent.detection.stats` parses on the device;
    ``resolution`` is the scaler's floor (for a constant feature the stated
    tolerance). The device's sensor-check statistics (``at_bounds_fraction``,
    ``window_std``, ``flat_fraction``) are added by its own
    ``measure_feature_stats`` so the device compares with what it would measure.
    """
    x = np.asarray(rows, dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        col = x[:, j]
        out[name] = {"min": float(col.min()), "max": float(col.max()), "std": float(col.std()),
                     "resolution": resolution_floor(col), "constant": bool(col.min() == col.max())}
    try:
        from edge_agent.detection.stats import measure_feature_stats
    except ImportError:  # a layout without the device's sensor checks
        return out
    for measured in measure_feature_stats(x, names):
        extra = measured.to_dict()
        for key in ("at_bounds_fraction", "window_std", "flat_fraction"):
            if key in extra:
                out[measured.name][key] = extra[key]
    return out


def near_constant_features(rows: np.ndarray, names: list[str]) -> list[str]:
    """Features that sit at one value in at least ``NEAR_CONSTANT_SHARE`` of the rows (but not all)."""
    x = np.asarray(rows, dtype=np.float64)
    out = []
    for j, name in enumerate(names):
        values, counts = np.unique(x[:, j], return_counts=True)
        if values.size > 1 and counts.max() >= NEAR_CONSTANT_SHARE * x.shape[0]:
            out.append(name)
    return out


def constant_feature_notes(stats: dict[str, dict[str, Any]], near_constant: list[str]) -> list[str]:
    """Warnings for constant and near-constant features (empty when there are none)."""
    notes = []
    constant = [name for name, s in stats.items() if s["constant"]]
    for name in constant:
        s = stats[name]
        notes.append(f"warning: feature {name!r} is constant ({s['min']:g}) in the training rows; a departure "
                     f"is scored in units of the tolerance {s['resolution']:g}, so any change alarms")
    for name in near_constant:
        notes.append(f"note: feature {name!r} sits at one value in >= {NEAR_CONSTANT_SHARE:.0%} of the "
                     f"training rows (resolution {stats[name]['resolution']:g}); little but its changes to learn")
    if constant and len(constant) == len(stats):
        notes.append("warning: every feature is constant in the training rows: the model can only flag "
                     "departures from these constants (no learnt behaviour)")
    return notes


@dataclass(frozen=True)
class CleanSetting:
    mode: str  # "off", "auto", "contamination"
    contamination: float | None = None

    @property
    def text(self) -> str:
        return f"contamination={self.contamination:g}" if self.mode == "contamination" else self.mode


def parse_clean(text: str) -> CleanSetting:
    raw = (text or "").strip().lower().replace(" ", "")
    if raw in ("off", "auto"):
        return CleanSetting(raw)
    if raw.startswith("contamination="):
        try:
            value = float(raw.split("=", 1)[1])
        except ValueError:
            value = float("nan")
        if 0.0 < value < 0.5:
            return CleanSetting("contamination", value)
    raise VigilInputError(f"--clean must be auto, off or contamination=F with 0 < F < 0.5, got {text!r}",
                          key="clean")


def clean_windows(windows: np.ndarray, setting: CleanSetting, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(kept windows, run.json ``training.clean``): drop the windows an IsolationForest isolates most."""
    info: dict[str, Any] = {"mode": setting.text, "n_windows": len(windows), "dropped": 0}
    if setting.mode == "off" or len(windows) < 20:
        return windows, info
    from sklearn.ensemble import IsolationForest

    flat = np.asarray(windows, dtype=np.float32).reshape(len(windows), -1)
    sample = flat
    if len(flat) > MAX_CLEAN_FIT_WINDOWS:
        sample = flat[np.linspace(0, len(flat) - 1, MAX_CLEAN_FIT_WINDOWS).round().astype(np.int64)]
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(sample)
    scores = -forest.score_samples(flat)  # higher = more isolated
    if setting.mode == "contamination":
        cut = float(np.quantile(scores, 1.0 - float(setting.contamination or 0.0)))
    else:
        median = float(np.median(scores))
        mad = 1.4826 * float(np.median(np.abs(scores - median)))
        cut = median + AUTO_OUTLIER_Z * mad if mad > 0 else np.inf
        cut = max(cut, float(np.quantile(scores, 1.0 - AUTO_MAX_CONTAMINATION)))
        info["robust_z_cut"] = AUTO_OUTLIER_Z
    keep = scores <= cut
    info.update(dropped=int((~keep).sum()), score_cut=float(cut))
    return windows[keep], info


def choose_window(requested: int, hop: int, n_rows: int, validation_fraction: float, min_heldout_windows: int,
                  fit_values: Callable[[], np.ndarray]) -> tuple[int, int, dict[str, Any] | None]:
    """(window, hop, run.json note or None): ``requested`` and ``hop`` when they fit, else shorter ones.

    A slice too short for ``requested`` gets a window from the data (its dominant period, bounded);
    one too short even for a ``MIN_AUTO_WINDOW`` window at ``hop`` (a few hundred rows, such as a
    short NAB probationary period) also gets the largest smaller hop that fits one.
    """
    upper = largest_window(n_rows, validation_fraction, hop, min_heldout_windows)
    if upper >= requested:
        return requested, hop, None
    chosen_hop = hop
    while upper < MIN_AUTO_WINDOW and chosen_hop > 1:
        chosen_hop -= 1
        upper = largest_window(n_rows, validation_fraction, chosen_hop, min_heldout_windows)
    if upper < MIN_AUTO_WINDOW:
        return requested, hop, None  # the split check reports what is needed
    window, period = auto_window(fit_values(), upper)
    return window, chosen_hop, {"requested": requested, "chosen": window, "dominant_period": period,
                                "largest_possible": upper, "requested_hop": hop, "hop": chosen_hop}


# --------------------------------------------------------------------------- --extra-normal

EXTRA_NORMAL_FILE = "training_data.csv"


def with_extra_normal(opts: dict[str, Any], captures: list[Any], folder: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train options, run.json note): DATA's training rows with the rows of captures marked normal put first.

    Writes ``folder/training_data.csv`` (the captures' rows, then the selected
    rows of DATA; a regular ``timestamp`` column at DATA's rate when it has
    one) and returns options that train on that file, so the trainer needs no
    change: the held-out tail (early stopping, threshold) stays DATA's own
    tail, the captures only add fitted rows. The few windows across each join
    see a jump; ``--clean auto`` drops those that stand out.
    """
    from pathlib import Path

    from edge_agent.captures import read_capture
    from edge_agent.readers import load_table

    if opts.get("labels") is not None:
        raise VigilInputError("--extra-normal cannot be combined with --labels (the rows are renumbered)",
                              key="extra-normal")
    table = load_table(opts["data"], opts["columns"], opts["train_rows"], opts["timestamp_column"])
    pieces, used = [], []
    for path in _capture_files(captures):
        values, side = read_capture(path)
        if list(side["features"]) != list(table.names) and not _positional(table.names, len(side["features"])):
            raise VigilInputError(f"capture features {', '.join(side['features'])} differ from the training columns "
                                  f"{', '.join(table.names)}", file=str(path), key="extra-normal")
        pieces.append(np.asarray(values, dtype=np.float64))
        used.append(str(path))
    rows = np.concatenate([*pieces, table.values]) if pieces else table.values
    out = Path(folder) / EXTRA_NORMAL_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    rate = table.sampling_rate_hz
    header = ",".join(table.names)
    if rate:
        stamps = np.arange(len(rows), dtype=np.float64) / rate
        np.savetxt(out, np.column_stack([stamps, rows]), delimiter=",", header="timestamp," + header, comments="",
                   fmt="%.17g")
    else:
        np.savetxt(out, rows, delimiter=",", header=header, comments="", fmt="%.17g")
    extra_rows = len(rows) - table.n_rows
    note = {"captures": used, "rows": extra_rows, "data": str(opts["data"]),
            "data_rows": [table.row_offset, table.row_offset + table.n_rows],
            "layout": f"rows 0:{extra_rows} of {EXTRA_NORMAL_FILE} are the captures, the rest DATA's rows"}
    return ({**opts, "data": out, "columns": list(table.names), "train_rows": None,
             "timestamp_column": "timestamp" if rate else None}, note)


def _capture_files(captures: list[Any]) -> list[Any]:
    """Capture paths as given; a directory stands for every capture (``*.json`` sidecar) in it."""
    from pathlib import Path

    out = []
    for item in captures:
        path = Path(item)
        out.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    if not out:
        raise VigilInputError("no capture found (give .json/.npy capture files or a directory of them)",
                              key="extra-normal")
    return out


def _positional(names: list[str], n: int) -> bool:
    """A headerless file's columns ("0", "1", ...) match any capture with as many features."""
    return len(names) == n and all(name.isdigit() for name in names)
