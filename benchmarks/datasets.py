"""The real labeled series of the quality benchmark, loaded through the project's readers.

Discords (``../shared/data/discords``): train/test row slices and labels from
``labels.json`` (exclusive bounds, converted by ``trainer.labels``); ECG files use
columns 1,2 (column 0 is a time stamp); files without labels are skipped.
NAB ``realKnownCause``: the first 15% of rows (NAB's probationary period) train,
the rest is scored against ``labels/combined_windows.json``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import DATA
from edge_agent.readers import Table, load_table

DISCORDS = DATA / "discords"
NAB = DATA / "NAB"
NAB_PROBATION = 0.15


@dataclass
class Series:
    """One benchmark series: where its rows and labels come from."""

    name: str
    group: str
    path: Path
    columns: list[str] | None
    train_rows: tuple[int, int]
    test_rows: tuple[int, int]
    labels_path: Path
    labels_key: str
    timestamp_column: str | None = None
    notes: list[str] = field(default_factory=list)

    def load_train(self) -> Table:
        return load_table(self.path, columns=self.columns, rows=self.train_rows,
                          timestamp_column=self.timestamp_column)

    def load_test(self) -> Table:
        return load_table(self.path, columns=self.columns, rows=self.test_rows,
                          timestamp_column=self.timestamp_column)

    def label_ranges(self, test: Table) -> list[tuple[int, int]]:
        """Inclusive file-row ranges inside the test rows; clipping noted, not warned."""
        from trainer.labels import read_labels

        labels = read_labels(self.labels_path, n_rows=test.n_rows, timestamps=test.timestamps,
                             row_offset=test.row_offset, series=self.labels_key)
        message = labels.summary(self.name, test.n_rows, test.row_offset)
        if message and message not in self.notes:
            self.notes.append(message)
        return labels.ranges


def _count_rows(path: Path, header: bool) -> int:
    with path.open("rb") as fh:
        n = sum(1 for line in fh if line.strip())
    return n - int(header)


def _slice(bounds: list[int | None], n_rows: int) -> tuple[int, int]:
    lo, hi = bounds
    return (0 if lo is None else int(lo), n_rows if hi is None else int(hi))


def discord_series() -> list[Series]:
    doc = json.loads((DISCORDS / "labels.json").read_text())["files"]
    out = []
    for path in sorted(DISCORDS.glob("*/*.txt")):
        entry = doc.get(path.name)
        if not entry or not entry.get("anomaly_ranges"):
            continue  # no labels (mitdbx_mitdbx_108, qtdbsele0606)
        n = _count_rows(path, header=False)
        columns = ["1", "2"] if path.parent.name == "ecg" else None
        out.append(Series(name=path.stem, group=f"discords/{path.parent.name}", path=path, columns=columns,
                          train_rows=_slice(entry["train_rows"], n), test_rows=_slice(entry["test_rows"], n),
                          labels_path=DISCORDS / "labels.json", labels_key=path.name))
    return out


def nab_series(folder: str = "realKnownCause") -> list[Series]:
    out = []
    for path in sorted((NAB / "data" / folder).glob("*.csv")):
        n = _count_rows(path, header=True)
        cut = int(math.floor(n * NAB_PROBATION))
        out.append(Series(name=path.stem, group=f"NAB/{folder}", path=path, columns=["value"],
                          train_rows=(0, cut), test_rows=(cut, n),
                          labels_path=NAB / "labels" / "combined_windows.json",
                          labels_key=f"{folder}/{path.name}", timestamp_column="timestamp"))
    return out


def all_series(every_nab: bool = False) -> list[Series]:
    """The benchmark's set (16 discords + NAB realKnownCause), or with ``every_nab`` all 58 NAB series."""
    if not every_nab:
        return discord_series() + nab_series()
    folders = sorted(p.name for p in (NAB / "data").iterdir() if p.is_dir())
    return discord_series() + [s for folder in folders for s in nab_series(folder)]


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for s in all_series():
            train, test = s.load_train(), s.load_test()
            ranges = s.label_ranges(test)
            mask_rows = sum(e - b + 1 for b, e in ranges)
            print(f"{s.group:24s} {s.name:36s} f={train.values.shape[1]} train={train.n_rows:6d} "
                  f"test={test.n_rows:6d} events={len(ranges)} anomalous_rows={mask_rows} "
                  f"({mask_rows / test.n_rows:.1%}) {s.notes}")
