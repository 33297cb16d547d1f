"""Read a sensor table from CSV, whitespace TXT, NPY or WAV into one :class:`Table`.

numpy + stdlib only (the device uses it too). Bad input is a one-line
:class:`VigilInputError` naming file, 0-based *data* row (header not counted) and column.

- CSV/TXT have a header when the first line holds a field that is neither a number
  nor a datetime; otherwise columns are named "0", "1", ... (NPY likewise; WAV "ch0"...).
- The timestamp column (``timestamp_column=``, else one named timestamp/time/date/
  datetime, else the first holding ISO datetimes) is not a feature; it becomes float
  epoch seconds (naive = UTC; numeric stamps kept as they are).
- WAV: PCM 8/16/24/32-bit or IEEE float 32/64, scaled to [-1, 1]; rate from the header.
- ``rows=(start, end)`` keeps data rows [start, end) (END past the file = to the end).
"""

from __future__ import annotations

import csv
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.errors import VigilInputError

TIMESTAMP_NAMES = ("timestamp", "time", "date", "datetime")
SUPPORTED_SUFFIXES = (".csv", ".txt", ".npy", ".wav")
_NAIVE_ISO = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_PLAIN_DATETIME = re.compile(_NAIVE_ISO)
_ISO_DATETIME = re.compile(_NAIVE_ISO + r"(?:Z|[+-]\d{2}:?\d{2})?")
_WAVE_FORMAT_PCM, _WAVE_FORMAT_FLOAT, _WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


@dataclass
class Table:
    """Rows of one file: ``values[i]`` is file data row ``row_offset + i``."""

    values: np.ndarray
    names: list[str]
    timestamps: np.ndarray | None
    timestamp_column: str | None
    sampling_rate_hz: float | None
    source: str
    row_offset: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])


def parse_columns(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; empty or None -> None (all columns)."""
    if text is None or not text.strip():
        return None
    names = [part.strip() for part in text.split(",")]
    if any(not name for name in names):
        raise VigilInputError(f"empty column name in {text!r} (use NAME,NAME,...)", key="columns")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise VigilInputError(f"column(s) {', '.join(repeated)} listed twice in {text!r}", key="columns")
    return names


def parse_rows(text: str | None) -> tuple[int | None, int | None] | None:
    """``"START:END"`` (0-based data rows, END exclusive, either side may be empty)."""
    if text is None or not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if match is None:
        raise VigilInputError(f"rows must be START:END with 0-based non-negative integers "
                              f"(e.g. 0:5000 or 5000:), got {text!r}", key="rows")
    start, end = (int(bound) if bound else None for bound in match.groups())
    if start is not None and end is not None and start >= end:
        raise VigilInputError(f"rows {text!r}: START must be smaller than END", key="rows")
    return start, end


def parse_datetime_seconds(text: str) -> float | None:
    """ISO-like datetime text -> epoch seconds (naive = UTC); None if not a datetime."""
    text = text.strip()
    if not _ISO_DATETIME.fullmatch(text):
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def load_table(
    path: str | Path,
    columns: list[str] | None = None,
    rows: tuple[int | None, int | None] | None = None,
    timestamp_column: str | None = None,
    min_rows: int = 1,
    allow_nonfinite: bool = False,
) -> Table:
    """Read ``path`` (by extension) and return the selected rows and feature columns.

    NaN/inf feature values are refused (one line naming the row) unless
    ``allow_nonfinite``: a replay feeds them to the agent's sample-quality step,
    which skips or holds them exactly as it does for a live sensor.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise VigilInputError(f"unsupported file type {path.suffix or '(none)'!r}; "
                              f"use one of {', '.join(SUPPORTED_SUFFIXES)}", file=source)
    if not path.is_file():
        raise VigilInputError("file not found", file=source)
    if suffix in (".csv", ".txt"):
        table = _read_text(path, "," if suffix == ".csv" else None, columns, rows, timestamp_column,
                           allow_nonfinite)
    else:
        names, data, rate = _read_npy(path) if suffix == ".npy" else _read_wav(path)
        table = _table_from_array(source, names, data, rate, columns, rows, timestamp_column, allow_nonfinite)
    if table.n_rows < min_rows:
        raise VigilInputError(f"has {table.n_rows} data rows (after the rows selection); "
                              f"needs at least {min_rows} rows for one window", file=source)
    return table


def _resolve_rows(rows: tuple[int | None, int | None] | None, n_total: int, source: str) -> tuple[int, int]:
    start, end = rows if rows is not None else (None, None)
    start = 0 if start is None else int(start)
    end = n_total if end is None else min(int(end), n_total)  # END past the file means "to the end"
    if n_total == 0:
        raise VigilInputError("has no data rows", file=source)
    if start < 0 or end < 0:
        raise VigilInputError(f"rows {start}:{end} must not be negative", file=source, key="rows")
    if start >= n_total:
        raise VigilInputError(f"rows start {start} is past the last data row (file has {n_total} data rows)",
                              file=source, key="rows")
    if start >= end:
        raise VigilInputError(f"rows {start}:{end} selects no data rows", file=source, key="rows")
    return start, end


def _timestamp_name(names: list[str], explicit: str | None, first_row: Sequence[str] | None, source: str) -> str | None:
    if explicit is not None:
        if explicit not in names:
            raise VigilInputError(f"timestamp column not found; available: {', '.join(names)}",
                                  file=source, column=explicit)
        return explicit
    for name in names:
        if name.strip().lower() in TIMESTAMP_NAMES:
            return name
    if first_row is not None:  # text files: a column of ISO datetimes is a timestamp column
        for name, cell in zip(names, first_row, strict=False):
            if parse_datetime_seconds(cell) is not None:
                return name
    return None


def _feature_indices(names: list[str], columns: list[str] | None, ts_name: str | None, source: str) -> list[int]:
    if columns is None:
        chosen = [name for name in names if name != ts_name]
        if not chosen:
            raise VigilInputError("has no feature columns besides the timestamp column", file=source)
    else:
        chosen = list(columns)
    indices = []
    for name in chosen:
        if name == ts_name:
            raise VigilInputError("is the timestamp column, not a feature; leave it out of the columns",
                                  file=source, column=name)
        if name not in names:
            raise VigilInputError(f"column not found; available: {', '.join(names)}", file=source, column=name)
        if names.count(name) > 1:
            raise VigilInputError("column name appears more than once in the header", file=source, column=name)
        indices.append(names.index(name))
    return indices


def _infer_rate(timestamps: np.ndarray | None) -> float | None:
    """1/period when the stamps are regular; gaps in up to 10% of the steps are tolerated."""
    if timestamps is None or timestamps.size < 3:
        return None
    steps = np.diff(timestamps)
    median = float(np.median(steps))
    if not median > 0:
        return None
    # Rounded stamps (e.g. 360 Hz written in ms) jitter around the period, so
    # average the near-median steps rather than take the median itself.
    regular = steps[(steps > 0.5 * median) & (steps < 1.5 * median)]
    if regular.size < 0.9 * steps.size:
        return None
    return float(f"{1.0 / float(np.mean(regular)):.6g}")


def _where(row: int, line: int | None = None) -> str:
    return f"data row {row} (0-based, header not counted" + (f"; file line {line})" if line else ")")


# --------------------------------------------------------------------------- CSV / TXT


def _read_text(path: Path, delimiter: str | None, columns: list[str] | None,
               rows: tuple[int | None, int | None] | None, timestamp_column: str | None,
               allow_nonfinite: bool = False) -> Table:
    source = str(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise VigilInputError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=source) from None
    except OSError as exc:
        raise VigilInputError(f"cannot be read: {exc.strerror}", file=source) from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise VigilInputError("is empty (no data rows)", file=source)
    first = _split_lines(lines[:1], delimiter)[0]
    has_header = any(_cell_kind(cell) == "text" for cell in first)
    names = [cell.strip() for cell in first] if has_header else [str(i) for i in range(len(first))]
    data_lines = lines[1:] if has_header else lines
    start, end = _resolve_rows(rows, len(data_lines), source)
    first_line = start + (2 if has_header else 1)  # 1-based file line of data row `start`
    cells = _split_lines(data_lines[start:end], delimiter)
    for i, row_cells in enumerate(cells):
        if len(row_cells) != len(names):
            what = "is empty" if not any(c.strip() for c in row_cells) else f"has {len(row_cells)} fields"
            raise VigilInputError(f"{_where(start + i, first_line + i)} {what}; expected {len(names)} "
                                  f"({', '.join(names)})", file=source, row=start + i)
    ts_name = _timestamp_name(names, timestamp_column, cells[0], source)
    indices = _feature_indices(names, columns, ts_name, source)
    values = np.empty((len(cells), len(indices)), dtype=np.float64)
    for j, index in enumerate(indices):
        values[:, j] = _numeric_column([r[index] for r in cells], source, names[index], start, first_line,
                                       allow_nonfinite)
    timestamps = None
    if ts_name is not None:
        ts_cells = [r[names.index(ts_name)] for r in cells]
        timestamps = _timestamp_column(ts_cells, source, ts_name, start, first_line)
    return Table(values, [names[i] for i in indices], timestamps, ts_name, _infer_rate(timestamps), source, start)


def _split_lines(lines: list[str], delimiter: str | None) -> list[list[str]]:
    if delimiter is None:
        return [line.split() for line in lines]
    return [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]


def _cell_kind(cell: str) -> str:
    try:
        float(cell)
        return "number"
    except ValueError:
        return "datetime" if parse_datetime_seconds(cell) is not None else "text"


def _numeric_column(cells: list[str], source: str, column: str, row0: int, line0: int,
                    allow_nonfinite: bool = False) -> np.ndarray:
    try:
        out = np.array(cells, dtype=np.float64)
    except ValueError:  # slow path, only to point at the bad cell
        out = np.array([_float_cell(cell, source, column, row0 + i, line0 + i) for i, cell in enumerate(cells)])
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size and not allow_nonfinite:
        i = int(bad[0])
        raise VigilInputError(f"{_where(row0 + i, line0 + i)} has non-finite value {cells[i]!r} (NaN/inf)",
                              file=source, row=row0 + i, column=column)
    return out


def _float_cell(cell: str, source: str, column: str, row: int, line: int) -> float:
    try:
        return float(cell)
    except ValueError:
        detail = "is empty" if not cell else f"has non-numeric value {cell!r}"
        raise VigilInputError(f"{_where(row, line)} {detail}", file=source, row=row, column=column) from None


def _timestamp_column(cells: list[str], source: str, column: str, row0: int, line0: int) -> np.ndarray:
    if _cell_kind(cells[0]) == "number":
        return _numeric_column(cells, source, column, row0, line0)
    if all(_PLAIN_DATETIME.fullmatch(cell) for cell in cells):
        # Fast path for naive ISO stamps; numpy reads them as UTC, like we do.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                stamps = np.array(cells, dtype="datetime64[us]")
                if not np.isnat(stamps).any():
                    return stamps.astype(np.int64) / 1e6
            except (ValueError, Warning):
                pass
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        seconds = parse_datetime_seconds(cell)
        if seconds is None:
            raise VigilInputError(f"{_where(row0 + i, line0 + i)} has {cell!r}, not an ISO datetime "
                                  "(e.g. 2013-12-02 21:15:00)", file=source, row=row0 + i, column=column)
        out[i] = seconds
    return out


# --------------------------------------------------------------------------- NPY / WAV


def _table_from_array(source: str, names: list[str], data: np.ndarray, rate: float | None,
                      columns: list[str] | None, rows: tuple[int | None, int | None] | None,
                      timestamp_column: str | None,
                      allow_nonfinite: bool = False) -> Table:
    start, end = _resolve_rows(rows, data.shape[0], source)
    ts_name = _timestamp_name(names, timestamp_column, None, source) if timestamp_column else None
    indices = _feature_indices(names, columns, ts_name, source)
    values = np.asarray(data[start:end][:, indices], dtype=np.float64)
    if not allow_nonfinite:
        _check_finite(values, [names[i] for i in indices], source, start)
    timestamps = None
    if ts_name is not None:
        timestamps = np.asarray(data[start:end, names.index(ts_name)], dtype=np.float64)
        _check_finite(timestamps[:, None], [ts_name], source, start)
        rate = _infer_rate(timestamps)
    return Table(values, [names[i] for i in indices], timestamps, ts_name, rate, source, start)


def _check_finite(values: np.ndarray, names: list[str], source: str, row0: int) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise VigilInputError(f"{_where(row0 + row)} has non-finite value {values[row, col]!r} (NaN/inf)",
                              file=source, row=row0 + row, column=names[col])


def _read_npy(path: Path) -> tuple[list[str], np.ndarray, float | None]:
    source = str(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise VigilInputError(f"is not a readable numeric .npy array ({exc})", file=source) from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        kind = getattr(data, "dtype", type(data).__name__)
        raise VigilInputError(f"holds {kind} data; only numeric arrays are supported", file=source)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise VigilInputError(f"has shape {data.shape}; expected [time] or [time, features]", file=source)
    return [str(i) for i in range(data.shape[1])], data, None


def _read_wav(path: Path) -> tuple[list[str], np.ndarray, float | None]:
    # One RIFF parser for every encoding: stdlib `wave` refuses IEEE float
    # (format 3) and, before Python 3.12, WAVE_FORMAT_EXTENSIBLE PCM.
    source = str(path)
    channels, width, rate, is_float, frames = _parse_riff(path)
    if channels < 1 or rate <= 0:
        raise VigilInputError(f"WAV header is invalid ({channels} channels, {rate} Hz)", file=source)
    samples = _decode_samples(frames, width, is_float, source)
    if samples.size % channels:
        raise VigilInputError("WAV data ends in a partial frame (truncated file?)", file=source)
    return [f"ch{i}" for i in range(channels)], samples.reshape(-1, channels), float(rate)


def _parse_riff(path: Path) -> tuple[int, int, int, bool, bytes]:
    source = str(path)
    blob = path.read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise VigilInputError("is not a RIFF/WAVE file", file=source)
    fmt: tuple[int, int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id, size = blob[pos:pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8:pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise VigilInputError("WAV fmt chunk is too short", file=source)
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits, block_align // max(channels, 1))
        elif chunk_id == b"data":
            if fmt is None:
                raise VigilInputError("WAV data chunk comes before the fmt chunk", file=source)
            if len(body) < size:
                raise VigilInputError(f"WAV data chunk is truncated ({len(body)} of {size} bytes)", file=source)
            tag, channels, rate, bits, width = fmt
            if tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_FLOAT):
                raise VigilInputError(f"unsupported WAV encoding (format tag {tag}, {bits} bits); "
                                      "use PCM 8/16/24/32-bit or IEEE float 32/64-bit", file=source)
            return channels, width, rate, tag == _WAVE_FORMAT_FLOAT, body
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    raise VigilInputError("WAV file has no fmt/data chunk", file=source)


def _decode_samples(frames: bytes, width: int, is_float: bool, source: str) -> np.ndarray:
    if width < 1 or len(frames) % width:
        raise VigilInputError("WAV data ends in a partial sample (truncated file?)", file=source)
    if is_float:
        if width not in (4, 8):
            raise VigilInputError(f"unsupported float WAV sample width {8 * width} bits", file=source)
        return np.frombuffer(frames, dtype=f"<f{width}").astype(np.float64)
    if width == 1:  # 8-bit PCM is unsigned, centred on 128
        return (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width in (2, 4):
        return np.frombuffer(frames, dtype=f"<i{width}").astype(np.float64) / float(2 ** (8 * width - 1))
    if width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)  # sign-extend 24 -> 32 bits
        return ints.astype(np.float64) / float(1 << 23)
    raise VigilInputError(f"unsupported WAV sample width {8 * width} bits", file=source)
