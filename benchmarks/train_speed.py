"""Training speed by batch size on the 20k-row x 3-feature vibration reference (issue 13 item 3).

Fixed epoch count (no early stopping) so the settings are compared at equal epochs: CPU seconds of
the first epoch (includes graph build) and of the later ones, validation loss and skill ratio at
the end. Writes ``benchmarks/results/train_speed.json``.

    .venv/bin/python -m benchmarks.train_speed [--epochs 4] [--settings 64,256,256@6e-3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reference import vibration
from edge_agent.core import Scaler, WindowSpec, sliding_windows

RESULTS = Path(__file__).parent / "results" / "train_speed.json"


def run(batch: int, lr: float, epochs: int, rows: int = 20000) -> dict[str, Any]:
    from trainer.keras_backend import keras, set_seed
    from trainer.keras_scoring import predict_windows
    from trainer.model import build_autoencoder
    from trainer.skill import skill_ratio

    values, _ = vibration(rows, seed=1)
    n_held = round(rows * 0.2)
    fit_rows, held_rows = values[:-n_held], values[-n_held:]
    spec = WindowSpec(128, 4)
    scaler = Scaler.fit(fit_rows, "minmax")
    fit_w = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    held_w = np.ascontiguousarray(sliding_windows(scaler.transform(held_rows), spec))
    set_seed(0)
    k = keras()
    model = build_autoencoder("lstm", 128, 3, (32, 16), "mse", lr, center=True)
    cpu: list[float] = []

    class Timer(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t = time.process_time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            cpu.append(time.process_time() - self._t)

    hist = model.fit(fit_w, fit_w, epochs=epochs, batch_size=batch, shuffle=True, verbose=0,
                     validation_data=(held_w, held_w), callbacks=[Timer()]).history
    return {"batch_size": batch, "learning_rate": lr, "epochs": epochs, "n_fit_windows": len(fit_w),
            "cpu_first_epoch_s": round(cpu[0], 1), "cpu_later_epoch_s": round(float(np.mean(cpu[1:])), 1),
            "val_loss": [round(v, 6) for v in hist["val_loss"]],
            "skill_ratio": round(skill_ratio(held_w, predict_windows(model, held_w)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--settings", default="64,256,256@6e-3")
    args = parser.parse_args()
    done = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for item in args.settings.split(","):
        batch, _, lr = item.partition("@")
        key = f"{item}/{args.epochs}"
        if key not in done:
            done[key] = run(int(batch), float(lr or 3e-3), args.epochs)
            print(json.dumps(done[key]), flush=True)
            RESULTS.write_text(json.dumps(done, indent=1) + "\n")


if __name__ == "__main__":
    main()
