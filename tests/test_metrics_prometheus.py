"""Prometheus exposition of the health counters: strict format check, textfile and /metrics from the agent."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.metrics import HttpExporter, TextfileExporter, render
from edge_agent.service import AgentService
from tests.broker import free_port
from tests.test_agent_service import agent_toml, write_anomalous_csv

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf'^({_NAME})(?:\{{((?:{_NAME}="(?:[^"\\]|\\.)*",?)*)\}})? (\S+)$')
_LABEL = re.compile(rf'({_NAME})="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[str, dict]:
    """Prometheus text format 0.0.4, strictly: HELP and TYPE before a family's samples, floats, one TYPE each."""
    families: dict[str, dict] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families and help_text, line
            families[name] = {"help": help_text, "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert families[name]["type"] is None and kind in ("counter", "gauge", "summary", "untyped"), line
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in families and families[name]["type"], f"{name} sampled before its HELP/TYPE"
            families[name]["samples"].append((dict(_LABEL.findall(labels or "")), float(value)))
    for name, family in families.items():
        assert family["samples"], f"{name} has no sample"
        if family["type"] == "counter":
            assert name.endswith("_total"), name
    return families


HEALTH = {
    "schema": "vigil.health/1", "device_id": 'dev "1"', "model_id": "m-1", "uptime_s": 12.5, "samples_per_s": 99.0,
    "samples": 1200, "windows_scored": 1185, "window_resets": 0, "scoring_latency_ms": {"p50": 0.25, "p99": 1.5},
    "alerts_published": 4, "events_opened": 2, "event_open": False, "spool_depth": 3, "spool_dropped": 0,
    "dropped_samples": 0, "bad_samples": 1, "gaps": 0, "sensor_errors": 0,
    "threshold": {"kind": "static", "value": 0.17}, "last_score": 0.05, "sink": {"connected": 1, "reconnects": 2},
    "captures": {"written": 2, "dropped": 0, "errors": 0, "stored": 2, "stored_bytes": 4096},
    "addons": {"errors": 0},
}


def test_render_is_valid_exposition_with_the_health_values() -> None:
    families = parse_exposition(render(HEALTH))
    value = {name: f["samples"][0][1] for name, f in families.items()}
    assert value["vigil_samples_total"] == 1200 and value["vigil_spool_depth"] == 3
    assert value["vigil_event_open"] == 0 and value["vigil_threshold"] == 0.17 and value["vigil_up"] == 1
    assert value["vigil_captures_written_total"] == 2 and value["vigil_last_score"] == 0.05
    assert families["vigil_samples_total"]["type"] == "counter" and families["vigil_spool_depth"]["type"] == "gauge"
    latency = {s[0]["quantile"]: s[1] for s in families["vigil_scoring_latency_seconds"]["samples"]}
    assert latency == {"0.5": 0.00025, "0.99": 0.0015}
    labels = families["vigil_samples_total"]["samples"][0][0]
    assert labels == {"device_id": 'dev \\"1\\"', "model_id": "m-1"}  # escaped quotes


def test_missing_or_non_finite_values_are_left_out() -> None:
    families = parse_exposition(render({"device_id": "d", "model_id": "m", "samples": 5, "last_score": None,
                                        "threshold": {"value": float("nan")}, "scoring_latency_ms": {"p50": None}}))
    assert "vigil_last_score" not in families and "vigil_threshold" not in families
    assert "vigil_scoring_latency_seconds" not in families and families["vigil_samples_total"]["samples"]


def test_textfile_is_replaced_atomically_and_says_down_at_stop(tmp_path: Path) -> None:
    exporter = TextfileExporter(tmp_path / "sub" / "vigil.prom")
    exporter.start()
    exporter.update(render(HEALTH))
    assert parse_exposition(exporter.path.read_text())["vigil_up"]["samples"][0][1] == 1
    exporter.stop()
    assert parse_exposition(exporter.path.read_text())["vigil_up"]["samples"][0][1] == 0
    assert [p.name for p in exporter.path.parent.iterdir()] == ["vigil.prom"]  # no temp file left


def test_http_endpoint_serves_metrics_on_localhost_only() -> None:
    exporter = HttpExporter("127.0.0.1", 0)
    exporter.start()
    try:
        exporter.update(render(HEALTH))
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert parse_exposition(response.read().decode())["vigil_windows_scored_total"]["samples"][0][1] == 1185
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/other", timeout=5)
        assert exporter._server.server_address[0] == "127.0.0.1"
    finally:
        exporter.stop()


def metrics_config(tmp_path: Path, bundle: Path, metrics: str) -> Path:
    write_anomalous_csv(tmp_path / "data.csv")
    return agent_toml(tmp_path, bundle, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                      sections='[spool]\npath = "state/spool.db"\n[sinks]\njsonl = "alerts.jsonl"\n'
                               f'health_jsonl = true\n[health]\ninterval_s = 0.05\n[metrics]\n{metrics}')


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_writes_the_textfile_from_its_health(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    config = metrics_config(tmp_path, tiny_bundle_3f, 'mode = "textfile"\n')
    seen: list[dict] = []

    class Watching(AgentService):
        def _publish_health(self) -> None:
            super()._publish_health()
            seen.append(parse_exposition((tmp_path / "state" / "vigil.prom").read_text()))

    assert Watching(load_config(config)).run() == 0
    health = json.loads((tmp_path / "alerts.health.json").read_text())
    last = {name: f["samples"][0][1] for name, f in seen[-1].items()}
    assert last["vigil_samples_total"] == health["samples"] == 1200
    assert last["vigil_alerts_published_total"] == health["alerts_published"] >= 2
    assert parse_exposition((tmp_path / "state" / "vigil.prom").read_text())["vigil_up"]["samples"][0][1] == 0


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_serves_metrics_over_http_while_it_runs(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    port = free_port()
    config = metrics_config(tmp_path, tiny_bundle_3f, f'mode = "http"\nhttp_port = {port}\n')
    scraped: list[dict] = []

    class Scraping(AgentService):
        def _publish_health(self) -> None:
            super()._publish_health()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                scraped.append(parse_exposition(response.read().decode()))

    assert Scraping(load_config(config)).run() == 0
    assert scraped and scraped[-1]["vigil_samples_total"]["samples"][0][1] == 1200


@pytest.mark.slow  # uses the converted tiny bundle
def test_a_failing_exporter_is_counted_and_the_agent_goes_on(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the metrics directory should be")
    config = metrics_config(tmp_path, tiny_bundle_3f, 'mode = "textfile"\ntextfile = "blocked/vigil.prom"\n')
    assert AgentService(load_config(config)).run() == 0
    health = json.loads((tmp_path / "alerts.health.json").read_text())
    assert health["samples"] == 1200 and health["alerts_published"] >= 2  # scoring and alerting went on
    assert health["addons"]["errors"] >= 2  # start, then every write (logged, counted)
