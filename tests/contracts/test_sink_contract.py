"""Every sink passes the one sink contract (tests/contracts/sink_checks.py)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.broker import MosquittoBroker, require_mosquitto
from tests.contracts import sink_rigs
from tests.contracts.sink_checks import SINK_CHECKS
from tests.contracts.sink_rigs import SinkRig

REPO = Path(__file__).resolve().parents[2]
LOCAL = {"jsonl": sink_rigs.jsonl_rig, "stdout": sink_rigs.stdout_rig, "fanout": sink_rigs.fanout_rig}
BROKER = {"mqtt"}  # needs a mosquitto: test_mqtt_sink_contract
IDS = [c.__name__.removeprefix("check_") for c in SINK_CHECKS]


def _shipped_sinks() -> dict[str, str]:
    """Every ``class ...Sink`` the agent ships -> the rig name it needs (its module; mqtt/sink.py: "mqtt")."""
    modules = {path: path.stem for path in (REPO / "edge_agent" / "sinks").glob("*.py")}
    modules[REPO / "edge_agent" / "mqtt" / "sink.py"] = "mqtt"
    found = {}
    for path, rig in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Sink") and node.name != "AlertSink":
                found[node.name] = rig
    return found


def test_every_sink_has_a_rig() -> None:
    # A new sink module without a rig would escape the contract unnoticed.
    shipped = _shipped_sinks()
    assert {"JsonlSink", "StdoutSink", "FanoutSink", "MqttSink"} <= set(shipped)
    assert set(shipped.values()) == set(LOCAL) | BROKER


def _finish(rig: SinkRig) -> None:
    rig.sink.stop()
    for undo in rig.cleanup:
        undo()


@pytest.fixture
def local_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkRig]:
    rig = LOCAL[request.param](tmp_path)
    yield rig
    _finish(rig)


@pytest.mark.parametrize("local_rig", sorted(LOCAL), indirect=True)
@pytest.mark.parametrize("check", SINK_CHECKS, ids=IDS)
def test_local_sink_contract(check: Callable[[SinkRig], None], local_rig: SinkRig) -> None:
    check(local_rig)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    require_mosquitto()
    with MosquittoBroker(tmp_path / "mosquitto") as started:
        yield started


@pytest.mark.broker
@pytest.mark.parametrize("check", SINK_CHECKS, ids=IDS)
def test_mqtt_sink_contract(check: Callable[[SinkRig], None], mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    rig = sink_rigs.mqtt_rig(tmp_path, mosquitto)
    try:
        check(rig)
    finally:
        _finish(rig)
