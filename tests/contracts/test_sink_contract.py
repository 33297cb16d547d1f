"""Every sink passes the one sink contract (tests/contracts/sink_checks.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.broker import MosquittoBroker, require_mosquitto
from tests.contracts import sink_rigs
from tests.contracts.sink_checks import SINK_CHECKS
from tests.contracts.sink_rigs import SinkRig

LOCAL = {"jsonl": sink_rigs.jsonl_rig, "stdout": sink_rigs.stdout_rig}
if importlib.util.find_spec("edge_agent.sinks.fanout") is not None:
    LOCAL["fanout"] = sink_rigs.fanout_rig
IDS = [c.__name__.removeprefix("check_") for c in SINK_CHECKS]


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
