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
plus the strategy's parameters}), ``model`` ({"kind", "units", "layers",
"window", "n_features", "center", "loss", "file"}: :class:`ModelShape`), ``training``
(source file, row slice, ``fit_rows`` / ``heldout_rows``,
``validation_fraction``, epochs, window counts, ``error_stats`` of held-out
normal windows: mean, std, q50, q90, q99, max; optionally ``skill_ratio``),
``detection`` (optional object, copied verbatim into the bundle manifest),
``baseline`` ({"kind": "isolation_forest", "n_estimators", "seed",
"threshold"}), ``seed``, ``versions``, ``created``.

This module is the one owner of the run format: the train / held-out split
(:func:`split_rows`, :meth:`RunInfo.split_train_rows`) and the model's shape
(:class:`ModelShape`, stored explicitly, never recovered from layer names)
are defined here once; the trainer writes them and the converter reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
DEFAULT_VALIDATION_FRACTION = 0.2  # the trainer's default, for runs that do not record theirs
MODEL_KINDS = ("lstm", "dense", "aer")  # aer: trainer.aer_model


def split_rows(rows: np.ndarray, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, held-out tail): the trainer's split, in time, with no clamping.

    The trainer fits the scaler and the model on the first part and sets the
    threshold on the tail; the converter's parity check must use the very same
    tail, so both call this function (or read the recorded row ranges).
    """
    n_heldout = int(round(len(rows) * validation_fraction))
    return rows[: len(rows) - n_heldout], rows[len(rows) - n_heldout :]


@dataclass(frozen=True)
class ModelShape:
    """The autoencoder's architecture as run.json stores it (``model`` section).

    ``units`` lists the encoder layers' widths, outermost first (the last is
    the latent size); the decoder mirrors them, so ``layers`` (encoder layers)
    is ``len(units)``. ``center``: the window's own mean is subtracted before
    the network and added back after it (``trainer.model``); runs written
    before that option have none and are not centered.
    """

    kind: str
    window: int
    n_features: int
    units: tuple[int, ...]
    center: bool = False

    @property
    def layers(self) -> int:
        return len(self.units)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "units": list(self.units), "layers": self.layers,
                "window": self.window, "n_features": self.n_features, "center": self.center}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], file: str = RUN_JSON) -> ModelShape:
        """Read the shape from run.json (``window``/``features`` fill in for runs that predate them)."""
        model = meta.get("model") or {}
        kind = model.get("kind")
        units = model.get("units")
        if kind not in MODEL_KINDS:
            raise VigilInputError(f"model.kind must be one of {', '.join(MODEL_KINDS)}, not {kind!r}",
                                  file=file, key="model.kind")
        if not isinstance(units, list) or not units or not all(_is_positive_int(u) for u in units):
            raise VigilInputError("model.units must be a non-empty list of positive integers",
                                  file=file, key="model.units")
        layers = model.get("layers", len(units))
        if layers != len(units):
            raise VigilInputError(f"model.layers is {layers} but model.units has {len(units)} entries",
                                  file=file, key="model.layers")
        window = _positive_int(model.get("window", meta.get("window")), "model.window", file)
        n_features = _positive_int(model.get("n_features", len(meta.get("features") or [])), "model.n_features", file)
        center = model.get("center", False)
        if not isinstance(center, bool):
            raise VigilInputError("model.center must be true or false", file=file, key="model.center")
        return cls(kind=str(kind), window=window, n_features=n_features,
                   units=tuple(int(u) for u in units), center=center)


def model_section(kind: str, window: int, n_features: int, units: Sequence[int], loss: str,
                  center: bool = False) -> dict[str, Any]:
    """The ``model`` section of run.json (what the trainer writes)."""
    shape = ModelShape(kind=kind, window=int(window), n_features=int(n_features),
                       units=tuple(int(u) for u in units), center=bool(center))
    return {**shape.to_dict(), "loss": loss}


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_int(value: Any, key: str, file: str) -> int:
    if not _is_positive_int(value):
        raise VigilInputError(f"{key} must be a positive integer", file=file, key=key)
    return int(value)


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

    @property
    def file(self) -> str:
        return str(self.path / RUN_JSON)

    @property
    def model_shape(self) -> ModelShape:
        return ModelShape.from_meta(self.meta, self.file)

    @property
    def training(self) -> dict[str, Any]:
        return self.meta.get("training") or {}

    @property
    def validation_fraction(self) -> float:
        value = self.training.get("validation_fraction")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1:
            return float(value)
        return DEFAULT_VALIDATION_FRACTION

    @property
    def detection(self) -> dict[str, Any] | None:
        """``run.json["detection"]`` (a JSON object) or None; anything else is a one-line error."""
        value = self.meta.get("detection")
        if value is None or isinstance(value, dict):
            return value
        raise VigilInputError(f"detection must be a JSON object, not {type(value).__name__}",
                              file=self.file, key="detection")

    @property
    def skill_ratio(self) -> float | None:
        """``training.skill_ratio`` when the trainer measured it (None when absent, null or not finite:
        a flat held-out set has no ratio, and a bundle manifest holds no NaN)."""
        value = self.training.get("skill_ratio")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VigilInputError("training.skill_ratio must be a number or null", file=self.file,
                                  key="training.skill_ratio")
        return float(value) if np.isfinite(value) else None

    def train_rows(self) -> np.ndarray:
        """The raw training rows ``[time, features]`` (float64, 2-D)."""
        rows = np.asarray(np.load(self.path / TRAIN_ROWS_FILE, allow_pickle=False), dtype=np.float64)
        return rows[:, None] if rows.ndim == 1 else rows

    def split_train_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows the model was fitted on, held-out rows), exactly as the trainer split them.

        The recorded ``training.fit_rows`` range wins; runs without it fall back
        to :func:`split_rows` with the recorded validation fraction.
        """
        rows = self.train_rows()
        fit_range = self.training.get("fit_rows")
        if fit_range is None:
            return split_rows(rows, self.validation_fraction)
        ok = isinstance(fit_range, list) and len(fit_range) == 2 and all(_is_int(v) for v in fit_range)
        n_fit = int(fit_range[1]) - int(fit_range[0]) if ok else -1
        if not 0 < n_fit < len(rows):
            raise VigilInputError(f"training.fit_rows {fit_range} does not fit the {len(rows)} stored training rows",
                                  file=self.file, key="training.fit_rows")
        return rows[:n_fit], rows[n_fit:]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
