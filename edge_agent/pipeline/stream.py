""":class:`StreamingPipeline`: sample blocks in, alert payloads out (see the package docstring).

Where a sample enters: :meth:`StreamingPipeline.process`. Where a window is
scored: :meth:`StreamingPipeline._score_window`. Where an alert leaves:
the payloads that ``process`` / ``finish`` return (the caller publishes them).

Results do not depend on how the stream is cut into blocks: the quality step,
the window buffer and every detector carry their state across blocks, so a
sensor's 10-sample reads and a replay's 4096-row blocks give the same events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.alerts import AlertEvent, CloseReason, EventDetector, EventPhase
from edge_agent.bundle import Bundle
from edge_agent.core import Ewma, WindowBuffer
from edge_agent.detection.settings import ScoreSettings
from edge_agent.health import LatencyRing
from edge_agent.payload import alert_payload, sensor_fault_payload
from edge_agent.pipeline.frontend import frontend_for
from edge_agent.pipeline.localize import RowScorer
from edge_agent.pipeline.settings import PipelineSettings
from edge_agent.pipeline.thresholds import ThresholdDecider, detection_settings, make_threshold
from edge_agent.quality import CleanRun, SampleQuality
from edge_agent.sources.base import SampleBlock

BATCH_WINDOWS = 256  # windows scored per score_many call at most (bounds a replay's memory)


@dataclass
class WindowLog:
    """Every scored window, for offline use (``vigil score`` / ``evaluate``); the device keeps none."""

    rows: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    raw_scores: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # smoothed: what the decision used
    thresholds: list[float] = field(default_factory=list)
    anomalous: list[bool] = field(default_factory=list)
    feature_errors: list[np.ndarray] = field(default_factory=list)
    reset_rows: list[int] = field(default_factory=list)  # first row after each window reset

    def add(self, row: int, stamp: float, raw: float, score: float, threshold: float, anomalous: bool,
            errors: np.ndarray) -> None:
        self.rows.append(row)
        self.times.append(stamp)
        self.raw_scores.append(raw)
        self.scores.append(score)
        self.thresholds.append(threshold)
        self.anomalous.append(anomalous)
        self.feature_errors.append(np.array(errors, dtype=np.float64))


class StreamingPipeline:
    """One bundle's path from samples to alert payloads; no I/O, no threads."""

    def __init__(self, bundle: Bundle, settings: PipelineSettings, *, scorer: Any = None,
                 rate_hz: float | None = None, first_row: int = 0, num_threads: int = 1,
                 log_windows: bool = False) -> None:
        if scorer is None:
            from edge_agent.runtime import Scorer

            scorer = Scorer(bundle, num_threads=num_threads)
        self.bundle = bundle
        self.settings = settings
        self.scorer = scorer
        self.row = int(first_row)  # the next sample's stream row
        self.frontend = frontend_for(bundle)  # samples -> the model's rows (raw: the samples; spectral: frames)
        self.quality = SampleQuality(len(bundle.input_features), valid_range=settings.valid_range,
                                     policy=settings.quality_policy, rate_hz=rate_hz)
        self.buffer = WindowBuffer(bundle.spec, bundle.n_features)
        self.smoother = Ewma(settings.smoothing_alpha)
        model_rate = self.frontend.output_rate(rate_hz or bundle.sampling_rate_hz)  # rows/s the model sees
        self.threshold: ThresholdDecider = make_threshold(bundle, settings, model_rate)
        self.detector = EventDetector(bundle.threshold, settings.policy)
        self.sensor_health = _make_sensor_health(bundle, settings, rate_hz)
        self.row_scorer = _make_row_scorer(bundle, settings)
        self.log = WindowLog() if log_windows else None
        # A scorer with score_many (a Keras model on a workstation) gets each run's windows at once.
        self._batch = getattr(scorer, "score_many", None)
        self.latency = LatencyRing()
        self.samples = 0
        self.windows_scored = 0
        self.events_opened = 0
        self.alerts_emitted = 0

    # ------------------------------------------------------------------ public

    @property
    def event_open(self) -> bool:
        return self.detector.open_event is not None

    def process(self, block: SampleBlock) -> list[dict[str, Any]]:
        """Push one block; return the alert payloads (opens and closes) it caused, in order."""
        n = len(block)
        if n == 0:
            return []
        first_row = self.row + int(block.gap_before)
        self.row = first_row + n
        self.samples += n
        out: list[tuple[int, int, dict[str, Any]]] = []  # (decision row, 0 anomaly / 1 sensor, payload)
        for run in self.quality.clean(block, first_row):
            self._push_run(self.frontend.apply(run), out)
        if self.sensor_health is not None:
            self._check_sensors(block, first_row, out)
        if len(out) > 1:
            out.sort(key=lambda item: (item[0], item[1]))  # stable: same-row anomaly events keep their order
        return [payload for _, _, payload in out]

    def finish(self, reason: CloseReason = CloseReason.END_OF_STREAM) -> list[dict[str, Any]]:
        """Close what is open (end of a replay, or a clean stop when the settings say so)."""
        out: list[dict[str, Any]] = []
        event = self.detector.close(reason)
        if event is not None:
            out.append(self._payload(event))
        if self.sensor_health is not None:
            out.extend(self._sensor_payloads(self.sensor_health.close_all(reason.value)))
        return out

    def counters(self) -> dict[str, Any]:
        """Health fields the pipeline owns."""
        out: dict[str, Any] = {
            "samples": self.samples,
            "windows_scored": self.windows_scored,
            "events_opened": self.events_opened,
            "alerts_emitted": self.alerts_emitted,
            "scoring_latency_ms": self.latency.percentiles_ms(),
            "quality": self.quality.counters(),
            "threshold": self.threshold.state(),
        }
        if self.sensor_health is not None:
            out["sensor_health"] = self.sensor_health.counters()
        return out

    # ------------------------------------------------------------------ internals

    def _push_run(self, run: CleanRun, out: list[tuple[int, int, dict[str, Any]]]) -> None:
        if run.reset_before:
            self.buffer.reset()
            self.smoother.reset()
            if self.row_scorer is not None:
                self.row_scorer.reset()
            if self.log is not None and len(run.rows):
                self.log.reset_rows.append(int(run.rows[0]))
        rows, times = run.rows, run.timestamps
        if self._batch is not None:
            self._push_run_batched(run, out)
            return
        if self.row_scorer is not None:
            self._push_run_rows(run, out)
            return
        for i, window in self.buffer.push_many(run.values):
            started = time.perf_counter()
            result = self.scorer.score(window)
            self.latency.add(time.perf_counter() - started)
            event = self._decide(result, int(rows[i]), float(times[i]))
            if event is not None:
                out.append((int(rows[i]), 0, self._payload(event)))

    def _push_run_rows(self, run: CleanRun, out: list[tuple[int, int, dict[str, Any]]]) -> None:
        """Row mode: the run's windows scored one by one, their rows aggregated in one go, then decided in order."""
        ends, results = [], []
        for i, window in self.buffer.push_many(run.values):
            started = time.perf_counter()
            results.append(self.scorer.score(window))
            self.latency.add(time.perf_counter() - started)
            ends.append(i)
        self._decide_rows_of_run(run, ends, results, out)

    def _push_run_batched(self, run: CleanRun, out: list[tuple[int, int, dict[str, Any]]]) -> None:
        """The run's windows scored in batches (``score_many``); decisions stay window by window, in order.

        A device read gives a few windows per call; a replay's 4096-row block at hop 1 would give
        thousands, so at most ``BATCH_WINDOWS`` raw windows are held at a time.
        """
        ends: list[int] = []
        windows: list[np.ndarray] = []
        results: list[Any] = []
        for i, window in self.buffer.push_many(run.values):
            ends.append(i)
            windows.append(window.copy())  # the buffer's view is only valid until the next window
            if len(windows) == BATCH_WINDOWS:
                results.extend(self._score_batch(windows))
                windows = []
        if windows:
            results.extend(self._score_batch(windows))
        if self.row_scorer is not None:
            self._decide_rows_of_run(run, ends, results, out)
            return
        for i, result in zip(ends, results, strict=True):
            event = self._decide(result, int(run.rows[i]), float(run.timestamps[i]))
            if event is not None:
                out.append((int(run.rows[i]), 0, self._payload(event)))

    def _decide_rows_of_run(self, run: CleanRun, ends: list[int], results: list[Any],
                            out: list[tuple[int, int, dict[str, Any]]]) -> None:
        """Row mode: the run's rows and windows to the row scorer at once, then one decision per window."""
        rows = self.row_scorer
        assert rows is not None
        rows.extend(run.rows, run.timestamps)
        if not results:
            return
        newest = len(run.rows) - 1
        decisions = rows.decide_many(results, [newest - i for i in ends])
        for i, result, decision in zip(ends, results, decisions, strict=True):
            event = self._decide_rows(result, decision)
            if event is not None:
                out.append((int(run.rows[i]), 0, self._payload(event)))

    def _score_batch(self, windows: list[np.ndarray]) -> list[Any]:
        assert self._batch is not None
        started = time.perf_counter()
        results = list(self._batch(np.stack(windows)))
        per_window = (time.perf_counter() - started) / len(windows)
        for _ in results:
            self.latency.add(per_window)
        return results

    def _decide(self, result: Any, row: int, stamp: float) -> AlertEvent | None:
        """Smoothing, threshold and event logic for one scored window (the order matters: causal)."""
        self.windows_scored += 1
        score = self.smoother.update(result.score)
        anomalous, threshold = self.threshold.decide(score)
        if self.log is not None:
            self.log.add(row, stamp, result.score, score, threshold, anomalous, result.feature_errors)
        return self.detector.update(row, stamp, score, result.feature_errors, anomalous, threshold)

    def _decide_rows(self, result: Any, decision: tuple[float, int, int] | None) -> AlertEvent | None:
        """:meth:`_decide` on the localized score of the rows this window finalized (row mode)."""
        self.windows_scored += 1
        rows = self.row_scorer
        assert rows is not None
        if decision is None:
            return None
        raw, first, last = decision
        score = self.smoother.update(raw)
        anomalous, threshold = self.threshold.decide(score)
        if self.log is not None:  # logged at the first finalized row: the rows it covers get its value
            self.log.add(*rows.row_at(first), raw, score, threshold, anomalous, result.feature_errors)
        if not anomalous:  # a normal decision's rows are never an event's start or end
            return self.detector.update(0, None, score, result.feature_errors, False, threshold)
        start_row, start_time, row, stamp = rows.event_span(threshold, first, last)
        return self.detector.update(row, stamp, score, result.feature_errors, anomalous, threshold,
                                    start_row=start_row, start_time=start_time)

    def _check_sensors(self, block: SampleBlock, first_row: int, out: list[tuple[int, int, dict[str, Any]]]) -> None:
        """The sensor-health checks on the block, cut where the checks' chunks end.

        The checks judge fixed chunks of samples; each chunk's verdict is placed at the chunk's
        last row, so the order of anomaly and sensor events does not depend on read sizes.
        """
        health = self.sensor_health
        if block.valid is not None:  # invalid rows become NaN and count as missing: the block path does that
            for piece, row in _pieces(block, first_row, health.samples_to_next_check,
                                      health.settings.check_samples):
                decided_at = row + len(piece) - 1
                out.extend((decided_at, 1, p) for p in self._sensor_payloads(health.process(piece, row)))
            return
        values, stamps, n = block.values, block.timestamps, len(block)
        a, b, missing = 0, min(n, health.samples_to_next_check), int(block.gap_before)
        size = health.settings.check_samples
        if n < b + size and not missing and not health.dropout_open:
            # At most one chunk completes in this read and no dropout can open or close: every event
            # comes from judging that chunk, at its last row, as the pieces would give them.
            events = health.update(values, stamps, first_row=first_row)
            if events:
                decided_at = first_row + b - 1
                out.extend((decided_at, 1, p) for p in self._sensor_payloads(events))
            return
        while a < n:  # the pieces of _pieces, without building a SampleBlock for each
            events = health.update(values[a:b], stamps[a:b], first_row=first_row + a, missing=missing)
            if events:
                decided_at = first_row + b - 1
                out.extend((decided_at, 1, p) for p in self._sensor_payloads(events))
            a, b, missing = b, min(n, b + size), 0
        return

    def _payload(self, event: AlertEvent) -> dict[str, Any]:
        if event.phase is EventPhase.OPEN:
            self.events_opened += 1
        self.alerts_emitted += 1
        payload = alert_payload(event, device_id=self.settings.device_id, model_id=self.bundle.model_id,
                                feature_names=self.bundle.features, top=self.settings.top_features)
        return payload

    def _sensor_payloads(self, events: list[Any]) -> list[dict[str, Any]]:
        out = []
        for event in events:
            self.alerts_emitted += 1
            out.append(sensor_fault_payload(event, device_id=self.settings.device_id,
                                            model_id=self.bundle.model_id))
        return out


def _pieces(block: SampleBlock, first_row: int, first: int, size: int) -> list[tuple[SampleBlock, int]]:
    """``block`` split after ``first`` samples and then every ``size``; the gap stays with the first piece."""
    n = len(block)
    if n <= first:
        return [(block, first_row)]
    cuts = [0, *range(first, n, size), n]
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if a == b:
            continue
        valid = None if block.valid is None else block.valid[a:b]
        piece = SampleBlock(block.values[a:b], block.timestamps[a:b], valid, block.gap_before if a == 0 else 0)
        out.append((piece, first_row + a))
    return out


def _make_row_scorer(bundle: Bundle, settings: PipelineSettings) -> RowScorer | None:
    """The row-mode scorer when the settings or the bundle's ``detection.score`` ask for it, else None."""
    score = settings.score
    if score is None:
        detection, _ = detection_settings(bundle)
        score = detection.score if detection is not None else ScoreSettings()
    return RowScorer(bundle, score) if score.mode == "row" else None


def _make_sensor_health(bundle: Bundle, settings: PipelineSettings, rate_hz: float | None) -> Any:
    """The bundle's sensor-health monitor, or None (off, or a bundle without training stats)."""
    if not settings.sensor_faults:
        return None
    from edge_agent.pipeline.thresholds import sensor_health_for

    return sensor_health_for(bundle, rate_hz)
