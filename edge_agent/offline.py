"""Offline scoring of a file through the device's own streaming path (``vigil score``).

Rows are fed one at a time through the same objects the agent runs: the
bundle's scaler (inside :class:`Scorer`), :class:`WindowBuffer`, the TFLite
interpreter, :class:`Ewma` when the bundle smooths, and
:class:`EventDetector`. A window is scored when its last row arrives; every
row carries the (smoothed) score of the latest window that ended at or before
it, and rows before the first complete window have no score. That is what a
device would have published for the same samples.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.alerts import AlertEvent, AlertPolicy, EventDetector, EventPhase
from edge_agent.bundle import Bundle, load_bundle
from edge_agent.core import Ewma, WindowBuffer
from edge_agent.errors import VigilInputError
from edge_agent.payload import alert_payload
from edge_agent.readers import load_table
from edge_agent.runtime import Scorer

OFFLINE_DEVICE_ID = "offline"


@dataclass
class StepResult:
    """What one pushed row produced."""

    score: float  # latest (smoothed) window score, NaN before the first window
    scored: bool  # a window ended at this row
    events: list[AlertEvent] = field(default_factory=list)


class OfflineScorer:
    """Streaming scorer: push rows in order, get per-row scores and alert events."""

    def __init__(
        self, bundle: Bundle, policy: AlertPolicy | None = None, num_threads: int = 1, scorer: Scorer | None = None
    ) -> None:
        self.bundle = bundle
        self.scorer = scorer or Scorer(bundle, num_threads=num_threads)
        self.buffer = WindowBuffer(bundle.spec, bundle.n_features)
        self.smoother = Ewma(bundle.smoothing_alpha)
        self.detector = EventDetector(bundle.threshold, policy)
        self.score = math.nan
        self.windows_scored = 0

    @property
    def limit(self) -> float:
        """The score a window must exceed to count as anomalous (threshold x sensitivity)."""
        return self.detector.limit

    def push(self, row: int, time: float | None, sample: np.ndarray) -> StepResult:
        """Add one raw ``[features]`` sample (file row ``row``, time in epoch seconds or None)."""
        window = self.buffer.push(sample)
        if window is None:
            return StepResult(self.score, False)
        result = self.scorer.score(window)
        self.score = self.smoother.update(result.score)
        self.windows_scored += 1
        event = self.detector.update(row, time, self.score, result.feature_errors)
        return StepResult(self.score, True, [] if event is None else [event])

    def gap(self) -> None:
        """Samples are missing: start a fresh window and smoothing (an open event stays open)."""
        self.buffer.reset()
        self.smoother.reset()
        self.score = math.nan

    def finish(self) -> list[AlertEvent]:
        """End of stream: close the open event, if any."""
        closed = self.detector.close()
        return [] if closed is None else [closed]


@dataclass
class OfflineResult:
    rows: np.ndarray  # int64 file data rows (0-based, header not counted)
    timestamps: np.ndarray | None  # float64 epoch seconds per row, when the data has them
    scores: np.ndarray  # float64 per row, NaN before the first complete window
    anomalous: np.ndarray  # bool per row (False where there is no score)
    threshold: float  # effective limit: bundle threshold x sensitivity
    events: list[dict[str, Any]]  # one alert payload (the close) per event
    windows_scored: int


def score_file(
    bundle: Bundle | str | Path,
    data: str | Path,
    rows: tuple[int | None, int | None] | None = None,
    policy: AlertPolicy | None = None,
    columns: list[str] | None = None,
    num_threads: int = 1,
) -> OfflineResult:
    """Score ``data`` row by row through the agent's path (see the module docstring).

    ``columns`` names the file's columns that feed the bundle's features, in
    the bundle's order; by default the columns named like the features.
    """
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    chosen = list(columns) if columns else bundle.features
    if len(chosen) != bundle.n_features:
        raise VigilInputError(
            f"{len(chosen)} columns given, the bundle needs {bundle.n_features} ({', '.join(bundle.features)})",
            key="columns",
        )
    table = load_table(data, columns=chosen, rows=rows, min_rows=bundle.spec.window)
    scorer = OfflineScorer(bundle, policy, num_threads=num_threads)
    n = table.n_rows
    scores = np.full(n, np.nan)
    closed: list[AlertEvent] = []
    values = np.ascontiguousarray(table.values, dtype=np.float32)
    stamps = table.timestamps
    for i in range(n):
        time = None if stamps is None else float(stamps[i])
        step = scorer.push(table.row_offset + i, time, values[i])
        scores[i] = step.score
        closed.extend(e for e in step.events if e.phase is EventPhase.CLOSE)
    closed.extend(scorer.finish())
    anomalous = np.zeros(n, dtype=bool)
    has_score = ~np.isnan(scores)
    anomalous[has_score] = scores[has_score] > scorer.limit
    events = [
        alert_payload(e, device_id=OFFLINE_DEVICE_ID, model_id=bundle.model_id,
                      feature_names=bundle.features, top=bundle.n_features)
        for e in closed
    ]
    return OfflineResult(
        rows=np.arange(n, dtype=np.int64) + table.row_offset,
        timestamps=None if stamps is None else np.asarray(stamps, dtype=np.float64),
        scores=scores,
        anomalous=anomalous,
        threshold=float(scorer.limit),
        events=events,
        windows_scored=scorer.windows_scored,
    )


def write_scores_csv(result: OfflineResult, path: str | Path) -> None:
    """``row,score,threshold,anomalous`` (+ ``timestamp``); blank score before the first window."""
    header = ["row", "score", "threshold", "anomalous"] + (["timestamp"] if result.timestamps is not None else [])
    threshold = f"{result.threshold:.10g}"
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, row in enumerate(result.rows):
            score = result.scores[i]
            blank = math.isnan(score)
            line = [int(row), "" if blank else f"{score:.10g}", threshold, "" if blank else int(result.anomalous[i])]
            if result.timestamps is not None:
                line.append(f"{result.timestamps[i]:.6f}")
            writer.writerow(line)


def write_events_jsonl(result: OfflineResult, path: str | Path) -> None:
    """One alert payload (schema ``vigil.alert/1``) per event, in order."""
    with Path(path).open("w") as handle:
        for event in result.events:
            handle.write(json.dumps(event, sort_keys=False) + "\n")
