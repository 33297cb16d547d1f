"""Skill ratio per real series under trainer settings (issue 10 item 9).

For each (series, setting) it runs ``trainer.fit.run_train`` exactly as ``vigil
train`` does (the trainer's defaults plus the setting's overrides; only data,
columns, training rows and timestamp column are given, as in the quality
benchmark) and records the skill ratio the trainer measured on the held-out
tail (``trainer.skill``), the epochs, and CPU / wall seconds. Labels are never
read. Runs go to ``benchmarks/.work/trainer/skill/<series>/<setting>``; results
to ``benchmarks/results/skill.json`` (``runs`` keyed ``series/setting``).

    nice -n 10 .venv/bin/python -m benchmarks.skill [--only a,b] [--settings default,x] [--table]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info
from benchmarks.datasets import Series, all_series
from benchmarks.reference import WORK

RESULTS = Path(__file__).parent / "results" / "skill.json"
COMMAND = ".venv/bin/python -m benchmarks.skill"
# TrainConfig overrides; "previous" are the last round's defaults.
PREVIOUS = {"lr_schedule": "constant", "shape_scale": False, "clipnorm": None, "batch_size": 64,
            "learning_rate": 3e-3, "patience": 10}
SETTINGS: dict[str, dict[str, Any]] = {
    "previous": PREVIOUS,
    "default": {},
    "scale": {**PREVIOUS, "shape_scale": True},
    "plateau": {**PREVIOUS, "lr_schedule": "plateau"},
    "scale_plateau": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau"},
    "scale_plateau_clip": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "clipnorm": 1.0},
    "scale_plateau_b128": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "batch_size": 128},
    "scale_plateau_b256": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "batch_size": 256},
    "scale_plateau_b256_lr6e-3": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "batch_size": 256,
                                  "learning_rate": 6e-3},
    "scale_plateau_p6": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "patience": 6},
    "default_v2": {},  # default after the plateau's min_delta 1e-4 -> 0 (results of "default" before it)
    "default_min1pct": {"min_improvement": 0.01},
    "default_min2pct": {"min_improvement": 0.02},
    "standard_scale_plateau": {**PREVIOUS, "shape_scale": True, "lr_schedule": "plateau", "scaler": "standard"},
}
SKILL_LIMIT = 0.8


def run_one(series: Series, name: str) -> dict[str, Any]:
    from benchmarks.reference import train_config
    from trainer.fit import run_train

    out = WORK / "trainer" / "skill" / series.name / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = train_config(series.path, out, columns=series.columns, train_rows=series.train_rows,
                       timestamp_column=series.timestamp_column, echo=lambda _m: None, **SETTINGS[name])
    cpu, wall = time.process_time(), time.perf_counter()
    run = run_train(cfg)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    training = run.meta["training"]
    return {"series": series.name, "group": series.group, "setting": name, "skill_ratio": training.get("skill_ratio"),
            "epochs_run": training.get("epochs_run"), "best_epoch": training.get("best_epoch"),
            "best_val_loss": min(training["history"]["val_loss"]), "window": run.meta["window"],
            "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "loadavg": list(os.getloadavg())}


def summary(runs: dict[str, Any]) -> dict[str, Any]:
    """Per setting: series measured, how many below the limit, mean ratio of the finite ones."""
    out: dict[str, Any] = {}
    for r in runs.values():
        s = out.setdefault(r["setting"], {"series": 0, "below_limit": 0, "ratios": []})
        s["series"] += 1
        ratio = r.get("skill_ratio")
        if ratio is not None and ratio <= SKILL_LIMIT:
            s["below_limit"] += 1
        if ratio is not None:
            s["ratios"].append(ratio)
    for s in out.values():
        ratios = s.pop("ratios")
        s["share_below"] = round(s["below_limit"] / s["series"], 3)
        s["mean_ratio"] = round(sum(ratios) / len(ratios), 3) if ratios else None
    return out


def table(runs: dict[str, Any]) -> str:
    """Markdown: one row per series, one column per setting (ratio, best/run epochs, CPU s)."""
    settings = list(dict.fromkeys(r["setting"] for r in runs.values()))
    names = list(dict.fromkeys(r["series"] for r in runs.values()))
    lines = ["| series | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for name in names:
        cells = []
        for setting in settings:
            r = runs.get(f"{name}/{setting}")
            ratio = None if r is None else r.get("skill_ratio")
            cells.append("" if r is None else
                         f"{'n/a' if ratio is None else f'{ratio:.2f}'} (ep {r['best_epoch']}/{r['epochs_run']}, "
                         f"{r['cpu_s']:.0f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None, help="comma-separated series names (default: all)")
    parser.add_argument("--settings", default="default")
    parser.add_argument("--redo", action="store_true", help="re-measure pairs already in the results")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the stored results")
    args = parser.parse_args()
    stored = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    runs: dict[str, Any] = stored.get("runs", {}) if isinstance(stored.get("runs"), dict) else {}
    if args.table:
        print(table(runs))
        print(json.dumps(summary(runs), indent=1))
        return
    wanted = set(args.only.split(",")) if args.only else None
    series = [s for s in all_series() if wanted is None or s.name in wanted]
    # Interleaved: every setting of one series before the next series, so load drifts hit all alike.
    for s in series:
        for name in args.settings.split(","):
            key = f"{s.name}/{name}"
            if key in runs and not args.redo:
                continue
            try:
                runs[key] = run_one(s, name)
            except Exception as exc:  # one series failing must not lose the others' figures
                runs[key] = {"series": s.name, "group": s.group, "setting": name, "skill_ratio": None,
                             "error": f"{type(exc).__name__}: {exc}", "best_epoch": None, "epochs_run": None,
                             "cpu_s": 0.0}
            print(json.dumps(runs[key]), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps({"command": COMMAND, "machine": machine_info(), "limit": SKILL_LIMIT,
                                           "summary": summary(runs), "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
