"""Label loading for every supported layout, with hand-made files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from tests.conftest import shared_data_file
from trainer.labels import LabelRangeWarning, load_labels, ranges_to_mask, read_labels


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_start_end_rows_sorted_and_merged(tmp_path: Path) -> None:
    f = write(tmp_path / "l.csv", "start,end,note\n50,60,b\n10,20,a\n55,70,c\n")
    assert load_labels(f, n_rows=100) == [(10, 20), (50, 70)]


def test_csv_rows_with_row_offset_clip_and_drop(tmp_path: Path) -> None:
    f = write(tmp_path / "l.csv", "start,end\n10,20\n95,130\n300,310\n")
    # Loaded rows are file rows [100, 200): (10,20) dropped, (95,130) clipped to (100,130).
    labels = read_labels(f, n_rows=100, row_offset=100)
    assert labels.ranges == [(100, 130)]
    assert (labels.dropped, labels.clipped) == (2, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_labels(f, n_rows=100, row_offset=100) == [(100, 130)]
    assert any(issubclass(w.category, LabelRangeWarning) for w in caught)
    np.testing.assert_array_equal(np.flatnonzero(ranges_to_mask([(100, 130)], 100, 100)), np.arange(31))


def test_csv_timestamps_map_to_rows(tmp_path: Path) -> None:
    stamps = np.datetime64("2024-01-01T00:00:00") + np.arange(10) * np.timedelta64(60, "s")
    seconds = stamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    f = write(tmp_path / "l.csv", "start,end\n2024-01-01 00:02:30,2024-01-01T00:05:00\n")
    # First row >= 00:02:30 is row 3 (00:03), last row <= 00:05 is row 5.
    assert load_labels(f, n_rows=10, timestamps=seconds) == [(3, 5)]
    with pytest.raises(VigilInputError, match="timestamp"):
        load_labels(f, n_rows=10)


def test_telemanom_labeled_anomalies(tmp_path: Path) -> None:
    f = write(tmp_path / "labeled_anomalies.csv",
              "chan_id,spacecraft,anomaly_sequences,class,num_values\n"
              'P-1,SMAP,"[[20, 30], [50, 55]]","[contextual, point]",100\n'
              'S-1,SMAP,"[[5, 8]]",[point],100\n')
    assert load_labels(f, n_rows=100, channel="P-1") == [(20, 30), (50, 55)]
    assert load_labels(f, n_rows=100, channel="S-1") == [(5, 8)]
    with pytest.raises(VigilInputError, match="channel"):
        load_labels(f, n_rows=100)  # two channels, none chosen
    with pytest.raises(VigilInputError, match="channel not in the label file"):
        load_labels(f, n_rows=100, channel="X-9")


def test_wide_anomaly_sequences_end_is_exclusive(tmp_path: Path) -> None:
    f = write(tmp_path / "anomaly_sequences.csv",
              "chan_id,num_values,num_true_anoms,start1,end1,start2,end2\n"
              "A-1,100,2,10,20,40,45\n"
              "A-2,100,1,3,9,,\n")
    assert load_labels(f, n_rows=100, channel="A-1") == [(10, 19), (40, 44)]
    assert load_labels(f, n_rows=100, channel="A-2") == [(3, 8)]


def test_nab_combined_windows(tmp_path: Path) -> None:
    f = write(tmp_path / "combined_windows.json", json.dumps({
        "realKnownCause/machine.csv": [["2014-01-01 00:10:00.000000", "2014-01-01 00:25:00.000000"]],
        "artificial/other.csv": [],
    }))
    stamps = np.datetime64("2014-01-01T00:00:00") + np.arange(20) * np.timedelta64(300, "s")
    seconds = stamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    # Rows every 5 minutes: 00:10 is row 2, 00:25 is row 5.
    assert load_labels(f, n_rows=20, timestamps=seconds, series="realKnownCause/machine.csv") == [(2, 5)]
    # A data path ending in the key selects it too.
    assert load_labels(f, n_rows=20, timestamps=seconds, series="/data/NAB/data/realKnownCause/machine.csv") == [
        (2, 5)]
    assert load_labels(f, n_rows=20, timestamps=seconds, series="artificial/other.csv") == []
    with pytest.raises(VigilInputError, match="series"):
        load_labels(f, n_rows=20, timestamps=seconds, series="nope.csv")
    with pytest.raises(VigilInputError, match="2 series"):
        load_labels(f, n_rows=20, timestamps=seconds)


def test_discord_labels_json_exclusive_bounds(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.json", json.dumps({
        "_format": "rows lo < i < hi are anomalous",
        "files": {"a.txt": {"anomaly_ranges": [[10, 20], [30, 35]], "train_rows": [None, 5]},
                  "b.txt": {"anomaly_ranges": [[1, 3]]}},
    }))
    assert load_labels(f, n_rows=100, series="a.txt") == [(11, 19), (31, 34)]
    assert load_labels(f, n_rows=100, series="some/dir/b.txt") == [(2, 2)]
    with pytest.raises(VigilInputError):
        load_labels(f, n_rows=100, series="c.txt")


def test_json_list_of_pairs(tmp_path: Path) -> None:
    f = write(tmp_path / "l.json", "[[5, 9], [1, 2]]")
    assert load_labels(f, n_rows=50) == [(1, 2), (5, 9)]


@pytest.mark.parametrize("name, text, match", [
    ("missing.csv", None, "not found"),
    ("empty.csv", "", "empty"),
    ("bad.csv", "a,b\n1,2\n", "header"),
    ("rev.csv", "start,end\n9,3\n", "after end"),
    ("neg.csv", "start,end\n-1,3\n", "negative"),
    ("text.csv", "start,end\nx,3\n", "not a row number"),
    ("bad.json", "{not json", "JSON"),
    ("l.txt", "start,end\n1,2\n", "unsupported"),
])
def test_bad_label_files_are_one_line_errors(tmp_path: Path, name: str, text: str | None, match: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(VigilInputError, match=match) as info:
        load_labels(path, n_rows=10)
    assert "\n" not in str(info.value)


def test_real_discord_and_nab_label_files() -> None:
    ecg = load_labels(shared_data_file("discords", "labels.json"), n_rows=1841, row_offset=1833,
                      series="chfdb_chf01_275.txt")
    assert ecg == [(2331, 2599)]  # [2330, 2600] with exclusive bounds
    nab = shared_data_file("NAB", "labels", "combined_windows.json")
    keys = json.loads(nab.read_text())
    key = "realKnownCause/machine_temperature_system_failure.csv"
    assert key in keys
    with pytest.raises(VigilInputError, match="timestamp"):
        load_labels(nab, n_rows=10, series=key)  # NAB windows need the data's timestamps
