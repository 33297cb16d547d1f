"""Replay, stdin, serial (real pty + pyserial), synthetic generator and the factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.config_schema import SOURCE_SCHEMA
from edge_agent.errors import VigilInputError
from edge_agent.sources import make_source, parse_source_options
from edge_agent.sources.base import Source
from edge_agent.sources.replay import ReplaySource
from edge_agent.sources.serial_line import SerialLineSource
from edge_agent.sources.stdin import StdinSource
from edge_agent.sources.synthetic import SyntheticSource, VibrationModel, generate_vibration
from tests.fake_i2c import VirtualClock

REPO = Path(__file__).resolve().parents[1]


def drain(src, timeout: float = 0.05, limit: int = 100000):
    """Read until the source ends; returns (values, stamps, blocks)."""
    blocks = []
    for _ in range(limit):
        block = src.read(timeout)
        if block is None:
            break
        if len(block):
            blocks.append(block)
    else:
        raise AssertionError("source did not end")
    return (np.concatenate([b.values for b in blocks]), np.concatenate([b.timestamps for b in blocks]), blocks)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    rows = ["timestamp,a,b,c"] + [f"2026-01-01T00:00:{i // 10:02d}.{i % 10}00,{i},{-i},{i * 0.5}" for i in range(50)]
    path.write_text("\n".join(rows) + "\n")
    return path


# ----------------------------------------------------------------------------- replay


def test_replay_fast_delivers_every_row_with_file_timestamps(csv_file):
    src = ReplaySource(csv_file, columns=["c", "a"], pace="fast", block_rows=16)
    assert isinstance(src, Source) and src.features == ["c", "a"] and src.sampling_rate_hz == 10.0
    src.open()
    values, stamps, blocks = drain(src)
    assert [len(b) for b in blocks] == [16, 16, 16, 2]
    np.testing.assert_array_equal(values, np.stack([np.arange(50) * 0.5, np.arange(50)], 1))
    np.testing.assert_allclose(stamps - stamps[0], np.arange(50) / 10.0, atol=1e-6)
    assert stamps[0] == pytest.approx(1767225600.0)  # 2026-01-01T00:00:00Z
    assert src.stats.samples == 50 and src.read(0.0) is None


def test_replay_rows_and_loop_keep_time_increasing(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(20, dtype=np.float64).reshape(10, 2))
    src = ReplaySource(tmp_path / "x.npy", rows=(2, 8), rate_hz=100.0, pace="fast", loop=True, block_rows=4,
                       start_time=500.0)
    src.open()
    got = [src.read(0.0) for _ in range(5)]
    src.close()
    values = np.concatenate([b.values[:, 0] for b in got])
    # rows 2..7 (first column 4, 6, ... 14), blocks never cross the seam, then again from row 2
    assert [len(b) for b in got] == [4, 2, 4, 2, 4]
    np.testing.assert_array_equal(values, [4, 6, 8, 10, 12, 14, 4, 6, 8, 10, 12, 14, 4, 6, 8, 10])
    stamps = np.concatenate([b.timestamps for b in got])
    np.testing.assert_allclose(stamps, 500.0 + np.arange(16) / 100.0)
    assert src.stats.extra["loops"] == 2 and src.read(0.0) is None


def test_replay_loop_shifts_file_timestamps_by_the_span(csv_file):
    src = ReplaySource(csv_file, pace="fast", loop=True, block_rows=50)
    src.open()
    first, second = src.read(0.0), src.read(0.0)
    np.testing.assert_allclose(second.timestamps - first.timestamps, 5.0)  # 50 rows at 10 Hz
    np.testing.assert_array_equal(first.values, second.values)


def test_replay_realtime_is_paced_on_the_clock():
    clock = VirtualClock(0.0)
    rows = np.arange(300, dtype=np.float64)[:, None]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil_pace_{os.getpid()}.npy"
    np.save(path, rows)
    try:
        src = ReplaySource(path, rate_hz=100.0, pace="realtime", speed=2.0, clock=clock, sleep=clock.sleep,
                           start_time=0.0)
        src.open()
        got = []
        while (block := src.read(0.1)) is not None:
            # never ahead of schedule: row i is released at i / (100 * 2) s
            released = sum(len(b) for b in got) + len(block)
            assert released <= int(clock.now * 200 + 1e-9) + 1
            got.append(block)
    finally:
        path.unlink()
    values = np.concatenate([b.values for b in got])
    np.testing.assert_array_equal(values[:, 0], rows[:, 0])
    # timestamps are data time (1/100 s per row), not the 2x replay time
    np.testing.assert_allclose(np.concatenate([b.timestamps for b in got]), np.arange(300) / 100.0)
    assert 1.45 <= clock.now <= 1.6  # 300 rows at 200 rows/s of virtual time
    assert max(len(b) for b in got) == 20  # batches of what one 0.1 s read covers


def test_replay_realtime_with_real_clock_and_high_speed(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(500, dtype=np.float64))
    src = make_source({"kind": "replay", "path": "x.npy", "rate_hz": 1000.0, "speed": 100.0}, base_dir=tmp_path)
    src.open()
    values, stamps, _ = drain(src, timeout=0.05)
    np.testing.assert_array_equal(values[:, 0], np.arange(500))
    np.testing.assert_allclose(np.diff(stamps), 1e-3, atol=1e-6)  # epoch seconds: float64 resolution


def test_replay_without_rate_needs_fast_or_rate(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    with pytest.raises(VigilInputError) as err:
        make_source({"kind": "replay", "path": "x.npy"}, base_dir=tmp_path)
    assert err.value.key == "source.rate_hz" and "fast" in str(err.value)
    src = make_source({"kind": "replay", "path": "x.npy", "pace": "fast"}, base_dir=tmp_path)
    assert src.sampling_rate_hz is None and src.features == ["0", "1"]


def test_replay_wav_uses_the_header_rate(tmp_path):
    import wave

    samples = (np.arange(400) % 50 * 600 - 15000).astype("<i2")
    with wave.open(str(tmp_path / "v.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    src = make_source({"kind": "replay", "path": "v.wav", "pace": "realtime", "speed": 50.0}, base_dir=tmp_path)
    assert src.features == ["ch0", "ch1"] and src.sampling_rate_hz == 8000.0
    src.open()
    values, stamps, _ = drain(src)
    np.testing.assert_allclose(values, samples.reshape(200, 2) / 32768.0)  # PCM scaled to [-1, 1]
    np.testing.assert_allclose(np.diff(stamps), 1 / 8000.0, atol=1e-6)


# ----------------------------------------------------------------------------- stdin


def test_stdin_lines_with_bad_lines(tmp_path):
    r, w = os.pipe()
    text = ("x,y,z\n"            # header (the feature names): ignored
            "1,2,3\n"
            "4 5 6\n"            # whitespace works too
            "# comment\n\n"
            "7,8\n"              # wrong field count -> bad
            "oops,1,2\n"         # not a number -> bad
            "10, 11, 12\n"
            "13,14,1")           # last line without newline, completed by EOF
    os.write(w, text.encode())
    os.close(w)
    with os.fdopen(r, "rb") as stream:
        src = StdinSource(["x", "y", "z"], rate_hz=50.0, stream=stream, start_time=0.0)
        src.open()
        values, stamps, blocks = drain(src)
    good = np.array([[1, 2, 3], [4, 5, 6], [10, 11, 12], [13, 14, 1]], dtype=np.float32)
    valid = np.concatenate([b.valid if b.valid is not None else np.ones(len(b), bool) for b in blocks])
    np.testing.assert_array_equal(valid, [True, True, False, False, True, True])
    np.testing.assert_array_equal(values[valid], good)
    assert np.isnan(values[~valid]).all()
    np.testing.assert_allclose(stamps, np.arange(6) / 50.0)  # bad lines keep their slot on the time axis
    assert src.stats.bad_samples == 2 and src.stats.samples == 4


def test_stdin_source_in_a_real_process(tmp_path):
    code = ("import json, sys\n"
            "from pathlib import Path\n"
            "from edge_agent.sources import make_source\n"
            "src = make_source({'kind': 'stdin', 'features': ['a', 'b']}, base_dir=Path('.'))\n"
            "src.open(); rows = 0\n"
            "while (b := src.read(1.0)) is not None: rows += len(b)\n"
            "print(json.dumps({'rows': rows, **src.stats.as_dict()}))\n")
    out = subprocess.run([sys.executable, "-c", code], input="1,2\n3,4\nnope\n5 6\n", capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["rows"] == 4 and stats["samples"] == 3 and stats["bad_samples"] == 1


# ----------------------------------------------------------------------------- serial over a pty


def _pty_serial():
    import serial

    master, slave = os.openpty()
    port = serial.serial_for_url(os.ttyname(slave), baudrate=115200, timeout=0)
    os.close(slave)  # pyserial holds its own descriptor
    return master, port


def _read_until(src, n_rows: int, limit_s: float = 10.0):
    blocks, end = [], time.monotonic() + limit_s
    while sum(len(b) for b in blocks) < n_rows and time.monotonic() < end:
        block = src.read(0.05)
        if len(block):
            blocks.append(block)
    return blocks


def test_serial_lines_over_a_pty():
    master, port = _pty_serial()
    src = SerialLineSource("pty", ["x", "y", "z"], opener=lambda: port)
    src.open()
    try:
        os.write(master, b"1,2,3\r\n4,5,")  # CRLF and a line split across writes
        first = _read_until(src, 1)
        os.write(master, b"6\nbad line\n7 8 9\n")
        rest = _read_until(src, 3)
    finally:
        src.close()
        os.close(master)
    values = np.concatenate([b.values for b in first + rest])
    np.testing.assert_array_equal(values[[0, 1, 3]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert np.isnan(values[2]).all() and src.stats.bad_samples == 1 and src.stats.read_errors == 0


def test_serial_reconnects_after_the_device_disappears():
    import serial

    masters: list[int] = []
    attempts = {"n": 0}

    def opener():
        attempts["n"] += 1
        if attempts["n"] == 2:  # the adapter is still gone at the first retry
            raise serial.SerialException("could not open port /dev/ttyUSB0: No such file or directory")
        master, port = _pty_serial()
        masters.append(master)
        return port

    src = SerialLineSource("/dev/ttyUSB0", ["v"], rate_hz=100.0, reconnect_min_s=0.01, reconnect_max_s=0.05,
                           opener=opener, start_time=0.0)
    src.open()
    os.write(masters[0], b"1\n2\n")
    before = _read_until(src, 2)
    os.close(masters[0])  # USB cable pulled: reads now fail with SerialException
    after: list = []
    end = time.monotonic() + 10.0
    while not after and time.monotonic() < end:
        src.read(0.05)  # must not raise
        if len(masters) == 2 and not after:
            os.write(masters[1], b"3\n4\n")
            after = _read_until(src, 2)
    src.close()
    os.close(masters[1])
    assert [float(v) for b in before for v in b.values[:, 0]] == [1.0, 2.0]
    assert [float(v) for b in after for v in b.values[:, 0]] == [3.0, 4.0]
    assert src.stats.read_errors == 2 and src.stats.reconnects == 1 and src.stats.gaps == 1
    assert after[0].gap_before >= 1
    assert after[0].timestamps[0] > before[-1].timestamps[-1] + 0.01  # stamps skip the outage


def test_serial_open_failure_is_a_config_error(tmp_path):
    src = make_source({"kind": "serial", "port": str(tmp_path / "ttyNOPE"), "features": ["a"]}, base_dir=tmp_path)
    with pytest.raises(VigilInputError) as err:
        src.open()
    assert err.value.key == "source.port"


# ----------------------------------------------------------------------------- synthetic


def test_generate_vibration_is_deterministic_and_plausible():
    a, ra = generate_vibration(4000, rate_hz=1000.0, seed=3)
    b, _ = generate_vibration(4000, rate_hz=1000.0, seed=3)
    c, _ = generate_vibration(4000, rate_hz=1000.0, seed=4)
    assert a.shape == (4000, 3) and a.dtype == np.float64 and ra == []
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert abs(a[:, 2].mean() - 1.0) < 0.05 and abs(a[:, 0].mean()) < 0.05  # gravity on z
    spectrum = np.abs(np.fft.rfft(a[:, 0] - a[:, 0].mean()))
    peak_hz = np.fft.rfftfreq(4000, 1e-3)[np.argmax(spectrum)]
    assert 24.5 <= peak_hz <= 30.5  # the 1x shaft tone dominates
    model = VibrationModel(1000.0, seed=3)
    harmonics = [spectrum[int(round(h * model.shaft_hz * 4))] for h in (1, 2, 3)]
    assert harmonics[0] > harmonics[1] > harmonics[2] > 10 * np.median(spectrum)


def test_faults_change_the_signal_only_inside_fault_ranges():
    n = 20000
    normal, _ = generate_vibration(n, seed=7)
    faulty, ranges = generate_vibration(n, seed=7, faults=True)
    assert len(ranges) == 4
    assert all(0.4 * n <= s <= e < n for s, e in ranges)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(ranges, ranges[1:], strict=False))
    inside = np.zeros(n, dtype=bool)
    for s, e in ranges:
        inside[s:e + 1] = True
    np.testing.assert_array_equal(faulty[~inside], normal[~inside])
    diff = faulty - normal
    (i0, i1), (m0, m1), (s0, s1), (f0, f1) = ranges
    assert np.abs(diff[i0:i1 + 1, :2]).max() > 0.3                         # bearing impacts
    ramp = np.abs(diff[m0:m1 + 1, 0])
    quarter = len(ramp) // 4
    assert ramp[-quarter:].mean() > 3 * ramp[:quarter].mean()               # imbalance grows
    assert np.abs(diff[s0:s1 + 1]).max() >= 2.5 and (np.abs(diff[s0:s1 + 1]).max(axis=1) > 1).sum() >= 3
    assert np.abs(diff[[s0, s1]]).max(axis=1).min() >= 2.5                  # the range ends on spikes
    assert np.ptp(faulty[f0:f1 + 1, 1]) == 0.0 and np.ptp(normal[f0:f1 + 1, 1]) > 0.5  # flat-lined y


def test_synthetic_source_streams_the_same_signal():
    expected, ranges = generate_vibration(3000, rate_hz=500.0, seed=1, faults=True)
    src = SyntheticSource(rate_hz=500.0, seed=1, faults=True, n_rows=3000, pace="fast", block_rows=700,
                          start_time=10.0)
    src.open()
    values, stamps, _ = drain(src)
    np.testing.assert_array_equal(values, expected.astype(np.float32))
    np.testing.assert_allclose(stamps, 10.0 + np.arange(3000) / 500.0)
    assert src.fault_ranges == ranges
    # endless: chunked generation equals the one-shot array
    endless = SyntheticSource(rate_hz=500.0, seed=1, pace="fast", block_rows=333)
    endless.open()
    got = np.concatenate([endless.read(0.0).values for _ in range(10)])
    normal, _ = generate_vibration(3330, rate_hz=500.0, seed=1)
    np.testing.assert_array_equal(got, normal.astype(np.float32))


# ----------------------------------------------------------------------------- factory


def test_factory_builds_every_kind(tmp_path, csv_file):
    sections = {
        "replay": {"kind": "replay", "path": str(csv_file), "columns": "a,b"},
        "stdin": {"kind": "stdin", "features": ["p", "q"]},
        "serial": {"kind": "serial", "port": "/dev/ttyUSB0", "features": ["p"]},
        "adxl345": {"kind": "adxl345", "address": 0x1D, "rate_hz": 800},
        "mpu6050": {"kind": "mpu6050", "rate_hz": 500, "dlpf_hz": 94},
        "synthetic": {"kind": "synthetic", "rate_hz": 200.0, "faults": True, "n_rows": 1000},
    }
    features = {}
    for kind, section in sections.items():
        src = make_source(section, base_dir=tmp_path)
        assert isinstance(src, Source)
        features[kind] = src.features
    assert features == {"replay": ["a", "b"], "stdin": ["p", "q"], "serial": ["p"], "adxl345": ["x", "y", "z"],
                        "mpu6050": ["x", "y", "z"], "synthetic": ["x", "y", "z"]}
    assert set(SOURCE_SCHEMA) == set(sections)


def test_parsed_options_fill_defaults_and_every_key_is_documented():
    options = parse_source_options({"kind": "adxl345", "rate_hz": 100})
    defaults = {key: spec.default for key, spec in SOURCE_SCHEMA["adxl345"].items()}
    assert options.as_table() == {"kind": "adxl345", **defaults, "rate_hz": 100.0}
    assert isinstance(options.rate_hz, float)
    for keys in SOURCE_SCHEMA.values():
        assert all(spec.doc and "\n" not in spec.doc for spec in keys.values())
    assert make_source({"kind": "stdin"}, default_features=["a", "b"]).features == ["a", "b"]


@pytest.mark.parametrize("section,key,words", [
    ({}, "source.kind", "required"),
    ({"kind": "usb"}, "source.kind", "one of"),
    ({"kind": "adxl345", "rate": 100}, "source.rate", "unknown key"),
    ({"kind": "adxl345", "rate_hz": "fast"}, "source.rate_hz", "number"),
    ({"kind": "adxl345", "rate_hz": 1000}, "source.rate_hz", "3200"),
    ({"kind": "adxl345", "range_g": 3}, "source.range_g", "one of"),
    ({"kind": "adxl345", "address": 0x68}, "source.address", "0x53"),
    ({"kind": "adxl345", "full_resolution": 1}, "source.full_resolution", "true or false"),
    ({"kind": "adxl345", "bus": True}, "source.bus", "integer"),
    ({"kind": "adxl345", "retry_min_s": 2.0, "retry_max_s": 1.0}, "source.retry_max_s", ">="),
    ({"kind": "mpu6050", "rate_hz": 300}, "source.rate_hz", "1000/n"),
    ({"kind": "mpu6050", "dlpf_hz": 50}, "source.dlpf_hz", "one of"),
    ({"kind": "stdin"}, "source.features", "required"),  # and no bundle to take them from
    ({"kind": "stdin", "features": "x,y"}, "source.features", "list"),
    ({"kind": "serial", "features": ["a"]}, "source.port", "required"),
    ({"kind": "synthetic", "speed": 0}, "source.speed", "> 0"),
    ({"kind": "synthetic", "faults": True}, "source.n_rows", "500"),
    ({"kind": "synthetic", "pace": "slow"}, "source.pace", "realtime"),
    ({"kind": "replay"}, "source.path", "required"),
    ({"kind": "replay", "path": "x.csv", "rows": "5:1"}, "source.rows", "START"),
    ({"kind": "replay", "path": "x.csv", "columns": "a,,b"}, "source.columns", "empty"),
])
def test_factory_errors_name_the_key(tmp_path, section, key, words):
    with pytest.raises(VigilInputError) as err:
        make_source(section, base_dir=tmp_path)
    message = str(err.value)
    assert err.value.key == key and words in message and "\n" not in message


def test_replay_file_errors_name_file_and_key(tmp_path, csv_file):
    with pytest.raises(VigilInputError) as err:
        make_source({"kind": "replay", "path": "missing.csv"}, base_dir=tmp_path)
    assert err.value.key == "source.path" and "missing.csv" in str(err.value)
    with pytest.raises(VigilInputError) as err:
        make_source({"kind": "replay", "path": csv_file.name, "columns": ["a", "nope"]}, base_dir=csv_file.parent)
    assert err.value.key == "source.columns" and "'nope'" in str(err.value)
    with pytest.raises(VigilInputError) as err:
        make_source({"kind": "replay", "path": csv_file.name, "rows": "100:200"}, base_dir=csv_file.parent)
    assert err.value.key == "source.rows"


def _pipe_source(chunks: list[bytes], features: list[str]) -> tuple[StdinSource, Any]:
    """A StdinSource on a real pipe fed by a writer thread (a 10 MB line does not fit a pipe buffer)."""
    import threading

    r, w = os.pipe()

    def write() -> None:
        with os.fdopen(w, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    stream = os.fdopen(r, "rb")
    src = StdinSource(features, rate_hz=10.0, stream=stream, start_time=0.0)
    src.open()
    return src, stream


def test_stdin_10_mb_line_is_one_bad_sample_and_is_never_buffered() -> None:
    from edge_agent.sources.stdin import MAX_LINE_BYTES

    chunks = [b"1,2\n", b"9" * (10 << 20), b"\n3,4\n", b"x" * (MAX_LINE_BYTES + 10) + b"\n5,6\n"]
    src, stream = _pipe_source(chunks, ["a", "b"])
    with stream:
        values, stamps, blocks = drain(src)
    valid = np.concatenate([b.valid if b.valid is not None else np.ones(len(b), bool) for b in blocks])
    np.testing.assert_array_equal(valid, [True, False, True, False, True])
    np.testing.assert_array_equal(values[valid], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(stamps, np.arange(5) / 10.0)  # each bad line keeps ONE slot on the time axis
    stats = src.stats.as_dict()
    assert (stats["bad_samples"], stats["samples"], stats["overlong_lines"]) == (2, 3, 2)
    assert len(src._parser._pending) <= MAX_LINE_BYTES  # nothing of the long line is held


def test_stdin_overlong_line_at_eof_counts_once() -> None:
    src, stream = _pipe_source([b"1,2\n", b"7" * (1 << 20)], ["a", "b"])
    with stream:
        values, _stamps, _blocks = drain(src)
    assert len(values) == 2 and src.stats.bad_samples == 1 and src.stats.samples == 1
