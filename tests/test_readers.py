"""edge_agent.readers: every input format, and one-line errors that point at file, row and column."""

from __future__ import annotations

import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from edge_agent.readers import load_table, parse_columns, parse_rows

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_header_picks_columns_by_name_and_keeps_the_timestamp(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "timestamp,a,b\n2026-01-01 00:00:00,1,10\n2026-01-01 00:00:01,2,20\n"
                                  "2026-01-01 00:00:02,3,30\n")
    t = load_table(f, columns=["b", "a"])
    assert t.names == ["b", "a"]
    assert t.values.tolist() == [[10, 1], [20, 2], [30, 3]]
    assert t.timestamp_column == "timestamp"
    assert t.timestamps is not None and t.timestamps[0] == 1767225600.0  # 2026-01-01T00:00:00Z
    assert np.allclose(np.diff(t.timestamps), 1.0)
    assert t.sampling_rate_hz == 1.0


def test_headerless_whitespace_txt_names_columns_by_position_and_slices_rows(tmp_path: Path) -> None:
    f = write(tmp_path / "d.txt", "".join(f"{i} {i * 2} {i * 3}\n" for i in range(10)))
    t = load_table(f, columns=["1", "2"], rows=(4, 7))
    assert t.names == ["1", "2"]
    assert t.values.tolist() == [[8, 12], [10, 15], [12, 18]]
    assert t.row_offset == 4 and t.timestamps is None


def test_npy_one_and_two_dimensional(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.arange(5.0))
    np.save(tmp_path / "two.npy", np.arange(12.0).reshape(6, 2))
    assert load_table(tmp_path / "one.npy").values.shape == (5, 1)
    t = load_table(tmp_path / "two.npy", columns=["1"], rows=(2, None))
    assert t.values[:, 0].tolist() == [5.0, 7.0, 9.0, 11.0]


def test_wav_pcm16_stereo_scaled_to_unit_range_with_header_rate(tmp_path: Path) -> None:
    frames = np.array([[0, 16384], [-32768, 32767]], dtype="<i2")
    with wave.open(str(tmp_path / "v.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames.tobytes())
    t = load_table(tmp_path / "v.wav")
    assert t.names == ["ch0", "ch1"]
    assert t.sampling_rate_hz == 8000.0
    assert t.values.tolist() == [[0.0, 0.5], [-1.0, 32767 / 32768]]


def test_wav_ieee_float32_mono(tmp_path: Path) -> None:
    data = np.array([0.25, -0.5], dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 100, 400, 4, 32)
    blob = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    (tmp_path / "f.wav").write_bytes(b"RIFF" + struct.pack("<I", len(blob)) + blob)
    t = load_table(tmp_path / "f.wav")
    assert t.values[:, 0].tolist() == [0.25, -0.5] and t.sampling_rate_hz == 100.0


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "expected"),
    [
        ("missing.csv", None, {}, "missing.csv: file not found"),
        ("cols.csv", "a,b\n1,2\n", {"columns": ["c"]}, "column 'c': column not found; available: a, b"),
        ("cell.csv", "a,b\n1,2\n3,x\n", {}, "row 1, column 'b': data row 1"),
        ("nan.csv", "a,b\n1,2\n3,nan\n", {}, "row 1, column 'b'"),
        ("short.csv", "a,b\n1,2\n3\n", {}, "row 1: data row 1"),
        ("empty.csv", "", {}, "is empty"),
        ("few.csv", "a\n1\n2\n", {"min_rows": 5}, "needs at least 5 rows"),
        ("bad.wav", "not a wav", {}, "is not a RIFF/WAVE file"),
        ("x.json", "{}", {}, "unsupported file type"),
    ],
)
def test_bad_input_is_one_line_naming_file_row_and_column(tmp_path: Path, name: str, text: str | None,
                                                          kwargs: dict, expected: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(VigilInputError) as caught:
        load_table(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


def test_parse_columns_and_rows() -> None:
    assert parse_columns(" a, b ") == ["a", "b"]
    assert parse_columns(None) is None
    assert parse_rows("10:20") == (10, 20)
    assert parse_rows("5:") == (5, None)
    for bad in ("20:10", "a:b", "-1:5"):
        with pytest.raises(VigilInputError):
            parse_rows(bad)
    with pytest.raises(VigilInputError):
        parse_columns("a,a")


def test_train_command_without_the_train_extra_prints_the_install_hint(tmp_path: Path) -> None:
    # A device with only the edge extra: tensorflow & co. cannot be imported.
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'tensorflow', 'tf_keras', 'keras', 'sklearn', 'matplotlib'}:\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "from vigil.cli import main\n"
        f"main(['train', {str(tmp_path / 'd.csv')!r}, '--out', {str(tmp_path / 'run')!r}])\n"
    )
    write(tmp_path / "d.csv", "a\n1\n")
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "vigil train: needs the train extra: pip install 'vigil-edge[train]'"
