"""The fast part of the chaos suite's delivery scenarios: a short kill -9 storm and broker flaps, real mosquitto."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks import chaos_delivery as delivery
from tests.broker import require_mosquitto


@pytest.mark.broker
def test_short_kill_9_storm_with_a_broker_outage_loses_nothing_uncounted(tmp_path: Path) -> None:
    require_mosquitto()
    result = delivery.kill9_storm(tmp_path, 3, random.Random(11))  # the third kill is during an outage
    assert (result["kill_cycles"], result["broker_outages"]) == (3, 1) and result["drained"]
    assert result["produced"] > 0 and result["delivered"] == result["produced"]
    assert (result["lost_uncounted"], result["tracebacks"], result["crashes"]) == (0, 0, 0)


@pytest.mark.broker
def test_broker_sigterm_sigkill_flaps_lose_nothing(tmp_path: Path) -> None:
    require_mosquitto()
    result = delivery.broker_flaps(tmp_path, 4)
    assert result["produced"] > 0 and result["delivered"] == result["produced"]
    assert (result["lost_uncounted"], result["tracebacks"], result["crashes"]) == (0, 0, 0)
