"""The agent's main loop: source -> quality -> window buffer -> scorer -> events -> sink.

One thread does the work (sinks may run their own I/O threads). Per block of
samples: :class:`~edge_agent.quality.SampleQuality` drops or repairs bad
samples and says where the window must restart; each clean sample is pushed
into the :class:`~edge_agent.core.WindowBuffer`; every completed window is
scored by the bundle's TFLite model, optionally EWMA-smoothed (the same
arithmetic as ``vigil score``), and fed to the
:class:`~edge_agent.alerts.EventDetector`, whose open/close events become
alert payloads for the sink. Health goes out every ``health.interval_s`` and
the systemd watchdog is pinged from this loop (so a hung loop gets restarted).

Shutdown (SIGTERM/SIGINT, or the end of a replay without loop): stop reading,
publish the close of a still-open event (``alerts.close_on_shutdown``, on by
default: every ``open`` a subscriber sees gets its ``close``, and a restart
starts new events with new ids anyway), publish a last health message, tell
systemd STOPPING=1, stop the sinks (which flush, publish ``offline`` and
disconnect), exit 0.

Rows: ``start_sample``/``end_sample`` count every sample the source delivered
since the agent started (bad ones and announced gaps included), so for a
replayed file they are the file's data row numbers, as in ``vigil score``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import numpy as np

from edge_agent.alerts import AlertEvent, AlertPolicy, EventDetector
from edge_agent.bundle import Bundle, load_bundle
from edge_agent.config import AgentConfig, compare_features, feature_key, make_configured_source, mqtt_settings
from edge_agent.core import Ewma, WindowBuffer
from edge_agent.errors import VigilInputError
from edge_agent.health import HealthTracker
from edge_agent.payload import alert_payload
from edge_agent.quality import SampleQuality
from edge_agent.sinks.base import AlertSink
from edge_agent.systemd import SystemdNotifier

log = logging.getLogger("vigil.agent")

_READ_TIMEOUT_S = 0.1
_ERROR_BACKOFF_S = 0.5
_OPEN_RETRY_MIN_S = 1.0
_OPEN_RETRY_MAX_S = 30.0


def configure_logging(level: str = "info") -> None:
    """One line per event on stdout (journald adds time and unit)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("vigil")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class FanoutSink:
    """Several sinks behind one: alerts go to all; a failing sink does not stop the others."""

    def __init__(self, sinks: list[tuple[str, AlertSink, bool]]) -> None:
        self.sinks = sinks  # (name, sink, takes_health)
        self.errors = 0

    def start(self) -> None:
        for _, sink, _ in self.sinks:
            sink.start()

    def publish_alert(self, payload: dict[str, Any]) -> None:
        for name, sink, _ in self.sinks:
            self._guard(name, sink.publish_alert, payload)

    def publish_health(self, payload: dict[str, Any]) -> None:
        for name, sink, takes_health in self.sinks:
            if takes_health:
                self._guard(name, sink.publish_health, payload)

    def stats(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"sink_errors": self.errors}
        for name, sink, _ in self.sinks:
            for key, value in sink.stats().items():
                # The broker's counters are the ones health reports unprefixed.
                merged[key if name == "mqtt" else f"{name}_{key}"] = value
        return merged

    def stop(self) -> None:
        for name, sink, _ in self.sinks:
            try:
                sink.stop()
            except Exception as exc:  # one sink failing to stop must not keep the others up
                log.error("sink %s: stop failed: %s", name, exc)

    def _guard(self, name: str, method: Any, payload: dict[str, Any]) -> None:
        try:
            method(payload)
        except Exception as exc:  # a full disk or a closed pipe must not kill the loop
            self.errors += 1
            log.error("sink %s: %s", name, exc)


def build_sink(config: AgentConfig) -> FanoutSink:
    """MQTT (with its spool) when a host is set, plus the JSONL file / stdout sinks."""
    sinks: list[tuple[str, AlertSink, bool]] = []
    settings = mqtt_settings(config)
    with_health = bool(config.values["sinks"]["health_jsonl"])
    if settings is not None:
        from edge_agent.mqtt.sink import MqttSink
        from edge_agent.spool import AlertSpool

        spool_cfg = config.values["spool"]
        try:
            spool_cfg["path"].parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VigilInputError(f"cannot create {spool_cfg['path'].parent}: {exc.strerror}",
                                  file=str(config.path), key="spool.path") from None
        spool = AlertSpool(spool_cfg["path"], spool_cfg["max_messages"], spool_cfg["max_age_s"])
        sinks.append(("mqtt", MqttSink(settings, config.device_id, spool), True))
    jsonl = config.values["sinks"]["jsonl"]
    if jsonl is not None:
        from edge_agent.sinks.jsonl import JsonlSink

        sinks.append(("jsonl", JsonlSink(jsonl, write_health=with_health), True))
    if config.values["sinks"]["stdout"] or not sinks:
        from edge_agent.sinks.stdout import StdoutSink

        sinks.append(("stdout", StdoutSink(as_json=True, show_health=with_health), True))
    return FanoutSink(sinks)


class AgentService:
    """``AgentService(config).run()`` -> exit code (0 after a clean stop)."""

    def __init__(self, config: AgentConfig, *, notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._stop_reason = ""
        self.row = 0  # samples delivered by the source so far (the next sample's row)
        self._source_open = False
        self._open_failures = 0
        self._next_open = 0.0
        self._read_exceptions = 0

    # ------------------------------------------------------------------ public

    def request_stop(self, reason: str = "requested") -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def run(self) -> int:
        restore = self._install_signal_handlers()
        try:
            self._setup()
            try:
                self.notifier.ready(status=f"scoring {self.config.device_id} with {self.bundle.model_id}")
                log.info("agent %s ready: model %s, %d features, window %d/hop %d, threshold %.6g, sink %s",
                         self.config.device_id, self.bundle.model_id, self.bundle.n_features,
                         self.bundle.spec.window, self.bundle.spec.hop, self.detector.limit,
                         ",".join(name for name, _, _ in self.sink.sinks))
                self._loop()
            finally:
                self._shutdown()
        finally:
            restore()
        return 0

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        from edge_agent.runtime import Scorer

        cfg = self.config
        self.bundle: Bundle = cfg.bundle or load_bundle(cfg.values["bundle"]["path"])
        self.scorer = Scorer(self.bundle, num_threads=cfg.values["bundle"]["num_threads"])
        self.source = make_configured_source(cfg, self.bundle)
        alerts = cfg.values["alerts"]
        policy = AlertPolicy(alerts["sensitivity"], alerts["k"], alerts["n"], alerts["m"], alerts["cooldown"])
        self.detector = EventDetector(self.bundle.threshold, policy)
        alpha = alerts["smoothing"] if alerts["smoothing"] is not None else self.bundle.smoothing_alpha
        self.smoother = Ewma(alpha)
        self.buffer = WindowBuffer(self.bundle.spec, self.bundle.n_features)
        self.quality: SampleQuality | None = None  # needs the source's rate, known once it is open
        self.health = HealthTracker(cfg.device_id, self.bundle.model_id)
        self.sink = build_sink(cfg)
        self.sink.start()

    def _open_source(self) -> bool:
        """Open the source when due; a missing sensor is retried with backoff, not fatal.

        A USB adapter that enumerates late or an I2C sensor on a loose cable must
        not leave the service dead; systemd keeps getting watchdog pings and
        health keeps going out while we wait.
        """
        if self._source_open:
            return True
        now = time.monotonic()
        if now < self._next_open:
            return False
        try:
            self.source.open()
        except VigilInputError as exc:
            self._open_failures += 1
            delay = min(_OPEN_RETRY_MAX_S, _OPEN_RETRY_MIN_S * 2 ** min(self._open_failures - 1, 8))
            self._next_open = now + delay
            if self._open_failures <= 3 or self._open_failures % 20 == 0:
                log.error("source unavailable (attempt %d, retrying in %.1f s): %s", self._open_failures, delay, exc)
            return False
        self._source_open = True
        # Feature names may be known only now (a device's header line); a mismatch is a config error.
        compare_features(list(self.source.features), self.bundle, self.config.path, feature_key(self.config.source))
        # A replayed row selection starts at its first file row, like `vigil score`.
        self.row = int(getattr(getattr(self.source, "table", None), "row_offset", 0) or 0)
        quality = self.config.values["quality"]
        rng = quality["valid_range"]
        self.quality = SampleQuality(self.bundle.n_features, valid_range=tuple(rng) if rng else None,
                                     policy=quality["policy"], rate_hz=self.source.sampling_rate_hz)
        log.info("source %s open: %s at %s Hz", self.config.source.get("kind"), ", ".join(self.source.features),
                 f"{self.source.sampling_rate_hz:g}" if self.source.sampling_rate_hz else "unknown")
        return True

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    # ------------------------------------------------------------------ loop

    def _loop(self) -> None:
        interval = float(self.config.values["health"]["interval_s"])
        next_health = time.monotonic() + interval
        while not self._stop.is_set():
            self.notifier.watchdog()
            if interval > 0 and time.monotonic() >= next_health:
                self._publish_health()
                next_health = time.monotonic() + interval
            if not self._open_source():
                self._stop.wait(_READ_TIMEOUT_S)
                continue
            try:
                block = self.source.read(_READ_TIMEOUT_S)
            except Exception as exc:  # the source contract says no raise; a driver bug must not kill us
                self._read_exceptions += 1
                if self._read_exceptions == 1 or self._read_exceptions % 100 == 0:
                    log.error("source read failed (%d so far): %s", self._read_exceptions, exc)
                self._stop.wait(_ERROR_BACKOFF_S)
                continue
            if block is None:
                self.request_stop("end of source")
                break
            if len(block):
                self._process(block)

    def _process(self, block: Any) -> None:
        """Push one block through quality, windowing, scoring and the detector."""
        n = len(block)
        first_row = self.row + int(block.gap_before)
        self.row = first_row + n
        self.health.add_samples(n)
        stamps = np.asarray(block.timestamps, dtype=np.float64)
        rows = _row_lookup(stamps, first_row)
        assert self.quality is not None  # set when the source opened
        for run in self.quality.clean(block):
            if run.reset_before:
                self.buffer.reset()
                self.smoother.reset()
            times = run.timestamps
            for i, window in self.buffer.push_many(run.values):
                self._score(window, rows(times[i]), float(times[i]))

    def _score(self, window: np.ndarray, row: int, stamp: float) -> None:
        started = time.perf_counter()
        result = self.scorer.score(window)
        self.health.add_window(time.perf_counter() - started)
        score = self.smoother.update(result.score)
        event = self.detector.update(row, stamp, score, result.feature_errors)
        if event is not None:
            self._emit(event)

    def _emit(self, event: AlertEvent, note: str = "") -> None:
        payload = alert_payload(event, device_id=self.config.device_id, model_id=self.bundle.model_id,
                                feature_names=self.bundle.features,
                                top=int(self.config.values["alerts"]["top_features"]))
        if event.phase.value == "open":
            self.health.events_opened += 1
        log.info("alert %s event %s samples %d-%d peak %.6g mean %.6g threshold %.6g windows %d top %s%s",
                 event.phase.value, event.event_id, event.start_row, event.end_row, event.peak_score,
                 event.mean_score, event.threshold, event.window_count,
                 ",".join(str(t["feature"]) for t in payload["top_features"]), note)
        self.sink.publish_alert(payload)
        self.health.alerts_published += 1

    def _publish_health(self) -> None:
        source = {**self.source.stats.as_dict(), "open_failures": self._open_failures,
                  "read_exceptions": self._read_exceptions}
        # Failed opens and reads that raised are sensor errors too.
        source["read_errors"] = int(source.get("read_errors", 0)) + self._open_failures + self._read_exceptions
        payload = self.health.payload(
            source=source,
            quality=self.quality.counters() if self.quality is not None else {},
            sink=self.sink.stats(),
            event_open=self.detector.open_event is not None,
        )
        log.debug("health %s", payload)
        self.sink.publish_health(payload)

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        reason = self._stop_reason or "error"
        log.info("stopping (%s)", reason)
        self.notifier.stopping(status=f"stopping: {reason}")
        if self._source_open:
            _quietly(self.source.close, "source close")
        if not hasattr(self, "sink"):
            return
        if self.config.values["alerts"]["close_on_shutdown"]:
            event = self.detector.close()
            if event is not None:
                self._emit(event, note=" (closed at shutdown)")
        if float(self.config.values["health"]["interval_s"]) > 0:
            _quietly(self._publish_health, "final health")
        self._drain(float(self.config.values["mqtt"]["drain_timeout_s"]))
        self.sink.stop()
        log.info("stopped: %d samples, %d windows scored, %d alerts", self.health.samples,
                 self.health.windows_scored, self.health.alerts_published)

    def _drain(self, timeout: float) -> None:
        """Give the broker a bounded chance to take what is still spooled before we go.

        A short replay can end before the first connection is even up; without
        this the alerts would wait in the spool for the next start.
        """
        deadline = time.monotonic() + timeout
        for name, sink, _ in self.sink.sinks:
            if name != "mqtt":
                continue
            while time.monotonic() < deadline:
                self.notifier.watchdog()
                stats = sink.stats()
                if not stats.get("spool_depth") and not stats.get("inflight"):
                    break
                time.sleep(0.05)
            left = sink.stats().get("spool_depth", 0)
            if left:
                log.warning("stopping with %d alert(s) still spooled (broker %s); they go out at the next start",
                            left, "connected" if sink.stats().get("connected") else "unreachable")


def _row_lookup(stamps: np.ndarray, first_row: int) -> Any:
    """Map a clean sample's timestamp back to its row (quality runs drop rows, not stamps)."""
    if stamps.size < 2 or bool(np.all(np.diff(stamps) > 0)):
        return lambda t: first_row + int(np.searchsorted(stamps, t))
    index = {float(t): first_row + i for i, t in enumerate(stamps)}  # rare: stamps not increasing
    return lambda t: index.get(float(t), first_row)


def _quietly(fn: Any, what: str) -> None:
    try:
        fn()
    except Exception as exc:  # shutdown must go on
        log.error("%s failed: %s", what, exc)


__all__ = ["AgentService", "FanoutSink", "build_sink", "configure_logging"]
