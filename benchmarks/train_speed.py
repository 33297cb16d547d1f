"""Training speed on the 20k-row x 3-feature vibration reference (issue 13 item 3).

Each contender is a set of ``trainer.training.FitSettings`` overrides; the fit is
``trainer.training.fit_autoencoder``, the function ``vigil train`` uses, with its
early stopping, on the same windows (window 128, hop 4, minmax-scaled fitted 80%,
held-out 20%). Per contender: process CPU seconds (all threads) and wall seconds
of the fit, of the first epoch (graph build and trace included), epochs run,
best validation loss and the skill ratio of the kept weights. Contenders run
interleaved (``--repeat`` rounds: a, b, a, b, ...) and the medians are reported.
Writes ``benchmarks/results/train_speed.json`` (key ``contenders``).

    nice -n 10 .venv/bin/python -m benchmarks.train_speed [--contenders default,previous] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, machine_line
from benchmarks.reference import vibration
from edge_agent.core import Scaler, WindowSpec, sliding_windows

RESULTS = Path(__file__).parent / "results" / "train_speed.json"
COMMAND = ".venv/bin/python -m benchmarks.train_speed"
PREVIOUS = {"lr_schedule": "constant", "shape_scale": False, "windows_per_epoch": None, "pipeline": "arrays",
            "batch_size": 64}
CONTENDERS: dict[str, dict[str, Any]] = {
    "default": {},  # what vigil train does now (trainer.fit.TrainConfig defaults)
    "previous": PREVIOUS,  # last round's defaults
    "default_arrays": {"pipeline": "arrays", "windows_per_epoch": None},
    "default_b256": {"batch_size": 256},
    "default_b256_lr6e-3": {"batch_size": 256, "learning_rate": 6e-3},
    "default_min1pct": {"min_improvement": 0.01},
    "default_min2pct": {"min_improvement": 0.02},
}


# Contenders whose difference is not a FitSettings field (runs kept from earlier versions of the code).
UNLISTED = {"default_v1_plateau_min_delta_1e-4_1thread": "the plateau schedule's min_delta 1e-4 (Keras' default; "
            "today 0)"}


def default_settings() -> dict[str, Any]:
    import dataclasses

    from trainer.fit import TrainConfig, fit_settings

    return dataclasses.asdict(fit_settings(TrainConfig(data="-", out="-")))


def run(overrides: dict[str, Any], rows: int = 20000) -> dict[str, Any]:
    from trainer.keras_backend import keras, set_seed
    from trainer.keras_scoring import predict_windows
    from trainer.skill import skill_ratio
    from trainer.training import FitSettings, fit_autoencoder

    values, _ = vibration(rows, seed=1)
    n_held = round(rows * 0.2)
    fit_rows, held_rows = values[:-n_held], values[-n_held:]
    spec = WindowSpec(128, 4)
    scaler = Scaler.fit(fit_rows, "minmax")
    fit_w = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    held_w = np.ascontiguousarray(sliding_windows(scaler.transform(held_rows), spec))
    settings = {**default_settings(), **overrides}
    settings["units"] = tuple(settings["units"])
    set_seed(0)
    k = keras()
    epoch_cpu: list[float] = []

    class Timer(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t = time.process_time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epoch_cpu.append(time.process_time() - self._t)

    cpu, wall = time.process_time(), time.perf_counter()
    model, hist = fit_autoencoder(FitSettings(**settings), fit_w, held_w, echo=lambda _m: None,
                                  extra_callbacks=[Timer()])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    val = hist["val_loss"]
    return {"settings": settings, "n_fit_windows": len(fit_w), "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "cpu_first_epoch_s": round(epoch_cpu[0], 1),
            "cpu_later_epoch_s": round(float(np.median(epoch_cpu[1:])), 2) if len(epoch_cpu) > 1 else None,
            "epochs_run": len(val), "best_epoch": int(np.argmin(val)) + 1, "best_val_loss": round(min(val), 6),
            "skill_ratio": round(skill_ratio(held_w, predict_windows(model, held_w)), 4),
            "loadavg": list(os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contenders", default="default,previous")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    stored = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    done: dict[str, list[dict[str, Any]]] = stored.get("contenders", {})
    names = args.contenders.split(",")
    for _ in range(args.repeat):
        for name in names:  # interleaved: a, b, a, b
            result = run(CONTENDERS[name])
            done.setdefault(name, []).append(result)
            print(json.dumps({"contender": name, **result}), flush=True)
            medians = {n: {key: float(np.median([r[key] for r in rs])) for key in
                           ("cpu_s", "wall_s", "epochs_run", "best_val_loss", "skill_ratio")}
                       for n, rs in done.items()}
            RESULTS.write_text(json.dumps({"command": COMMAND, "machine": machine_info(), "medians": medians,
                                           "contenders": done}, indent=1) + "\n")
            RESULTS.with_suffix(".md").write_text(f"# train_speed\n\nCommand: `{COMMAND}`\n\nMachine: "
                                                  f"{machine_line(machine_info())}\n\n" + render(done))


def render(done: dict[str, list[dict[str, Any]]]) -> str:
    """Every run of every contender (the report embeds this after its second paragraph)."""
    from benchmarks.common import md_table

    rows = []
    for name, runs in done.items():
        for r in runs:
            s = r["settings"]
            changed = {k: v for k, v in s.items() if default_settings().get(k) != v and k != "units"}
            differs = ", ".join(f"{k}={v}" for k, v in changed.items()) or UNLISTED.get(name, "the defaults")
            rows.append([name, differs,
                         r.get("tf_threads") or "TF default (2 cores)", round(r["loadavg"][0], 1), r["cpu_s"],
                         r["wall_s"], r["cpu_first_epoch_s"], r["cpu_later_epoch_s"],
                         f"{r['epochs_run']} ({r['best_epoch']})", r["best_val_loss"], r["skill_ratio"]])
    return (md_table(["contender", "differs from today's defaults", "TF threads", "load (1 min) at the end",
                      "CPU s", "wall s", "CPU s epoch 1", "CPU s later epochs", "epochs run (best)",
                      "best val loss", "skill ratio"], rows) + "\n")


if __name__ == "__main__":
    main()
