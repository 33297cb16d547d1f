"""The fast part of the chaos suite's fuzzer: hostile bundles and sensor lines never give a traceback."""

from __future__ import annotations

import random

from benchmarks.chaos_fuzz import bad_alert_payload, fuzz_bundles, fuzz_sensor_lines


def test_200_mutated_bundles_are_refused_in_one_line_or_accepted_sane() -> None:
    outcome = fuzz_bundles(random.Random(11), 200)
    assert outcome["tracebacks"] == 0, outcome["examples"]
    assert outcome["multi_line_errors"] == 0 and outcome["accepted_nonsense"] == 0
    assert outcome["refused"] > 150  # the mutations really are hostile


def test_300_hostile_sensor_lines_are_each_counted_at_most_once() -> None:
    outcome = fuzz_sensor_lines(random.Random(12), 300)
    assert outcome["tracebacks"] == 0, outcome["examples"]
    assert outcome["rows_beyond_lines"] == 0 and outcome["bad_samples"] > 0


def test_fuzzed_alert_payloads_are_all_refused_by_the_subscriber_check() -> None:
    from edge_agent.mqtt.alert_check import parse_alert
    from tests.test_mqtt_sink import make_alert

    rng, good = random.Random(13), make_alert(1)
    refused = 0
    for _ in range(300):
        try:
            parse_alert(bad_alert_payload(rng, good))
        except ValueError:
            refused += 1
    assert refused == 300
