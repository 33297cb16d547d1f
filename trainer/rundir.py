"""The run directory the trainer writes and everyone else reads.

Layout (plain files, no pickle)::

    RUN/model.keras        the fitted autoencoder (tf_keras .keras format)
    RUN/run.json           everything needed to score like the trainer (below)
    RUN/train_rows.npy     the raw training rows, float64 [time, features]; the
                           IsolationForest baseline is refitted from them with
                           the stored seed (sklearn models cannot be saved safely)
    RUN/loss.png           training and validation loss per epoch

``run.json`` keys: ``format`` ("vigil-run/1"), ``features`` (names, in order),
``timestamp_column`` (or null), ``sampling_rate_hz`` (or null), ``window``,
``hop``, ``scaler`` (:meth:`Scaler.to_dict`), ``score`` ({"function",
"weights"}), ``smoothing`` ({"alpha"}), ``threshold`` ({"value", "strategy",
plus the strategy's parameters}), ``model`` ({"kind", "units", "loss",
"file"}), ``training`` (source file, row slice, epochs, window counts,
``error_stats`` of held-out normal windows: mean, std, q50, q90, q99, max),
``baseline`` ({"kind": "isolation_forest", "n_estimators", "seed",
"threshold"}), ``seed``, ``versions``, ``created``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core import Scaler, WindowSpec
from edge_agent.errors import VigilInputError

RUN_FORMAT = "vigil-run/1"
RUN_JSON = "run.json"
MODEL_FILE = "model.keras"
TRAIN_ROWS_FILE = "train_rows.npy"


@dataclass
class RunInfo:
    """Parsed ``run.json`` plus convenience accessors."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def spec(self) -> WindowSpec:
        return WindowSpec(int(self.meta["window"]), int(self.meta["hop"]))

    @property
    def scaler(self) -> Scaler:
        return Scaler.from_dict(self.meta["scaler"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"]["value"])

    @property
    def score_function(self) -> str:
        return str(self.meta["score"]["function"])

    @property
    def score_weights(self) -> list[float] | None:
        return self.meta["score"].get("weights")

    @property
    def smoothing_alpha(self) -> float | None:
        return self.meta.get("smoothing", {}).get("alpha")

    @property
    def model_path(self) -> Path:
        return self.path / self.meta["model"].get("file", MODEL_FILE)

    def load_model(self) -> Any:
        from trainer.keras_backend import keras

        return keras().models.load_model(self.model_path, compile=False)

    def train_rows(self) -> np.ndarray:
        return np.load(self.path / TRAIN_ROWS_FILE, allow_pickle=False)


def write_run(path: Path, meta: dict[str, Any], model: Any, train_rows: np.ndarray) -> None:
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format": RUN_FORMAT, **meta}
    meta.setdefault("model", {})["file"] = MODEL_FILE
    model.save(path / MODEL_FILE)
    np.save(path / TRAIN_ROWS_FILE, np.asarray(train_rows, dtype=np.float64), allow_pickle=False)
    (path / RUN_JSON).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def read_run(path: str | Path) -> RunInfo:
    """Open a run directory; a missing or foreign one is a one-line error."""
    path = Path(path)
    file = path / RUN_JSON
    if not file.is_file():
        raise VigilInputError("not a vigil run directory (no run.json)", file=str(path))
    try:
        meta = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VigilInputError(f"cannot read run.json: {exc}", file=str(file)) from None
    if meta.get("format") != RUN_FORMAT:
        raise VigilInputError(f"unknown run format {meta.get('format')!r}", file=str(file), key="format")
    return RunInfo(path=path, meta=meta)
