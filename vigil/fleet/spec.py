"""FLEET.toml: the assets of a fleet and the training/conversion options they share.

::

    [defaults]                 # optional; any key an asset may set (below), for every asset
    epochs = 20
    quantize = "auto"

    [[asset]]
    name = "pump-01"           # letters, digits, '.', '-', '_': its folder under the output
    data = "pump01.csv"        # relative to FLEET.toml
    columns = ["x", "y", "z"]  # optional: default every non-timestamp column
    rows = "0:20000"           # optional: the normal rows to train on
    labels = "pump01.json"     # optional: then the asset is evaluated (labels never train)
    eval_rows = "20000:"       # optional: rows to evaluate on (default all)
    window = 64                # optional overrides of the defaults

Every mistake in this file is one line naming the file and the key (``asset[2].window``), before
anything trains; a data file that is missing or bad fails its asset only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import read_toml
from edge_agent.errors import VigilInputError
from edge_agent.readers import parse_rows

# Options passed to trainer.fit.TrainConfig (name -> TOML type) and to converter.convert.ConvertConfig.
TRAIN_KEYS: dict[str, type | tuple[type, ...]] = {
    "window": int, "hop": int, "model": str, "units": list, "loss": str, "epochs": int, "batch_size": int,
    "patience": int, "learning_rate": (float, int), "validation_fraction": (float, int), "scaler": str,
    "threshold": str, "false_alarms": str, "smoothing": (float, int), "score": str, "seed": int, "clean": str,
    "features": str, "windows_per_epoch": int, "timestamp_column": str,
}
CONVERT_KEYS: dict[str, type | tuple[type, ...]] = {"quantize": str, "prefer": str}
ASSET_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "data": str, "columns": list, "rows": str, "labels": str, "eval_rows": str, "channel": str,
    "series": str,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Asset:
    """One machine: its data and the options its model is trained and converted with."""

    name: str
    data: Path
    columns: list[str] | None = None
    rows: str | None = None
    labels: Path | None = None
    eval_rows: str | None = None
    channel: str | None = None
    series: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    convert: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Changes when anything that shapes this asset's result changes (a finished one is then redone)."""
        doc = {"data": str(self.data), "columns": self.columns, "rows": self.rows, "labels": str(self.labels),
               "eval_rows": self.eval_rows, "channel": self.channel, "series": self.series,
               "train": self.train, "convert": self.convert, "data_stat": _stat(self.data),
               "labels_stat": _stat(self.labels)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _stat(path: Path | None) -> list[int] | None:
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def load_fleet(path: Path) -> list[Asset]:
    """The assets of ``path``, checked (types, names unique, files present); one line per mistake."""
    doc = read_toml(path)
    unknown = sorted(set(doc) - {"defaults", "asset"})
    if unknown:
        raise VigilInputError(f"unknown table {unknown[0]!r} (expected [defaults] and [[asset]])", file=str(path),
                              key=unknown[0])
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise VigilInputError("must be a table", file=str(path), key="defaults")
    _check_keys(defaults, {**TRAIN_KEYS, **CONVERT_KEYS}, path, "defaults")
    entries = doc.get("asset", [])
    if not isinstance(entries, list) or not entries:
        raise VigilInputError("no assets: add [[asset]] tables with name and data", file=str(path), key="asset")
    assets = [_asset(entry, defaults, path, f"asset[{i}]") for i, entry in enumerate(entries)]
    names = [a.name for a in assets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise VigilInputError(f"asset name {twice[0]!r} used twice", file=str(path), key="asset.name")
    return assets


def _check_keys(table: dict[str, Any], allowed: dict[str, type | tuple[type, ...]], path: Path, where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise VigilInputError(f"unknown key (allowed: {', '.join(sorted(allowed))})", file=str(path),
                                  key=f"{where}.{key}")
        expected = allowed[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            kind = expected.__name__ if isinstance(expected, type) else expected[0].__name__
            raise VigilInputError(f"must be {'a ' if kind != 'int' else 'an '}{kind}, got {value!r}",
                                  file=str(path), key=f"{where}.{key}")


def _asset(entry: Any, defaults: dict[str, Any], path: Path, where: str) -> Asset:
    if not isinstance(entry, dict):
        raise VigilInputError("must be a table", file=str(path), key=where)
    _check_keys(entry, {**ASSET_KEYS, **TRAIN_KEYS, **CONVERT_KEYS}, path, where)
    for required in ("name", "data"):
        if required not in entry:
            raise VigilInputError("is required", file=str(path), key=f"{where}.{required}")
    name = entry["name"]
    if not _NAME.fullmatch(name):
        raise VigilInputError(f"{name!r}: use letters, digits, '.', '-', '_' (it names a folder)", file=str(path),
                              key=f"{where}.name")
    merged = {**defaults, **entry}
    for key in ("rows", "eval_rows"):
        try:
            parse_rows(merged.get(key))
        except VigilInputError as exc:
            raise VigilInputError(exc.detail, file=str(path), key=f"{where}.{key}") from None
    if "units" in merged and not all(isinstance(u, int) and u > 0 for u in merged["units"]):
        raise VigilInputError("must be a list of positive integers", file=str(path), key=f"{where}.units")
    if "columns" in merged and not all(isinstance(c, (str, int)) for c in merged["columns"]):
        raise VigilInputError("must be a list of column names", file=str(path), key=f"{where}.columns")
    base = path.parent
    data = (base / merged["data"]).resolve()
    labels = (base / merged["labels"]).resolve() if "labels" in merged else None
    # A missing data or labels file fails that asset only (reported in the summary), not the fleet.
    return Asset(
        name=name, data=data, columns=[str(c) for c in merged["columns"]] if "columns" in merged else None,
        rows=merged.get("rows"), labels=labels, eval_rows=merged.get("eval_rows"), channel=merged.get("channel"),
        series=merged.get("series"),
        train={k: v for k, v in merged.items() if k in TRAIN_KEYS},
        convert={k: v for k, v in merged.items() if k in CONVERT_KEYS},
    )
