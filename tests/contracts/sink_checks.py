"""The sink contract (:class:`edge_agent.sinks.base.AlertSink`), one function per promise.

- ``publish_alert`` returns only once the alert is durable (written to the file or
  the spool, or already delivered), and alerts reach the other side in publish order.
- ``publish_health`` never raises and never shows up as an alert.
- ``stats()`` is a flat dict of JSON scalars before ``start``, while running and after
  ``stop``, and counts the alerts handed on.
- ``start`` and ``stop`` may each be called twice; ``stop`` delivers what was published.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.contracts.sink_rigs import Payload, SinkRig
from tests.test_mqtt_sink import make_alert


def _ids(payloads: list[Payload]) -> list[tuple[str, str]]:
    return [(str(p.get("event_id")), str(p.get("phase"))) for p in payloads]


def _alerts(n: int) -> list[Payload]:
    return [make_alert(i) for i in range(n)]


def check_alerts_are_durable_on_return_and_arrive_in_order(rig: SinkRig) -> None:
    rig.sink.start()
    sent = _alerts(3)
    for i, alert in enumerate(sent):
        rig.sink.publish_alert(alert)
        assert set(_ids(sent[: i + 1])) <= set(_ids(rig.durable())), f"{rig.name}: alert {i} not durable on return"
    assert _ids(rig.wait_delivered(3)) == _ids(sent)


def check_health_never_raises_and_is_not_an_alert(rig: SinkRig) -> None:
    rig.sink.start()
    rig.sink.publish_health({"schema": "vigil.health/1", "device_id": "dev1", "uptime_s": 1.0})
    rig.sink.publish_alert(make_alert(7))
    assert _ids(rig.wait_delivered(1)) == _ids([make_alert(7)])


def check_stats_are_json_scalars_and_count_alerts(rig: SinkRig) -> None:
    def flat(stats: dict) -> dict:
        assert isinstance(stats, dict) and stats
        assert all(isinstance(k, str) and (v is None or isinstance(v, (bool, int, float, str)))
                   for k, v in stats.items())
        json.dumps(stats)
        return stats

    flat(rig.sink.stats())
    rig.sink.start()
    for alert in _alerts(2):
        rig.sink.publish_alert(alert)
    rig.wait_delivered(2)
    rig.sink.stop()
    assert rig.alert_count(flat(rig.sink.stats())) == 2


def check_start_and_stop_twice(rig: SinkRig) -> None:
    rig.sink.start()
    rig.sink.start()
    rig.sink.publish_alert(make_alert(1))
    # Delivered before the stop: a sink may keep an alert spooled for its next start when it stops
    # before its connection is up (a loaded machine), which is right, but not what this checks.
    assert _ids(rig.wait_delivered(1)) == _ids([make_alert(1)])
    rig.sink.stop()
    rig.sink.stop()
    rig.sink.stats()


SINK_CHECKS: list[Callable[[SinkRig], None]] = [
    check_alerts_are_durable_on_return_and_arrive_in_order,
    check_health_never_raises_and_is_not_an_alert,
    check_stats_are_json_scalars_and_count_alerts,
    check_start_and_stop_twice,
]
