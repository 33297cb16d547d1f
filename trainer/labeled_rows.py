"""Labeled validation rows for the labeled threshold strategies (best-f1, pr-balance)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.errors import VigilInputError
from edge_agent.readers import Table, load_table
from trainer.threshold import ThresholdStrategy

Labeled = tuple[np.ndarray, list[tuple[int, int]], dict[str, Any]]  # raw rows, local ranges, run.json params


def labeled_rows(cfg: Any, strategy: ThresholdStrategy, min_rows: int) -> Labeled | None:
    """Raw rows of ``--label-rows`` and their label ranges as indices into those rows."""
    from trainer.labels import load_labels

    if not strategy.needs_labels:
        if cfg.labels is not None:
            cfg.echo(f"note: --labels is only used by --threshold best-f1/pr-balance; ignored for {strategy.text}")
        return None
    if cfg.labels is None:
        raise VigilInputError(f"--threshold {strategy.text} needs --labels FILE (and --label-rows S:E)",
                              key="threshold")
    rows = cfg.label_rows
    if rows is None:  # default: everything after the training rows
        train_end = cfg.train_rows[1] if cfg.train_rows else None
        if train_end is None:
            raise VigilInputError("--label-rows is required when --train-rows does not end before the "
                                  "end of the file", key="label-rows")
        rows = (train_end, None)
    table = load_table(cfg.data, cfg.columns, rows, cfg.timestamp_column, min_rows=min_rows)
    _check_no_overlap(cfg, table)
    ranges = _load_label_ranges(cfg, table, load_labels)
    local = [(lo - table.row_offset, hi - table.row_offset) for lo, hi in ranges]
    if not local:
        raise VigilInputError(f"no labeled anomaly inside rows {table.row_offset}:{table.row_offset + table.n_rows}; "
                              f"--threshold {strategy.text} needs at least one", file=str(cfg.labels))
    params = {"labels": str(cfg.labels), "label_rows": [table.row_offset, table.row_offset + table.n_rows],
              "from": "labeled validation rows"}
    return table.values, local, params


def _load_label_ranges(cfg: Any, table: Table, load_labels: Callable[..., Any]) -> list[tuple[int, int]]:
    kwargs = {"n_rows": table.n_rows, "timestamps": table.timestamps, "row_offset": table.row_offset,
                  "channel": cfg.channel}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ranges = load_labels(cfg.labels, series=cfg.series, **kwargs)
        except VigilInputError:
            if cfg.series is not None:
                raise
            # A label file with several series: the data path usually names its key.
            ranges = load_labels(cfg.labels, series=str(cfg.data), **kwargs)
    for warning in caught:
        cfg.echo(f"note: {warning.message}")
    return list(ranges)


def _check_no_overlap(cfg: Any, labeled: Table) -> None:
    start, end = cfg.train_rows if cfg.train_rows else (None, None)
    start = 0 if start is None else start
    end = float("inf") if end is None else end
    if labeled.row_offset < end and labeled.row_offset + labeled.n_rows > start:
        raise VigilInputError("--label-rows overlap --train-rows; the threshold must be chosen on rows the "
                              "model was not trained on", key="label-rows")
