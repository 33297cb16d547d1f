"""Bad samples and gaps between the source and the window buffer.

:class:`SampleQuality` looks at every :class:`~edge_agent.sources.base.SampleBlock`
once (vectorised, no per-sample Python) and returns the rows the agent may push
into its :class:`~edge_agent.core.windowing.WindowBuffer`, split into *runs*:

.. code-block:: python

    for run in quality.clean(block, first_row):
        if run.reset_before:
            buffer.reset()
        for i, window in buffer.push_many(run.values):
            score(window, row=run.rows[i], time=run.timestamps[i])

A sample is **bad** when any value is NaN/inf, outside ``valid_range`` (inclusive
``(lo, hi)``, same for every feature; None = no range check), or the source
marked it invalid (``block.valid``). Policies:

- ``"skip"``: bad samples are dropped. A lone bad sample (at most
  ``SKIP_WITHOUT_RESET`` in a row) is skipped and the window goes on, its
  neighbours joined: one garbled line in 40 must not leave most windows
  unscored. A longer run of bad samples resets the buffer before the next good
  one, so no scored window straddles a real hole. Skipped samples are counted
  (``skipped_in_window``).
- ``"hold"``: each bad value is replaced by the last good value of its feature
  (a NaN in one axis keeps the other axes); a sample with nothing to hold yet
  (start of the stream) is dropped.

A **gap** (``block.gap_before > 0``, or, when the rate is known, consecutive
timestamps more than 1.5 periods apart) resets the buffer under both policies:
holding one value across many lost samples would invent data.

Counters (:meth:`SampleQuality.counters`, for the health message):
``bad_samples`` (samples that failed a check), ``held_samples`` (repaired by
hold), ``dropped_samples`` (bad samples not pushed), ``gaps``, ``window_resets``.
A source's own ``stats.bad_samples`` counts lines it could not parse; those
arrive here as ``valid=False`` rows and are counted again in ``bad_samples``:
report this counter as the health ``bad_samples``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_agent.sources.base import SampleBlock

#: The agent TOML's ``[quality]`` keys are in :data:`edge_agent.config_schema.SCHEMA`
#: (typed: :class:`edge_agent.config_sections.QualitySection`).
POLICIES = ("skip", "hold")
#: Bad samples in a row that are dropped without restarting the window (one is a 1/window distortion).
SKIP_WITHOUT_RESET = 1


@dataclass
class CleanRun:
    """Consecutive good rows; reset the window buffer first when ``reset_before``."""

    values: np.ndarray      # float32 [k, features]
    timestamps: np.ndarray  # float64 [k]
    reset_before: bool
    rows: np.ndarray        # int64 [k]: each kept sample's row (stream position), dropped rows skipped


class SampleQuality:
    """Checks blocks and applies the bad-sample policy; see the module docstring."""

    def __init__(self, n_features: int, valid_range: tuple[float, float] | None = None,
                 policy: str = "skip", rate_hz: float | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if valid_range is not None and not float(valid_range[0]) < float(valid_range[1]):
            raise ValueError(f"valid_range needs lo < hi, got {valid_range}")
        self.n_features = int(n_features)
        self.valid_range = None if valid_range is None else (float(valid_range[0]), float(valid_range[1]))
        self.policy = policy
        self.max_step = 1.5 / float(rate_hz) if rate_hz else None
        self._last_good = np.full(self.n_features, np.nan, dtype=np.float32)
        self._last_time: float | None = None
        self._bad_run = 0  # bad samples in a row at the end of the previous block
        self.skipped_in_window = 0
        self.bad_samples = 0
        self.held_samples = 0
        self.dropped_samples = 0
        self.gaps = 0
        self.window_resets = 0

    def counters(self) -> dict[str, int]:
        return {"bad_samples": self.bad_samples, "held_samples": self.held_samples,
                "dropped_samples": self.dropped_samples, "gaps": self.gaps,
                "window_resets": self.window_resets, "skipped_in_window": self.skipped_in_window}

    def clean(self, block: SampleBlock, first_row: int = 0) -> list[CleanRun]:
        """Runs of rows to push; usually exactly one, the block itself.

        ``first_row`` is the stream row of the block's first sample; each run
        carries the rows of the samples it kept, so nothing downstream has to
        map timestamps back to rows.
        """
        k = len(block)
        if k == 0:
            return []
        values = np.asarray(block.values, dtype=np.float32).reshape(k, self.n_features)
        stamps = np.asarray(block.timestamps, dtype=np.float64)
        if self._all_good(block, values, stamps):  # the usual read: a handful of numpy calls, same result
            self._last_time = float(stamps[-1])
            if self.policy == "hold":
                self._last_good = values[-1].copy()
            return [CleanRun(values, stamps, False, np.arange(first_row, first_row + k, dtype=np.int64))]
        gap_at = self._gaps(block, stamps)
        bad = self._bad_values(values, block.valid)
        bad_rows = np.asarray(bad.any(axis=1), dtype=bool)
        self.bad_samples += int(bad_rows.sum())
        if self.policy == "hold":
            if bad_rows.any():
                values, bad_rows = self._hold(values, bad)
            else:
                self._last_good = values[-1].copy()
        # A reset is due before row i when a gap precedes it or a long run of dropped rows does.
        reset = gap_at | self._resets_after_bad_runs(bad_rows)
        self.dropped_samples += int(bad_rows.sum())
        rows = np.arange(first_row, first_row + k, dtype=np.int64)
        runs = self._runs(values, stamps, rows, ~bad_rows, reset)
        self.window_resets += sum(run.reset_before for run in runs)
        return runs

    # ------------------------------------------------------------------ internals

    def _all_good(self, block: SampleBlock, values: np.ndarray, stamps: np.ndarray) -> bool:
        """True when the full checks below would find nothing: no gap, no bad sample, no bad run pending.

        Decided from a few reductions of the whole block instead of per-sample masks; any doubt
        (a non-finite sum, a NaN step) answers False and the full checks decide.
        """
        if block.gap_before > 0 or self._bad_run:
            return False
        if block.valid is not None and not bool(np.all(block.valid)):
            return False
        total = float(values.sum())  # NaN or inf anywhere makes it non-finite (so may huge values: fine)
        if not math.isfinite(total):
            return False
        if self.valid_range is not None:
            lo, hi = self.valid_range
            if not (float(values.min()) >= lo and float(values.max()) <= hi):
                return False
        if self.max_step is not None:
            if self._last_time is not None and not float(stamps[0]) - self._last_time <= self.max_step:
                return False
            # the same differences as _gaps' ``stamps - prev``; a NaN step fails the test (full check)
            if len(stamps) > 1 and not float((stamps[1:] - stamps[:-1]).max()) <= self.max_step:
                return False
        return True

    def _resets_after_bad_runs(self, bad_rows: np.ndarray) -> np.ndarray:
        """``reset[i]``: row i follows a run of dropped rows longer than SKIP_WITHOUT_RESET (across blocks)."""
        k = len(bad_rows)
        reset = np.zeros(k, dtype=bool)
        carry = self._bad_run  # bad rows in a row right before this block
        if carry and not bad_rows[0]:
            self._close_bad_run(carry, reset, 0)
        if not bad_rows.any():
            self._bad_run = 0
            return reset
        edges = np.diff(np.concatenate(([0], bad_rows.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # ends exclusive
        for start, end in zip(starts, ends, strict=True):
            length = int(end - start) + (carry if start == 0 else 0)
            if end == k:  # the run goes on into the next block: judged there
                self._bad_run = length
                return reset
            self._close_bad_run(length, reset, int(end))
        self._bad_run = 0
        return reset

    def _close_bad_run(self, length: int, reset: np.ndarray, at: int) -> None:
        # hold drops only what it had nothing to fill with (the stream's start): always restart there.
        if length > SKIP_WITHOUT_RESET or self.policy == "hold":
            reset[at] = True
        else:
            self.skipped_in_window += length

    def _gaps(self, block: SampleBlock, stamps: np.ndarray) -> np.ndarray:
        gap_at = np.zeros(len(stamps), dtype=bool)
        if block.gap_before > 0:
            gap_at[0] = True
        if self.max_step is not None:
            prev = np.concatenate([[stamps[0] if self._last_time is None else self._last_time], stamps[:-1]])
            gap_at |= (stamps - prev) > self.max_step
        self._last_time = float(stamps[-1])
        self.gaps += int(gap_at.sum())
        return gap_at

    def _bad_values(self, values: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        bad: np.ndarray = ~np.isfinite(values)
        if self.valid_range is not None:
            lo, hi = self.valid_range
            with np.errstate(invalid="ignore"):
                bad |= (values < lo) | (values > hi)
        if valid is not None:
            bad |= ~np.asarray(valid, dtype=bool)[:, None]
        return bad

    def _hold(self, values: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward-fill each feature from its last good value (also across blocks)."""
        k = values.shape[0]
        source_row = np.where(~bad, np.arange(k)[:, None], -1)
        source_row = np.maximum.accumulate(source_row, axis=0)
        filled = np.take_along_axis(values, np.maximum(source_row, 0), axis=0)
        filled = np.where(source_row >= 0, filled, self._last_good[None, :]).astype(np.float32)
        unrepaired = np.isnan(filled).any(axis=1)  # nothing good seen yet for some feature
        self.held_samples += int((bad.any(axis=1) & ~unrepaired).sum())
        self._last_good = filled[-1].copy()  # forward-filled: the newest good value per feature
        return filled, unrepaired

    @staticmethod
    def _runs(values: np.ndarray, stamps: np.ndarray, rows: np.ndarray, keep: np.ndarray,
              reset: np.ndarray) -> list[CleanRun]:
        if keep.all() and not reset[1:].any():  # the common case: the block as it is
            return [CleanRun(values, stamps, bool(reset[0]), rows)]
        kept = np.flatnonzero(keep)
        if kept.size == 0:
            return []
        # A kept row starts a new run when a reset happened since the previous kept
        # row (dropped rows pass their reset on to the next kept row).
        resets_so_far = np.cumsum(reset)
        before = np.concatenate([[0], resets_so_far[kept[:-1]]])
        flags = (resets_so_far[kept] - before) > 0
        starts = np.union1d([0], np.flatnonzero(flags))
        ends = np.append(starts[1:], kept.size)
        return [CleanRun(values[kept[a:b]], stamps[kept[a:b]], bool(flags[a]), rows[kept[a:b]])
                for a, b in zip(starts, ends, strict=True)]
