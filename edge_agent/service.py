"""The agent: I/O around the streaming pipeline (source, sinks, signals, watchdog, health timer).

One thread does the work (sinks may run their own I/O threads). Each block the
source delivers goes into :class:`~edge_agent.pipeline.StreamingPipeline`
(quality, windows, TFLite scoring, smoothing, threshold, events, sensor
health); the alert payloads it returns go to the sinks. Health goes out every
``health.interval_s`` and the systemd watchdog is pinged from this loop (so a
hung loop gets restarted). ``vigil score --config`` runs the same pipeline on
a file, so what it reports is what this publishes.

Shutdown (SIGTERM/SIGINT, or the end of a replay without loop): stop reading,
publish the close of a still-open event with ``close_reason`` ``agent_stopped``
or ``end_of_stream`` (``alerts.close_on_shutdown``, on by default), publish a
last health message, tell systemd STOPPING=1, stop the sinks (which flush,
publish ``offline`` and disconnect), exit 0. After a crash or ``kill -9`` the
next start closes the events left open with ``agent_restarted``.

Remote commands (:mod:`edge_agent.rollout`, with a broker and ``[rollout]``
enabled): between blocks the loop lets the rollout controller handle a
``vigil deploy`` / ``vigil policy`` command and judge a running probation; it
swaps bundle, scorer and settings through :meth:`AgentService.install`.

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
from pathlib import Path
from types import FrameType
from typing import Any, cast

from edge_agent.addons import AgentAddons
from edge_agent.alerts import CloseReason
from edge_agent.bundle import Bundle, load_bundle
from edge_agent.config import AgentConfig, compare_features, feature_key, make_configured_source
from edge_agent.errors import VigilInputError
from edge_agent.event_state import STATE_FILE, OpenEventState, restart_close
from edge_agent.health import HealthTracker
from edge_agent.pipeline import PipelineSettings, StreamingPipeline
from edge_agent.sinks.fanout import FanoutSink, build_sink
from edge_agent.sources.gather import BlockGatherer
from edge_agent.systemd import SystemdNotifier

log = logging.getLogger("vigil.agent")

_READ_TIMEOUT_S = 0.1
# The pipeline gets blocks of about this many seconds of samples (BlockGatherer): its per-block cost is
# paid 4 times a second instead of 10-60 (paced replay, sensor FIFOs); alerts come at most this much later.
BLOCK_S = 0.25
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


class AgentService:
    """``AgentService(config).run()`` -> exit code (0 after a clean stop)."""

    def __init__(self, config: AgentConfig, *, notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._end_of_stream = False
        self._source_open = False
        self._open_failures = 0
        self._next_open = 0.0
        self._read_exceptions = 0
        self.pipeline: StreamingPipeline | None = None  # built when the source opens (its rate is known then)
        self.rollout: Any = None  # edge_agent.rollout.controller.RolloutController, set up in _setup

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
                         self.bundle.spec.window, self.bundle.spec.hop, self.bundle.threshold,
                         ",".join(name for name, _, _ in self.sink.sinks))
                self._close_leftover_events()
                self._loop()
            finally:
                self._shutdown()
        finally:
            restore()
        return 0

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        from edge_agent.runtime import Scorer

        # Deploy/policy commands (None without a broker or with [rollout] enabled = false); the remote
        # policy and a deployed bundle stored on the device replace the config file's.
        if self.config.rollout.enabled and self.config.broker_enabled:  # else its modules stay unloaded
            from edge_agent.rollout.controller import RolloutController

            self.rollout = RolloutController.create(self.config)
        if self.rollout is not None:
            self.config = self.rollout.startup_config()
        cfg = self.config
        # cast for mypy only: a None path (config loaded with check_bundle=False) still fails in load_bundle.
        self.bundle: Bundle = cfg.bundle or load_bundle(cast(Path, cfg.bundle_section.path))
        if self.rollout is not None:
            self.bundle = self.rollout.startup_bundle(self.bundle)
        self.scorer = Scorer(self.bundle, num_threads=cfg.bundle_section.num_threads)
        self.settings = PipelineSettings.from_config(cfg, self.bundle)
        self.source = make_configured_source(cfg, self.bundle)
        self.reader = BlockGatherer(self.source, BLOCK_S)
        self.health = HealthTracker(cfg.device_id, self.bundle.model_id)
        self.events = OpenEventState(_state_path(cfg))
        self.sink: FanoutSink = build_sink(cfg)
        self.sink.start()
        # Right after the sink: _shutdown stops both whatever fails later in setup.
        self.addons = AgentAddons(cfg, self.bundle)  # HA discovery, metrics, captures: off unless configured
        self.addons.start()
        if self.rollout is not None:
            self.rollout.start(self)

    def _close_leftover_events(self) -> None:
        """Close, with ``agent_restarted``, the events a killed previous run left open."""
        leftovers = self.events.leftovers()
        for payload in leftovers:
            log.warning("closing event %s left open by the previous run (agent_restarted)", payload["event_id"])
            self._publish(restart_close(payload))
        if leftovers:
            self.events.clear()
        self.health.restarted_with_open_events = len(leftovers)

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
        if self.pipeline is None:
            # A replayed row selection starts at its first file row, like `vigil score`.
            first_row = int(getattr(getattr(self.source, "table", None), "row_offset", 0) or 0)
            self.pipeline = StreamingPipeline(self.bundle, self.settings, scorer=self.scorer,
                                              rate_hz=self.source.sampling_rate_hz, first_row=first_row)
        log.info("source %s open: %s at %s Hz", self.config.source.kind, ", ".join(self.source.features),
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
        interval = float(self.config.health.interval_s)
        next_health = time.monotonic() + interval
        while not self._stop.is_set():
            self.notifier.watchdog()
            if self.rollout is not None:
                self.rollout.poll()  # commands and probation verdicts, between blocks
            if interval > 0 and time.monotonic() >= next_health:
                self._publish_health()
                next_health = time.monotonic() + interval
            if not self._open_source():
                self._stop.wait(_READ_TIMEOUT_S)
                continue
            try:
                block = self.reader.read()
            except Exception as exc:  # the source contract says no raise; a driver bug must not kill us
                self._read_exceptions += 1
                if self._read_exceptions == 1 or self._read_exceptions % 100 == 0:
                    log.error("source read failed (%d so far): %s", self._read_exceptions, exc)
                self._stop.wait(_ERROR_BACKOFF_S)
                continue
            if block is None:
                self._end_of_stream = True
                self.request_stop("end of source")
                break
            if len(block):
                assert self.pipeline is not None  # built when the source opened
                self.addons.on_block(block, self.pipeline.row)
                try:
                    payloads = self.pipeline.process(block)
                except Exception as exc:  # a bundle on probation that cannot score is rolled back, not fatal
                    if self.rollout is None or not self.rollout.scoring_failed(exc):
                        raise
                    continue
                for payload in payloads:
                    self._publish(payload)

    def install(self, bundle: Bundle, scorer: Any, config: AgentConfig | None = None) -> None:
        """Swap bundle, scorer and/or ``[alerts]`` between blocks, without a restart (edge_agent.rollout).

        An open event closes with ``close_reason`` ``model_changed`` (its detection ends here); the new
        pipeline continues the stream's row numbers.
        """
        if self.pipeline is not None:
            for payload in self.pipeline.finish(CloseReason.MODEL_CHANGED):
                self._publish(payload)
        self.config = config or self.config
        self.bundle, self.scorer = bundle, scorer
        self.settings = PipelineSettings.from_config(self.config, bundle)
        self.health.model_id = bundle.model_id
        if self.pipeline is not None:
            self.pipeline = StreamingPipeline(bundle, self.settings, scorer=scorer,
                                              rate_hz=self.source.sampling_rate_hz, first_row=self.pipeline.row)
        addons = getattr(self, "addons", None)
        if addons is not None:
            addons.on_bundle(bundle)
        log.info("now scoring with %s (threshold %.6g)", bundle.model_id, bundle.threshold)

    def _publish(self, payload: dict[str, Any], note: str = "") -> None:
        """Record the event's state, log one line, hand the payload to every sink."""
        self.events.track(payload)
        top = ",".join(str(t.get("feature")) for t in payload.get("top_features", []))
        what = payload.get("fault") or "anomaly"
        log.info("alert %s %s event %s samples %s-%s peak %s threshold %s top %s%s%s",
                 payload.get("phase"), what, payload.get("event_id"), payload.get("start_sample"),
                 payload.get("end_sample"), _short(payload.get("peak_score")), _short(payload.get("threshold")),
                 top or "-", f" ({payload['close_reason']})" if payload.get("close_reason") else "", note)
        self.sink.publish_alert(payload)
        self.health.alerts_published += 1
        self.addons.on_alert(payload)

    def _publish_health(self) -> None:
        source = {**self.source.stats.as_dict(), "open_failures": self._open_failures,
                  "read_exceptions": self._read_exceptions}
        # Failed opens and reads that raised are sensor errors too.
        source["read_errors"] = int(source.get("read_errors", 0)) + self._open_failures + self._read_exceptions
        pipeline = self.pipeline.counters() if self.pipeline is not None else {}
        payload = self.health.payload(
            source=source,
            pipeline=pipeline,
            sink=self.sink.stats(),
            event_open=self.pipeline is not None and self.pipeline.event_open,
            extra=self.addons.health_fields(self.pipeline),
        )
        self.addons.on_health(payload)
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
        if self.settings.close_on_shutdown and self.pipeline is not None:
            why = CloseReason.END_OF_STREAM if self._end_of_stream else CloseReason.AGENT_STOPPED
            for payload in self.pipeline.finish(why):
                self._publish(payload)
        if float(self.config.health.interval_s) > 0:
            _quietly(self._publish_health, "final health")
        self._drain(float(self.config.mqtt.drain_timeout_s))
        if self.rollout is not None:
            _quietly(self.rollout.stop, "rollout stop")
        self.addons.stop()
        self.sink.stop()
        samples = self.pipeline.samples if self.pipeline is not None else 0
        windows = self.pipeline.windows_scored if self.pipeline is not None else 0
        log.info("stopped: %d samples, %d windows scored, %d alerts", samples, windows, self.health.alerts_published)

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
            stats = sink.stats()
            left, in_memory = stats.get("spool_depth", 0), stats.get("spool_memory_depth", 0)
            if left:
                # Memory-held alerts (degraded spool) are stored at stop if the disk allows, else counted as lost.
                fate = (f"{in_memory} of them only in memory (spool degraded)" if in_memory
                        else "they go out at the next start")
                log.warning("stopping with %d alert(s) still spooled (broker %s); %s",
                            left, "connected" if stats.get("connected") else "unreachable", fate)


def _state_path(cfg: AgentConfig) -> Any:
    """The open-event file beside the spool; None (logged) when its directory cannot be made."""
    folder = cfg.spool.path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot create %s (%s): events left open by a crash cannot be closed after a restart",
                  folder, exc.strerror)
        return None
    return folder / STATE_FILE


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _quietly(fn: Any, what: str) -> None:
    try:
        fn()
    except Exception as exc:  # shutdown must go on
        log.error("%s failed: %s", what, exc)


__all__ = ["AgentService", "FanoutSink", "build_sink", "configure_logging"]
