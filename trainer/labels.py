"""Ground-truth anomaly ranges from the label formats people actually have.

Every format becomes a list of *inclusive*, 0-based **file data-row** ranges
``(start, end)``, the row numbering of :class:`edge_agent.readers.Table`
(``values[i]`` is file row ``row_offset + i``). Formats, chosen by content:

- CSV with a ``start,end`` header (other columns ignored). Integers are file
  data rows (inclusive); anything else is a timestamp (ISO datetime, or epoch
  seconds written with a decimal point) mapped through the data's timestamps to
  the first row >= start .. the last row <= end.
- NASA/Telemanom ``labeled_anomalies.csv`` (``chan_id, ..., anomaly_sequences``
  like ``"[[2149, 2349]]"``, inclusive indices) with ``channel=``. A channel
  listed on several rows (P-2 in the published file) contributes all its ranges.
- The wide ``anomaly_sequences.csv`` layout (``chan_id[, num_values],
  num_true_anoms`` then start/end pairs) with ``channel=``. This is not a file of
  khundman/telemanom itself (its history only has labeled_anomalies.csv); the
  layout comes from a derivative project whose code slices ``[start:end)``, so the
  end is taken as exclusive.
- NAB ``combined_windows.json`` ``{"<folder>/<file>.csv": [[start_ts, end_ts]]}``
  (``combined_labels.json`` point stamps also work) with ``series=``.
- The discord ``labels.json`` (``_format``/``files``; bounds exclusive, lo < i < hi)
  with ``series=<file name>``.
- A plain JSON list of ``[start, end]`` pairs (same value rules as the CSV).

``series``/``channel`` may be omitted when the file holds exactly one; a series
may also be given as a data path ending in the key. Ranges are sorted and
overlapping ones merged. Ranges reaching outside the loaded rows
``[row_offset, row_offset + n_rows)`` are clipped; ranges entirely outside are
dropped. :func:`read_labels` returns those counts; :func:`load_labels` (the
pinned API) emits one :class:`LabelRangeWarning` line about them, which a CLI can
print with ``warnings.catch_warnings(record=True)``.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import VigilInputError
from edge_agent.readers import parse_datetime_seconds

Bound = int | float  # int: file data row; float: epoch seconds (mapped through timestamps)


class LabelRangeWarning(UserWarning):
    """Some label ranges were clipped or dropped to fit the loaded rows."""


@dataclass
class LabelSet:
    ranges: list[tuple[int, int]]
    dropped: int = 0
    clipped: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self, source: str, n_rows: int, row_offset: int) -> str | None:
        """One line for the user, or None when nothing needs saying."""
        parts = list(self.notes)
        if self.dropped:
            parts.append(f"{self.dropped} label range(s) lie outside data rows "
                         f"[{row_offset}, {row_offset + n_rows}) and were dropped")
        if self.clipped:
            parts.append(f"{self.clipped} label range(s) were clipped to those rows")
        return f"{source}: " + "; ".join(parts) if parts else None


def load_labels(path: str | Path, *, n_rows: int, timestamps: np.ndarray | None = None, row_offset: int = 0,
                channel: str | None = None, series: str | None = None) -> list[tuple[int, int]]:
    """Inclusive 0-based file data-row ranges inside the loaded rows (see module doc)."""
    labels = read_labels(path, n_rows=n_rows, timestamps=timestamps, row_offset=row_offset,
                         channel=channel, series=series)
    message = labels.summary(str(path), n_rows, row_offset)
    if message:
        warnings.warn(message, LabelRangeWarning, stacklevel=2)
    return labels.ranges


def read_labels(path: str | Path, *, n_rows: int, timestamps: np.ndarray | None = None, row_offset: int = 0,
                channel: str | None = None, series: str | None = None) -> LabelSet:
    """Like :func:`load_labels` but returns the dropped/clipped counts instead of warning."""
    source = str(path)
    path = Path(path)
    if not path.is_file():
        raise VigilInputError("label file not found", file=source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise VigilInputError(f"label file cannot be read as UTF-8 text ({exc})", file=source) from None
    if not text.strip():
        raise VigilInputError("label file is empty", file=source)
    notes: list[str] = []
    if path.suffix.lower() == ".json":
        raw = _json_ranges(text, source, series)
    elif path.suffix.lower() == ".csv":
        raw = _csv_ranges(text, source, channel, notes)
    else:
        raise VigilInputError(f"unsupported label file type {path.suffix or '(none)'!r}; use .csv or .json",
                              file=source)
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (n_rows,):
            raise ValueError(f"timestamps has shape {timestamps.shape}, expected ({n_rows},)")
    return _fit_to_rows(raw, source, n_rows, timestamps, row_offset, notes)


def ranges_to_mask(ranges: list[tuple[int, int]], n_rows: int, row_offset: int = 0) -> np.ndarray:
    """Boolean mask over the loaded rows: True where a (file-row, inclusive) range covers the row."""
    mask = np.zeros(n_rows, dtype=bool)
    for start, end in ranges:
        lo, hi = max(int(start) - row_offset, 0), min(int(end) - row_offset, n_rows - 1)
        if lo <= hi:
            mask[lo:hi + 1] = True
    return mask


# --------------------------------------------------------------------------- raw ranges per format

RawRange = tuple[Bound, Bound, "int | str"]  # start, end, where (CSV row or JSON key) for errors


def _csv_ranges(text: str, source: str, channel: str | None, notes: list[str]) -> list[RawRange]:
    table = list(csv.reader(text.splitlines()))
    header = [cell.strip().lower() for cell in table[0]]
    body = [(i, row) for i, row in enumerate(table[1:]) if any(cell.strip() for cell in row)]
    if "chan_id" in header and "anomaly_sequences" in header:
        return _telemanom_ranges(header, body, source, channel, notes)
    if "chan_id" in header and "num_true_anoms" in header:
        return _wide_ranges(header, body, source, channel, notes)
    if "start" in header and "end" in header:
        i_start, i_end = header.index("start"), header.index("end")
        out = []
        for row_no, row in body:
            if len(row) <= max(i_start, i_end):
                raise VigilInputError(f"label row {row_no} (0-based, header not counted) has too few fields",
                                      file=source, row=row_no)
            out.append(_pair(row[i_start], row[i_end], source, row_no))
        return out
    raise VigilInputError(f"unrecognised label CSV header {table[0]}; expected start,end or Telemanom's "
                          "chan_id,...,anomaly_sequences", file=source)


def _telemanom_ranges(header: list[str], body: list[tuple[int, list[str]]], source: str,
                      channel: str | None, notes: list[str]) -> list[RawRange]:
    i_chan, i_seq = header.index("chan_id"), header.index("anomaly_sequences")
    rows = _channel_rows(body, i_chan, source, channel, notes)
    out: list[RawRange] = []
    for row_no, row in rows:
        try:
            pairs = json.loads(row[i_seq])
        except (json.JSONDecodeError, IndexError):
            pairs = None
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise VigilInputError("anomaly_sequences must look like [[start, end], ...]", file=source,
                                  row=row_no, column="anomaly_sequences")
        out.extend(_pair(p[0], p[1], source, row_no, rows_only=True) for p in pairs)
    return out


def _wide_ranges(header: list[str], body: list[tuple[int, list[str]]], source: str,
                 channel: str | None, notes: list[str]) -> list[RawRange]:
    i_chan, i_count = header.index("chan_id"), header.index("num_true_anoms")
    out: list[RawRange] = []
    for row_no, row in _channel_rows(body, i_chan, source, channel, notes):
        cells = [cell.strip() for cell in row[i_count:]]
        if not cells or not re.fullmatch(r"\d+", cells[0]) or len(cells) < 1 + 2 * int(cells[0]):
            raise VigilInputError("num_true_anoms must be a count followed by that many start,end pairs",
                                  file=source, row=row_no, column="num_true_anoms")
        for k in range(int(cells[0])):
            start, end = _pair(cells[1 + 2 * k], cells[2 + 2 * k], source, row_no, rows_only=True)[:2]
            out.append((start, int(end) - 1, row_no))  # that layout's end is exclusive
    return out


def _channel_rows(body: list[tuple[int, list[str]]], i_chan: int, source: str, channel: str | None,
                  notes: list[str]) -> list[tuple[int, list[str]]]:
    ids = [row[i_chan].strip() if len(row) > i_chan else "" for _, row in body]
    distinct = list(dict.fromkeys(ids))
    if channel is None:
        if len(distinct) != 1:
            raise VigilInputError(f"holds {len(distinct)} channels; choose one with a channel "
                                  f"(e.g. {', '.join(distinct[:5])})", file=source, key="chan_id")
        channel = distinct[0]
    rows = [entry for entry, chan in zip(body, ids) if chan == channel]
    if not rows:
        raise VigilInputError(f"channel not in the label file (e.g. {', '.join(distinct[:5])})",
                              file=source, key=channel)
    if len(rows) > 1:
        notes.append(f"channel {channel!r} appears on {len(rows)} rows; using the ranges of all of them")
    return rows


def _json_ranges(text: str, source: str, series: str | None) -> list[RawRange]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VigilInputError(f"label file is not valid JSON ({exc.msg} at line {exc.lineno})",
                              file=source) from None
    if isinstance(doc, list):
        return [_json_pair(item, source, i) for i, item in enumerate(doc)]
    if isinstance(doc, dict) and isinstance(doc.get("files"), dict) and "_format" in doc:
        key = _pick_series(doc["files"], series, source)
        entry = doc["files"][key]
        ranges = entry.get("anomaly_ranges") if isinstance(entry, dict) else None
        if not isinstance(ranges, list):
            raise VigilInputError("entry has no anomaly_ranges list", file=source, key=key)
        out = []
        for item in ranges:
            lo, hi, _ = _json_pair(item, source, key, rows_only=True)
            if hi - lo < 2:  # exclusive bounds: lo < i < hi must leave at least one row
                raise VigilInputError(f"range {item} holds no rows (bounds are exclusive)", file=source, key=key)
            out.append((int(lo) + 1, int(hi) - 1, key))
        return out
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        key = _pick_series(doc, series, source)  # NAB windows (pairs) or point labels (single stamps)
        return [_json_pair(item if isinstance(item, list) else [item, item], source, key) for item in doc[key]]
    raise VigilInputError("unrecognised label JSON; expected NAB combined_windows.json, the discord labels.json "
                          "or a list of [start, end] pairs", file=source)


def _pick_series(entries: dict[str, Any], series: str | None, source: str) -> str:
    keys = [k for k in entries if not k.startswith("_")]
    sample = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    if series is None:
        if len(keys) == 1:
            return keys[0]
        raise VigilInputError(f"holds {len(keys)} series; choose one with a series (e.g. {sample})", file=source)
    if series in entries:
        return series
    wanted = series.replace("\\", "/")  # a data path ending in the key, or a key ending in the name
    matches = [k for k in keys if wanted.endswith("/" + k) or k.endswith("/" + wanted)]
    if len(matches) == 1:
        return matches[0]
    why = "matches several series" if matches else "not in the label file"
    raise VigilInputError(f"series {why} (e.g. {sample})", file=source, key=series)


# --------------------------------------------------------------------------- values and rows


def _json_pair(item: Any, source: str, where: int | str, rows_only: bool = False) -> RawRange:
    if not isinstance(item, list) or len(item) != 2:
        raise VigilInputError(f"label entry {item!r} is not a [start, end] pair", file=source,
                              **_where_kwargs(where))
    return _pair(item[0], item[1], source, where, rows_only)


def _pair(start: Any, end: Any, source: str, where: int | str, rows_only: bool = False) -> RawRange:
    lo, hi = _bound(start, source, where, rows_only), _bound(end, source, where, rows_only)
    if isinstance(lo, int) != isinstance(hi, int):
        raise VigilInputError(f"start {start!r} and end {end!r} mix a row number and a timestamp",
                              file=source, **_where_kwargs(where))
    if lo > hi:
        raise VigilInputError(f"start {start!r} is after end {end!r}", file=source, **_where_kwargs(where))
    return lo, hi, where


def _bound(value: Any, source: str, where: int | str, rows_only: bool) -> Bound:
    text = str(value).strip()
    if isinstance(value, bool):
        text = ""  # never a row number
    elif isinstance(value, int) or re.fullmatch(r"[+-]?\d+", text):
        if int(text) < 0:
            raise VigilInputError(f"row {text} is negative", file=source, **_where_kwargs(where))
        return int(text)
    if not rows_only:
        seconds = parse_datetime_seconds(text)
        if seconds is None and re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", text):
            seconds = float(text)
        if seconds is not None:
            return float(seconds)
    expected = "a row number" if rows_only else "a row number or a timestamp"
    raise VigilInputError(f"label bound {value!r} is not {expected}", file=source, **_where_kwargs(where))


def _where_kwargs(where: int | str) -> dict[str, Any]:
    return {"row": where} if isinstance(where, int) else {"key": where}


def _fit_to_rows(raw: list[RawRange], source: str, n_rows: int, timestamps: np.ndarray | None,
                 row_offset: int, notes: list[str]) -> LabelSet:
    first, last = row_offset, row_offset + n_rows - 1
    kept: list[tuple[int, int]] = []
    dropped = clipped = 0
    for lo, hi, where in raw:
        if isinstance(lo, float):
            rows = _rows_for_times(lo, hi, source, timestamps, where)
            if rows is None:
                dropped += 1
                continue
            clipped += int(timestamps is not None and (lo < timestamps.min() or hi > timestamps.max()))
            lo, hi = rows[0] + row_offset, rows[1] + row_offset
        if hi < first or lo > last:
            dropped += 1
            continue
        clipped += int(lo < first or hi > last)
        kept.append((max(int(lo), first), min(int(hi), last)))
    return LabelSet(_merge(kept), dropped, clipped, notes)


def _rows_for_times(lo: float, hi: float, source: str, timestamps: np.ndarray | None,
                    where: int | str) -> tuple[int, int] | None:
    if timestamps is None:
        raise VigilInputError("label uses timestamps but the data has no timestamp column "
                              "(load the data with one, or label by row numbers)", file=source,
                              **_where_kwargs(where))
    inside = np.flatnonzero((timestamps >= lo) & (timestamps <= hi))
    return (int(inside[0]), int(inside[-1])) if inside.size else None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping ranges (two labels of one stretch are one event)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
