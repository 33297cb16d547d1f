"""Replay a file through :class:`StreamingPipeline`, unpaced: ``vigil score`` and ``vigil evaluate``.

The file is read by the agent's own replay source (``pace = "fast"``), so the
rows, timestamps and NaN handling are the device's; per-row scores follow the
streaming convention (a row carries the score of the latest window that ended
at or before it, none before the first window or after a window reset).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.errors import VigilInputError
from edge_agent.pipeline.settings import PipelineSettings
from edge_agent.pipeline.stream import StreamingPipeline, WindowLog

REPLAY_BLOCK_ROWS = 4096


@dataclass
class ReplayResult:
    rows: np.ndarray  # int64 file data rows (0-based, header not counted)
    timestamps: np.ndarray | None  # float64 epoch seconds per row, when the file has them
    scores: np.ndarray  # float64 per row (smoothed window score), NaN where no window applies
    thresholds: np.ndarray  # float64 per row: the threshold in force (NaN where no score)
    anomalous: np.ndarray  # bool per row: the window decision carried to the row
    windows: WindowLog
    payloads: list[dict[str, Any]]  # every alert payload, both phases, as the agent publishes them
    counters: dict[str, Any]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The close payload of every anomaly event (one per event), in order."""
        return [p for p in self.payloads if p.get("phase") == "close" and p.get("kind", "anomaly") == "anomaly"]

    @property
    def threshold(self) -> float:
        """The static threshold in force (the floor of a dynamic one)."""
        return float(self.counters["threshold"].get("floor", self.counters["threshold"].get("value", math.nan)))


def replay_file(bundle: Bundle, data: str | Path, *, settings: PipelineSettings | None = None,
                rows: tuple[int | None, int | None] | None = None, columns: list[str] | None = None,
                num_threads: int = 1, scorer: Any = None, rate_hz: float | None = None) -> ReplayResult:
    """Score ``data`` through the pipeline; ``columns`` are the file's columns for the bundle's features.

    ``rate_hz``: the source's sampling rate when a config sets one (gaps are
    judged by it); None = the file's own (regular timestamps or WAV header).
    """
    from edge_agent.sources.replay import ReplaySource

    settings = settings or PipelineSettings.for_bundle(bundle)
    inputs = bundle.input_features  # the sensor columns (a spectral bundle's model sees frame features)
    chosen = list(columns) if columns else list(inputs)
    if len(chosen) != len(inputs):
        raise VigilInputError(f"{len(chosen)} columns given, the bundle needs {len(inputs)} "
                              f"({', '.join(inputs)})", key="columns")
    # Timestamp column and rate come from the file, as for the agent's replay source with its defaults.
    source = ReplaySource(data, columns=chosen, rows=rows, rate_hz=rate_hz, pace="fast",
                          block_rows=REPLAY_BLOCK_ROWS)
    table = source.table
    if table.n_rows < bundle.spec.window:
        raise VigilInputError(f"has {table.n_rows} data rows (after the rows selection); needs at least "
                              f"{bundle.spec.window} rows for one window", file=str(data))
    pipeline = StreamingPipeline(bundle, settings, scorer=scorer, rate_hz=source.sampling_rate_hz,
                                 first_row=table.row_offset, num_threads=num_threads, log_windows=True)
    source.open()
    payloads: list[dict[str, Any]] = []
    while (block := source.read()) is not None:
        payloads.extend(pipeline.process(block))
    payloads.extend(pipeline.finish())
    assert pipeline.log is not None
    row_numbers = np.arange(table.n_rows, dtype=np.int64) + table.row_offset
    scores, thresholds, anomalous = _per_row(pipeline.log, row_numbers)
    stamps = None if table.timestamps is None else np.asarray(table.timestamps, dtype=np.float64)
    return ReplayResult(row_numbers, stamps, scores, thresholds, anomalous, pipeline.log, payloads,
                        pipeline.counters())


def _per_row(log: WindowLog, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carry each window's values forward to the rows after it, up to the next window or reset."""
    n = len(rows)
    scores = np.full(n, np.nan)
    thresholds = np.full(n, np.nan)
    anomalous = np.zeros(n, dtype=bool)
    if not log.rows:
        return scores, thresholds, anomalous
    ends = np.asarray(log.rows, dtype=np.int64)
    idx = np.searchsorted(ends, rows, side="right") - 1  # latest window ending at or before the row
    has = idx >= 0
    if log.reset_rows:
        resets = np.asarray(log.reset_rows, dtype=np.int64)
        last_reset = np.searchsorted(resets, rows, side="right") - 1
        reset_row = np.where(last_reset >= 0, resets[np.maximum(last_reset, 0)], -1)
        has &= ~((reset_row >= 0) & (ends[np.maximum(idx, 0)] < reset_row))
    pick = idx[has]
    scores[has] = np.asarray(log.scores)[pick]
    thresholds[has] = np.asarray(log.thresholds)[pick]
    anomalous[has] = np.asarray(log.anomalous)[pick]
    return scores, thresholds, anomalous


def write_scores_csv(result: ReplayResult, path: str | Path) -> None:
    """``row,score,threshold,anomalous`` (+ ``timestamp``); blank where no window applies."""
    header = ["row", "score", "threshold", "anomalous"] + (["timestamp"] if result.timestamps is not None else [])
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, row in enumerate(result.rows):
            score = result.scores[i]
            blank = math.isnan(score)
            line: list[Any] = [int(row), "" if blank else f"{score:.10g}",
                               "" if blank else f"{result.thresholds[i]:.10g}",
                               "" if blank else int(result.anomalous[i])]
            if result.timestamps is not None:
                line.append(f"{result.timestamps[i]:.6f}")
            writer.writerow(line)


def write_events_jsonl(payloads: list[dict[str, Any]], path: str | Path) -> None:
    """One alert payload per line, both phases, exactly as the agent publishes them."""
    with Path(path).open("w") as handle:
        for payload in payloads:
            handle.write(json.dumps(payload, sort_keys=False) + "\n")
