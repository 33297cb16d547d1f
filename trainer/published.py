"""What the device would publish for labeled data, and how it scores against the labels.

:func:`published_events` replays the data file through the device's streaming
pipeline (:mod:`edge_agent.pipeline`) with the bundle's recommended alert
policy (or the given settings), then judges the *published* anomaly events, not
rows, with the event rule of :mod:`trainer.metrics`: an event that overlaps a
label is a hit, one that overlaps none is a false alarm, a label no event
overlaps is a miss. Sensor-fault events are reported beside them, not counted
as anomaly detections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.pipeline import PipelineSettings, ReplayResult, replay_file
from trainer import metrics as M


def published_events(bundle: Bundle, data: str | Path, label_ranges: list[tuple[int, int]], *,
                     rows: tuple[int | None, int | None] | None = None, columns: list[str] | None = None,
                     scorer: Any = None, settings: PipelineSettings | None = None) -> dict[str, Any]:
    """Replay ``data`` and score the published events against inclusive file-row ``label_ranges``."""
    result = replay_file(bundle, data, settings=settings, rows=rows, columns=columns, scorer=scorer)
    return judge(result, label_ranges)


def event_ranges(result: ReplayResult, kind: str = "anomaly") -> list[tuple[int, int]]:
    """``[start_sample, end_sample]`` of each closed event of ``kind`` (file rows, inclusive)."""
    return [(int(p["start_sample"]), int(p["end_sample"])) for p in result.payloads
            if p.get("phase") == "close" and p.get("kind", "anomaly") == kind]


def judge(result: ReplayResult, label_ranges: list[tuple[int, int]]) -> dict[str, Any]:
    first = int(result.rows[0]) if len(result.rows) else 0
    n = len(result.rows)
    events = event_ranges(result)
    pred = np.zeros(n, dtype=bool)
    for start, end in events:
        pred[max(0, start - first):max(0, end - first + 1)] = True
    local = [(s - first, e - first) for s, e in label_ranges]
    counts = M.event_counts(pred, local)
    faults = [{"fault": p.get("fault"), "feature": p.get("feature"), "start_sample": p["start_sample"],
               "end_sample": p["end_sample"]} for p in result.payloads
              if p.get("phase") == "close" and p.get("kind") == "sensor_fault"]
    return {
        "event": counts.to_dict(),
        "events": [list(e) for e in events],
        "event_details": [{"start_sample": p["start_sample"], "end_sample": p["end_sample"],
                           "peak_score": p.get("peak_score"), "top_features": p.get("top_features", [])}
                          for p in result.payloads
                          if p.get("phase") == "close" and p.get("kind", "anomaly") == "anomaly"],
        "n_events": len(events),
        "flagged_rows": int(pred.sum()),
        "sensor_faults": faults,
        "threshold": result.counters.get("threshold", {}),
        "windows_scored": result.counters.get("windows_scored"),
        "result": result,
    }


def decision_scores(bundle: Bundle, values: np.ndarray, scorer: Any, settings: PipelineSettings,
                    rate_hz: float | None = None) -> np.ndarray:
    """The smoothed score of every decision the pipeline makes on ``values`` ``[rows, features]``.

    What a static threshold for ``settings`` (its score mode and smoothing)
    must be calibrated on: the held-out rows replayed through the device's
    pipeline, with the threshold and sensor checks out of the way.
    """
    from dataclasses import replace

    from edge_agent.pipeline import StreamingPipeline
    from edge_agent.sources.base import SampleBlock

    quiet = replace(settings, dynamic_threshold=False, sensor_faults=False)
    pipeline = StreamingPipeline(bundle, quiet, scorer=scorer, rate_hz=rate_hz, log_windows=True)
    rows = np.asarray(values, dtype=np.float32)
    stamps = np.arange(len(rows), dtype=np.float64) / (rate_hz or 1.0)
    pipeline.process(SampleBlock(rows, stamps))
    assert pipeline.log is not None
    return np.asarray(pipeline.log.scores, dtype=np.float64)
