"""The agent's optional add-ons behind one object: Home Assistant, Prometheus metrics, captures.

:class:`AgentAddons` is what :class:`edge_agent.service.AgentService` calls:
``start()``, ``on_block(block, next_row)`` before the pipeline sees a block,
``on_alert(payload)`` for each alert it publishes, ``health_fields(pipeline)``
and ``on_health(payload)`` around each health message, ``on_bundle(bundle)``
after a bundle swap, ``stop()``. With every section off it does nothing and
opens nothing.

No add-on may take the agent down: every call is guarded, a failure is logged
(the first few and then every 100th) and counted as ``addons.errors`` in
health; the scoring loop goes on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Each add-on's module is imported only when its section is on: a plain agent does not load them.
if TYPE_CHECKING:
    from edge_agent.bundle import Bundle
    from edge_agent.captures import CaptureRecorder
    from edge_agent.homeassistant import Discovery, HaState
    from edge_agent.metrics import HttpExporter, TextfileExporter
    from edge_agent.sources.base import SampleBlock

log = logging.getLogger("vigil.addons")

METRICS_FILE = "vigil.prom"
CAPTURES_DIR = "captures"


class AgentAddons:
    """Everything optional around the pipeline; see the module docstring."""

    def __init__(self, config: Any, bundle: Bundle) -> None:
        self.config = config
        self.bundle = bundle
        self.errors = 0
        self._error_counts: dict[str, int] = {}
        state_dir = Path(config.spool.path).parent
        m = config.metrics
        self.exporter: TextfileExporter | HttpExporter | None = None
        if m.mode != "off":
            from edge_agent.metrics import make_exporter

            self.exporter = make_exporter(m.mode, m.textfile or state_dir / METRICS_FILE, m.http_host, m.http_port)
        self.recorder: CaptureRecorder | None = None
        if config.captures.enabled:
            from edge_agent.captures import CaptureRecorder, CaptureStore

            c = config.captures
            store = CaptureStore(c.path or state_dir / CAPTURES_DIR, c.max_count, c.max_bytes)
            inputs = list(bundle.input_features)  # the raw sensor columns, also for a spectral bundle
            self.recorder = CaptureRecorder(store, len(inputs), inputs, before_s=c.before_s,
                                            after_s=c.after_s, max_rows=c.max_rows, rate_hz=bundle.sampling_rate_hz,
                                            window=bundle.spec.window, device_id=config.device_id,
                                            model_id=bundle.model_id)
        self.ha_state: HaState | None = None
        if config.homeassistant.enabled:
            from edge_agent.homeassistant import HaState

            self.ha_state = HaState()
        self.link: Any = None  # edge_agent.addon_mqtt.AddonLink, when a broker and an MQTT add-on are on

    @property
    def active(self) -> bool:
        return self.exporter is not None or self.recorder is not None or self.ha_state is not None

    def discovery(self, bundle: Bundle) -> Discovery:
        from edge_agent.homeassistant import Discovery, node_id_for

        ha = self.config.homeassistant
        return Discovery(ha.discovery_prefix.rstrip("/"), self.config.topic_prefix, self.config.device_id,
                         node_id_for(self.config.device_id, ha.node_id), ha.device_name or self.config.device_id,
                         bundle.model_id)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self.exporter is not None:
            self._guard("metrics start", self.exporter.start)
        serve_captures = self.recorder is not None and self.config.captures.mqtt_pull
        if self.config.broker_enabled and (self.ha_state is not None or serve_captures):
            self._guard("add-on MQTT start", self._start_link, serve_captures)

    def _start_link(self, serve_captures: bool) -> None:
        from edge_agent.addon_mqtt import AddonLink
        from edge_agent.config import mqtt_settings

        settings = mqtt_settings(self.config)
        assert settings is not None  # broker_enabled
        self.link = AddonLink(settings, f"{self.config.client_id}-ext", self.config.topic_prefix,
                              discovery=self.discovery(self.bundle) if self.ha_state is not None else None,
                              state=self.ha_state,
                              store=self.recorder.store if serve_captures and self.recorder is not None else None)
        self.link.start()

    def stop(self) -> None:
        if self.recorder is not None:
            self._guard("captures flush", self.recorder.flush)
        if self.link is not None:
            self._guard("add-on MQTT stop", self.link.stop)
        if self.exporter is not None:
            self._guard("metrics stop", self.exporter.stop)

    # -- hooks ---------------------------------------------------------------------------

    def on_block(self, block: SampleBlock, next_row: int) -> None:
        """``next_row``: the pipeline's row before this block (the block starts at it + ``gap_before``)."""
        if self.recorder is not None:
            self._guard("captures", self.recorder.on_block, block, next_row + int(block.gap_before))

    def on_alert(self, payload: dict[str, Any]) -> None:
        if self.recorder is not None:
            self._guard("captures", self.recorder.on_alert, payload)
        if self.ha_state is not None:
            self._guard("homeassistant", self.ha_state.on_alert, payload)
            if self.link is not None:
                self._guard("homeassistant", self.link.publish_state)

    def health_fields(self, pipeline: Any) -> dict[str, Any]:
        """Extra health fields: ``last_score``, ``captures`` counters, ``addons`` counters."""
        out: dict[str, Any] = {"last_score": last_score(pipeline)}
        if self.recorder is not None:
            try:
                out["captures"] = self.recorder.counters()
            except Exception as exc:
                self._failed("captures counters", exc)
        link = self.link
        out["addons"] = {"errors": self.errors,
                         "mqtt_connected": int(bool(link is not None and link.connected)),
                         "capture_requests": link.requests if link is not None else 0,
                         "discovery_published": link.discovery_published if link is not None else 0,
                         "mqtt_rejected": link.rejected if link is not None else 0}
        return out

    def on_health(self, payload: dict[str, Any]) -> None:
        if self.exporter is not None:
            from edge_agent.metrics import render

            self._guard("metrics", self.exporter.update, render(payload))
        if self.ha_state is not None:
            self._guard("homeassistant", self.ha_state.on_health, payload, payload.get("last_score"))
            if self.link is not None:
                self._guard("homeassistant", self.link.publish_state)

    def on_bundle(self, bundle: Bundle) -> None:
        """After a bundle swap: HA's device block shows the new model id."""
        self.bundle = bundle
        if self.link is not None and self.ha_state is not None:
            self._guard("homeassistant", self.link.republish_discovery, self.discovery(bundle))

    # -- guard ---------------------------------------------------------------------------

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # an add-on must never stop the scoring loop
            self._failed(what, exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        seen = self._error_counts[what] = self._error_counts.get(what, 0) + 1
        if seen <= 3 or seen % 100 == 0:
            log.error("add-on %s failed (%d so far): %s: %s", what, seen, type(exc).__name__, exc)


def last_score(pipeline: Any) -> float | None:
    """The last smoothed window score, or None before the first window."""
    if pipeline is None:
        return None
    counters_score = getattr(pipeline, "last_score", None)  # a pipeline that exposes it
    if isinstance(counters_score, (int, float)) and math.isfinite(counters_score):
        return float(counters_score)
    # The EWMA's state is that score; read without touching the pipeline module.
    value = getattr(getattr(pipeline, "smoother", None), "_state", None)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
