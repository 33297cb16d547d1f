"""A trained run seen through the device's streaming pipeline (``vigil evaluate``, benchmarks).

:func:`bundle_view` describes the run as a :class:`~edge_agent.bundle.Bundle`
(features, window, scaler, threshold, score, detection settings; no TFLite
model), and :class:`KerasWindowScorer` scores windows with the Keras model
through the same numeric core, many at a time. Together they let the
workstation replay a file through :class:`edge_agent.pipeline.StreamingPipeline`
and report the events the device would publish, before any conversion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.core.scoring import WindowScore, score_windows_with_steps
from trainer.keras_scoring import _graph_function
from trainer.rundir import RunInfo


def bundle_view(run: RunInfo) -> Bundle:
    meta = run.meta
    manifest = {"quantization": {"mode": "keras"}, "timestamp_column": meta.get("timestamp_column"),
                "detection": meta.get("detection")}
    return Bundle(
        path=str(run.path), manifest=manifest, model_bytes=b"", features=run.features, spec=run.spec,
        scaler=run.scaler, threshold=run.threshold, score_function=run.score_function,
        weights=run.score_weights, smoothing_alpha=run.smoothing_alpha,
        model_id=f"run:{run.path.name}", sampling_rate_hz=meta.get("sampling_rate_hz"),
    )


class KerasWindowScorer:
    """``score`` / ``score_many`` like :class:`edge_agent.runtime.Scorer`, with the run's Keras model."""

    def __init__(self, run: RunInfo, model: Any = None) -> None:
        self.model = model if model is not None else run.load_model()
        self.scaler = run.scaler
        self.fn = run.score_function
        self.weights = run.score_weights
        self._reconstruct = _graph_function(self.model)

    def score(self, raw_window: np.ndarray) -> WindowScore:
        return self.score_many(np.asarray(raw_window)[None])[0]

    def score_many(self, raw_windows: np.ndarray) -> list[WindowScore]:
        scaled = np.ascontiguousarray(self.scaler.transform(raw_windows), dtype=np.float32)
        # Always the traced graph function: an eager LSTM call costs ~0.2 s however few windows it gets.
        recon = np.concatenate([np.asarray(self._reconstruct(scaled[i:i + 256])) for i in range(0, len(scaled), 256)])
        scores, errors, steps = score_windows_with_steps(scaled, recon, self.fn, self.weights)
        return [WindowScore(float(s), e, st) for s, e, st in zip(scores, errors, steps, strict=True)]
