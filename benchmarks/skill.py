"""Skill-ratio sweep: which trainer settings give the autoencoder skill on real series.

Small on purpose (CPU is shared): 4 series, a handful of settings, one seed,
epochs capped. For each (series, setting) it fits the autoencoder on the fitted
part of the training rows exactly as ``trainer.fit`` does and measures the skill
ratio on the held-out tail (``trainer.skill``). Writes
``benchmarks/results/skill.json``; the table goes into ``benchmarks/notes/skill.md``.

    .venv/bin/python -m benchmarks.skill [--only NAME] [--settings a,b]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import Series, discord_series, nab_series
from edge_agent.core import Scaler, WindowSpec, sliding_windows

RESULTS = Path(__file__).parent / "results" / "skill.json"
SERIES = ("machine_temperature_system_failure", "ambient_temperature_system_failure", "chfdb_chf01_275", "TEK16")
BASE = {"scaler": "minmax", "learning_rate": 3e-3, "patience": 5, "window": 128, "hop": 4, "epochs": 50,
        "batch_size": 64, "center": False}
SETTINGS: dict[str, dict[str, Any]] = {
    "today": {},
    "standard": {"scaler": "standard"},
    "standard_lr1e-3_p10": {"scaler": "standard", "learning_rate": 1e-3, "patience": 10},
    "robust_lr1e-3_p10": {"scaler": "robust", "learning_rate": 1e-3, "patience": 10},
    "standard_lr1e-3_p10_winauto": {"scaler": "standard", "learning_rate": 1e-3, "patience": 10, "window": "auto"},
    "standard_lr1e-3_p10_bs256": {"scaler": "standard", "learning_rate": 1e-3, "patience": 10, "batch_size": 256},
    "lr1e-3_p10": {"learning_rate": 1e-3, "patience": 10},
    "center": {"center": True},
    "center_standard_lr1e-3_p10": {"center": True, "scaler": "standard", "learning_rate": 1e-3, "patience": 10},
    "center_standard_p10": {"center": True, "scaler": "standard", "patience": 10},
    "center_standard_p10_winauto": {"center": True, "scaler": "standard", "patience": 10, "window": "auto"},
    "center_standard_p10_bs256": {"center": True, "scaler": "standard", "patience": 10, "batch_size": 256},
    "center_p10": {"center": True, "patience": 10},
    "center_standard": {"center": True, "scaler": "standard"},
    "robust_center_p10": {"center": True, "scaler": "robust", "patience": 10},
    "final": {"center": True, "patience": 10, "exceedance": True},
}


def pick(names: tuple[str, ...]) -> list[Series]:
    every = {s.name: s for s in discord_series() + nab_series()}
    return [every[n] for n in names]


def run_one(series: Series, setting: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    from trainer.keras_backend import keras, set_seed
    from trainer.keras_scoring import predict_windows
    from trainer.model import build_autoencoder
    from trainer.skill import skill_ratio
    from trainer.window_choice import auto_window, dominant_period

    cfg = {**BASE, **setting}
    rows = series.load_train().values
    n_held = round(len(rows) * 0.2)
    fit_rows, held_rows = rows[:-n_held], rows[-n_held:]
    period = dominant_period(fit_rows)
    window = cfg["window"]
    if window == "auto":
        window, _ = auto_window(fit_rows, min(n_held - 7 * cfg["hop"], 128))
    spec = WindowSpec(int(window), cfg["hop"])
    scaler = Scaler.fit(fit_rows, cfg["scaler"])
    fit_w = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    held_w = np.ascontiguousarray(sliding_windows(scaler.transform(held_rows), spec))
    set_seed(seed)
    k = keras()
    model = build_autoencoder("lstm", spec.window, rows.shape[1], (32, 16), "mse", cfg["learning_rate"],
                               center=cfg["center"])
    stop = k.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["patience"], restore_best_weights=True)
    start = time.process_time()
    wall = time.perf_counter()
    hist = model.fit(fit_w, fit_w, epochs=cfg["epochs"], batch_size=cfg["batch_size"], shuffle=True,
                     validation_data=(held_w, held_w), callbacks=[stop], verbose=0).history
    cpu, wall = time.process_time() - start, time.perf_counter() - wall
    ratio = skill_ratio(held_w, predict_windows(model, held_w))
    val = hist["val_loss"]
    extra = (exceedance(series, model, scaler, spec, predict_windows(model, held_w), held_w)
             if cfg.get("exceedance") else {})
    return {**cfg, **extra, "series": series.name, "window": spec.window, "period": period, "ratio": round(ratio, 4),
            "best_epoch": int(np.argmin(val)) + 1, "epochs_run": len(val), "best_val_loss": float(min(val)),
            "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "n_fit_windows": len(fit_w)}


def exceedance(series: Series, model: Any, scaler: Scaler, spec: WindowSpec, held_recon: np.ndarray,
               held_w: np.ndarray) -> dict[str, Any]:
    """False windows / false runs / events hit on the test part: mean+3 std versus the 1/day budget."""
    from edge_agent.core import score_windows
    from trainer.calibrate import calibrate_threshold, parse_false_alarms
    from trainer.keras_scoring import predict_windows

    held, _ = score_windows(held_w, held_recon)
    test = series.load_test()
    ranges = [(lo - test.row_offset, hi - test.row_offset) for lo, hi in series.label_ranges(test)]
    test_w = np.ascontiguousarray(sliding_windows(scaler.transform(test.values), spec))
    scores, _ = score_windows(test_w, predict_windows(model, test_w))
    starts = np.arange(len(scores)) * spec.hop
    ends = starts + spec.window - 1
    hit = np.zeros(len(scores), bool)
    for lo, hi in ranges:
        hit |= (starts <= hi) & (ends >= lo)
    thresholds = {"mean+3std": float(held.mean() + 3 * held.std()),
                  "pot_1/day": calibrate_threshold(held, parse_false_alarms("1/day"), test.sampling_rate_hz,
                                                   spec.hop)[0]}
    out: dict[str, Any] = {"rate_hz": test.sampling_rate_hz, "n_test_windows": len(scores)}
    for name, thr in thresholds.items():
        above = scores > thr
        false = above & ~hit
        runs = int(np.sum(false[1:] & ~false[:-1]) + int(false[0])) if len(false) else 0
        found = sum(bool(np.any(above & (starts <= hi) & (ends >= lo))) for lo, hi in ranges)
        out[name] = {"threshold": thr, "false_window_share": float(false.sum() / max((~hit).sum(), 1)),
                     "false_runs": runs, "events_found": f"{found}/{len(ranges)}"}
    return out


def table(done: dict[str, Any]) -> str:
    """Markdown: one row per series, one column per setting (ratio, best/run epochs, CPU s)."""
    settings = list(dict.fromkeys(r["setting"] for r in done.values()))
    series = list(dict.fromkeys(r["series"] for r in done.values()))
    lines = ["| series | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for name in series:
        cells = []
        for setting in settings:
            r = done.get(f"{name}/{setting}")
            cells.append("" if r is None else f"{r['ratio']:.2f} (ep {r['best_epoch']}/{r['epochs_run']}, "
                                              f"w {r['window']}, {r['cpu_s']:.0f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None)
    parser.add_argument("--settings", default=None)
    parser.add_argument("--table", action="store_true", help="print the markdown table of the stored results")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return
    names = tuple(args.only.split(",")) if args.only else SERIES
    settings = args.settings.split(",") if args.settings else list(SETTINGS)
    done = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for series in pick(names):
        for name in settings:
            key = f"{series.name}/{name}"
            if key in done:
                continue
            result = run_one(series, SETTINGS[name])
            done[key] = {"setting": name, **result}
            print(json.dumps(done[key]), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(done, indent=1) + "\n")


if __name__ == "__main__":
    main()
