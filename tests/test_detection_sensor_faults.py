"""Sensor-health faults on generated data: one open and one close per fault, none on clean noise."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.detection import FeatureStats, SensorHealthMonitor, SensorHealthSettings, measure_feature_stats
from edge_agent.detection.fault_events import SensorFault, SensorFaultEvent
from edge_agent.detection.stats import feature_stats_from_json
from edge_agent.errors import VigilInputError
from edge_agent.sources.base import SampleBlock

NAMES = ["ax", "ay", "az"]
SETTINGS = SensorHealthSettings(check_samples=64, hold_samples=128)
RATE = 100.0


def stats_for(settings: SensorHealthSettings = SETTINGS) -> tuple[FeatureStats, ...]:
    train = np.random.default_rng(0).normal(0.0, 1.0, (5000, 3))
    return measure_feature_stats(train, NAMES, settings)


def clean(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, 3))


def run(values: np.ndarray, block: int, settings: SensorHealthSettings = SETTINGS,
        stats: tuple[FeatureStats, ...] | None = None) -> list[SensorFaultEvent]:
    monitor = SensorHealthMonitor(settings, stats or stats_for(settings))
    stamps = 1_790_000_000.0 + np.arange(len(values)) / RATE
    events: list[SensorFaultEvent] = []
    for i in range(0, len(values), block):
        events += monitor.update(values[i:i + block], stamps[i:i + block], first_row=i)
    return events + monitor.close_all("end_of_stream")


def summary(events: list[SensorFaultEvent]) -> list[tuple[str, str, str | None, int, int, str | None]]:
    return [(e.phase.value, e.fault.value, e.feature, e.start_row, e.end_row, e.close_reason) for e in events]


def assert_one_fault(events: list[SensorFaultEvent], fault: SensorFault, feature: str | None) -> SensorFaultEvent:
    assert [(e.phase.value, e.fault, e.feature) for e in events] == [("open", fault, feature),
                                                                    ("close", fault, feature)]
    opened, closed = events
    assert opened.event_id == closed.event_id and len(opened.event_id) == 32
    assert closed.close_reason == "normal"
    return closed


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_flatline_is_one_event_whatever_the_block_size(block: int) -> None:
    values = clean(4000)
    values[1000:1500, 1] = 0.3  # stuck sensor
    closed = assert_one_fault(run(values, block), SensorFault.FLATLINE, "ay")
    # Chunks of 64 from row 0: the flat chunks are 1024..1471 (1000 and 1472 start mid-chunk).
    assert (closed.start_row, closed.end_row, closed.sample_count) == (1024, 1471, 448)
    assert closed.value == 0.0 and closed.start_time == pytest.approx(1_790_000_010.24)


def test_nearly_flat_noise_below_one_percent_of_the_training_std_is_a_flatline() -> None:
    values = clean(3000)
    values[1024:2048, 0] = 2.0 + np.random.default_rng(5).normal(0, 0.001, 1024)
    closed = assert_one_fault(run(values, 100), SensorFault.FLATLINE, "ax")
    assert closed.value < closed.limit == pytest.approx(0.01 * stats_for()[0].window_std)


def test_clipping_at_the_training_bounds() -> None:
    stats = stats_for()
    values = clean(4000)
    values[2000:2300, 2] = np.clip(values[2000:2300, 2] * 3, stats[2].min, stats[2].max)
    closed = assert_one_fault(run(values, 50), SensorFault.CLIPPING, "az")
    assert 1984 <= closed.start_row <= 2047 and 2240 <= closed.end_row < 2304
    assert closed.value >= SETTINGS.clip_fraction == closed.limit


def test_clipping_at_the_sensor_full_scale() -> None:
    settings = SensorHealthSettings(check_samples=64, hold_samples=128, full_scale=(-2.0, 2.0),
                                    clip_at_training_bounds=False, out_of_range_margin=50.0)
    values = clean(3000)
    values[640:1280, 0] = np.clip(values[640:1280, 0] * 2, -2.0, 2.0)
    closed = assert_one_fault(run(values, 128, settings), SensorFault.CLIPPING, "ax")
    assert (closed.start_row, closed.end_row) == (640, 1279)


def test_out_of_range_reports_the_reading_farthest_out() -> None:
    values = clean(3000)
    values[1500:1510, 0] = 50.0
    values[1505, 0] = 80.0
    closed = assert_one_fault(run(values, 33), SensorFault.OUT_OF_RANGE, "ax")
    assert closed.value == 80.0 and closed.sample_count == 10
    stats = stats_for()[0]
    assert closed.limit == pytest.approx(stats.max + SETTINGS.out_of_range_margin * stats.std)


def test_dropout_from_block_gaps_and_invalid_rows() -> None:
    settings = SensorHealthSettings(check_samples=64, hold_samples=100, dropout_min_missing=5)
    monitor = SensorHealthMonitor(settings, stats_for(settings))
    values = clean(1000)
    events: list[SensorFaultEvent] = []
    row = 0
    for i in range(0, 1000, 10):
        gap = 20 if i == 300 else 0
        valid = np.ones(10, dtype=bool)
        if i == 350:
            valid[:6] = False  # six read errors in one block: a dropout too
        row += gap
        block = SampleBlock(values[i:i + 10].astype(np.float32), 1_790_000_000.0 + np.arange(i, i + 10) / RATE,
                            valid=valid, gap_before=gap)
        events += monitor.process(block, row)
        row += 10
    assert len(events) == 2
    opened, closed = events
    assert (opened.phase.value, opened.fault, opened.feature, opened.start_row) == ("open", SensorFault.DROPOUT,
                                                                                    None, 320)
    assert closed.end_row == 370 and closed.sample_count == 26 and closed.value == 20.0
    assert not monitor.open_events


def test_a_small_gap_is_not_a_dropout() -> None:
    monitor = SensorHealthMonitor(SensorHealthSettings(dropout_min_missing=16), stats_for())
    assert monitor.update(clean(100), missing=15) == []


def test_no_fault_on_clean_noise() -> None:
    values = clean(60_000, seed=2)
    assert run(values, 256) == []
    assert run(values[:5000], 10) == []


def test_constant_training_feature_flat_is_normal_and_a_departure_is_out_of_range() -> None:
    rng = np.random.default_rng(3)
    train = np.column_stack([rng.normal(0, 1, 3000), np.full(3000, 5.0)])
    settings = SensorHealthSettings(check_samples=64, hold_samples=128)
    stats = measure_feature_stats(train, ["x", "status"], settings)
    assert stats[1].constant and stats[1].std == 0.0 and stats[1].window_std is None
    live = np.column_stack([rng.normal(0, 1, 2000), np.full(2000, 5.0)])
    live[1200:1300, 1] = 6.0
    monitor = SensorHealthMonitor(settings, stats)
    events = monitor.update(live) + monitor.close_all()
    assert [(e.phase.value, e.fault, e.feature) for e in events] == [
        ("open", SensorFault.OUT_OF_RANGE, "status"), ("close", SensorFault.OUT_OF_RANGE, "status")]


def test_a_slow_two_level_status_channel_is_neither_clipping_nor_flatline() -> None:
    # A valve that switches every few hundred samples: it sits at its bounds and is flat most of the
    # time in training, so neither is a fault for it.
    rng = np.random.default_rng(4)

    def valve(n: int) -> np.ndarray:
        return np.repeat(rng.random(n // 200 + 1) < 0.5, 200)[:n].astype(float)

    train = np.column_stack([rng.normal(0, 1, 4000), valve(4000)])
    stats = measure_feature_stats(train, ["x", "valve"], SETTINGS)
    assert stats[1].resolution == 1.0 and stats[1].at_bounds_fraction == 1.0 and stats[1].flat_fraction > 0.5
    live = np.column_stack([rng.normal(0, 1, 4000), valve(4000)])
    live[2000:3000, 1] = 1.0
    assert SensorHealthMonitor(SETTINGS, stats).update(live) == []


def test_a_chunk_with_missing_readings_is_not_a_flatline() -> None:
    values = clean(1000)
    values[128:512, 0] = 1.0
    values[128:512:10, 0] = np.nan
    assert [e for e in run(values, 64) if e.fault is SensorFault.FLATLINE] == []


def test_close_all_says_why_and_the_stop_is_the_end() -> None:
    values = clean(640)
    values[320:, 2] = 0.0
    monitor = SensorHealthMonitor(SETTINGS, stats_for())
    (opened,) = monitor.update(values)
    assert monitor.counters() == {"open": ["flatline:az"], "opened": {"flatline": 1, "clipping": 0, "dropout": 0,
                                                                      "out_of_range": 0}}
    (closed,) = monitor.close_all("agent_stopped")
    assert closed.close_reason == "agent_stopped" and closed.event_id == opened.event_id
    assert closed.end_row == 639 and monitor.close_all() == []


def test_shape_is_checked_and_stats_must_exist() -> None:
    monitor = SensorHealthMonitor(SETTINGS, stats_for())
    with pytest.raises(ValueError):
        monitor.update(np.zeros((10, 2)))
    with pytest.raises(ValueError):
        SensorHealthMonitor(SETTINGS, ())


def test_measured_stats_by_hand() -> None:
    column = np.array([0.0, 0.25, 0.5, 0.25, 1.0, 0.0] * 20)
    (stats,) = measure_feature_stats(column[:, None], ["q"], SensorHealthSettings(check_samples=6))
    assert (stats.min, stats.max, stats.resolution) == (0.0, 1.0, 0.25)
    assert stats.std == pytest.approx(np.std(column)) and stats.at_bounds_fraction == pytest.approx(3 / 6)
    assert stats.window_std == pytest.approx(np.std(column[:6])) and stats.flat_fraction == 0.0


def test_feature_stats_json_forms_and_errors() -> None:
    as_list = [{"name": "a", "min": 0, "max": 2, "std": 0.5}, {"name": "b", "min": 1, "max": 1, "std": 0,
                                                                "constant": True}]
    as_map = {"b": {"min": 1, "max": 1, "std": 0, "constant": True}, "a": {"min": 0, "max": 2, "std": 0.5}}
    assert feature_stats_from_json(as_list, ["a", "b"]) == feature_stats_from_json(as_map, ["a", "b"])
    stats = feature_stats_from_json(as_list)
    assert FeatureStats.from_dict(stats[0].to_dict()) == stats[0]
    bad = [
        ([{"name": "a", "min": 0, "max": 2}], "training.feature_stats.a.std"),
        ([{"name": "a", "min": 3, "max": 2, "std": 1}], "training.feature_stats.a.max"),
        ([{"name": "a", "min": 0, "max": 2, "std": float("nan")}], "training.feature_stats.a.std"),
        ([{"name": "a", "min": 0, "max": 2, "std": 1, "colour": 1}], "training.feature_stats.a.colour"),
        ("nope", "training.feature_stats"),
    ]
    for obj, key in bad:
        with pytest.raises(VigilInputError) as info:
            feature_stats_from_json(obj)
        assert info.value.key == key and "\n" not in str(info.value)
    with pytest.raises(VigilInputError, match="no training statistics"):
        feature_stats_from_json(as_list, ["a", "c"])


@pytest.mark.parametrize("full_scale", [None, (-4.5, 4.5)])
def test_the_quick_all_clear_never_hides_a_candidate(full_scale: tuple[float, float] | None) -> None:
    """``all_clear`` (the cheap path for healthy chunks) is True only where ``check`` flags nothing."""
    from edge_agent.detection.sensor_limits import FeatureLimits

    settings = SensorHealthSettings(check_samples=64, hold_samples=128, full_scale=full_scale)
    limits = FeatureLimits(settings, stats_for(settings))
    rng = np.random.default_rng(7)
    kinds = {"clean": 0, "clear": 0}
    for trial in range(400):
        chunk = rng.normal(0.0, 1.0, (1, 64, 3))
        f = trial % 3
        if trial % 4 == 1:
            chunk[0, :, f] = 0.3 + rng.normal(0, 1e-4, 64) * (trial % 8 == 1)  # flat or nearly flat
        elif trial % 4 == 2:
            chunk[0, rng.integers(0, 64, 12), f] = rng.choice([limits.bound_hi[f], 9.0, -4.5])  # clipped / far
        elif trial % 4 == 3 and trial % 8 == 3:
            chunk[0, 5, f] = np.nan
        flagged = any(c is not None and c.flags.any() for c in limits.check(chunk).values())
        kinds["clean"] += not flagged
        if limits.all_clear(chunk):
            kinds["clear"] += 1
            assert not flagged
    assert kinds["clear"] > 50 and kinds["clean"] > kinds["clear"] / 2  # the quick path is taken, and not always


def test_one_chunk_fast_path_gives_the_general_checks_verdicts() -> None:
    """The device path (one chunk: candidates on floats, counts on the transposed copy) == the general path."""
    from edge_agent.detection.sensor_limits import FeatureLimits, transposed_extremes

    settings = SensorHealthSettings(check_samples=64, hold_samples=128)
    limits = FeatureLimits(settings, stats_for(settings))
    rng = np.random.default_rng(3)
    flagged = 0
    for trial in range(300):
        chunk = rng.normal(0.0, 1.0, (1, 64, 3))
        f = trial % 3
        if trial % 3 == 1:  # some samples at (or a hair off) a training bound, some far out
            chunk[0, rng.integers(0, 64, 4 + trial % 13), f] = limits.bound_hi[f] + rng.choice([0.0, 1e-9, 1e-3])
        elif trial % 3 == 2:
            chunk[0, :, f] = 0.25 + rng.normal(0, 1e-5, 64) * (trial % 2)
        high, low, samples_last = transposed_extremes(chunk)
        found = limits.candidates(chunk, high, low)
        assert found is not None and (not any(found)) == limits.all_clear(chunk)
        fast = limits.check(chunk, (high, low), found, samples_last)
        general = limits.check(np.concatenate([chunk, chunk]))  # two chunks: the general path
        for fault, verdict in fast.items():
            other = general[fault]
            if verdict is None:  # found nowhere (or nothing flagged): the general path flags nothing either
                assert other is None or not other.flags.any()
                continue
            flagged += bool(verdict.flags.any())
            assert other is not None
            for name in ("flags", "counts", "values", "severity", "limits"):
                np.testing.assert_array_equal(getattr(verdict, name)[0], getattr(other, name)[0])
    assert flagged > 20
