"""The source contract (:class:`edge_agent.sources.base.Source`), one function per promise.

- ``open`` makes ``features`` (distinct names) and ``sampling_rate_hz`` (None or > 0) known.
- ``read(timeout)`` returns a well-formed :class:`SampleBlock` (float32 ``[k, features]``,
  float64 non-decreasing timestamps, ``valid`` None or bool ``[k]``, ``gap_before`` >= 0),
  an empty block when nothing is ready (without blocking much past ``timeout``), or None
  once a finite stream has ended (and None ever after).
- Bad samples the source can tell (an unparsable line) arrive as ``valid=False`` rows and are
  counted in ``stats.bad_samples``; ``stats.samples + stats.bad_samples`` is every row
  delivered. Values it cannot judge (NaN in a file) arrive as they are, for the quality step.
- Device errors are counted (``read_errors``, ``gaps``) and never raised from ``read``.
- ``close`` may be called twice, and on a source that was never opened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.sources.base import SampleBlock, Source, SourceStats
from tests.contracts.source_rigs import SourceRig

HANG_LIMIT_S = 10.0  # "did not hang", not a speed target


def read_all(rig: SourceRig, max_reads: int = 5000) -> list[SampleBlock]:
    """Read until a finite stream ends or every fed row arrived (endless sources)."""
    blocks: list[SampleBlock] = []
    expected = rig.good_rows + rig.bad_rows + rig.nonfinite_rows
    for _ in range(max_reads):
        block = rig.source.read(0.05)
        if block is None:
            assert rig.finite, "an endless source returned None"
            return blocks
        assert isinstance(block, SampleBlock)
        blocks.append(block)
        if not rig.finite and sum(len(b) for b in blocks) >= expected:
            return blocks
        rig.step()
    raise AssertionError(f"{rig.name}: no end after {max_reads} reads")


def _opened(rig: SourceRig) -> Source:
    rig.source.open()
    rig.feed()
    return rig.source


def check_features_known_after_open(rig: SourceRig) -> None:
    src = _opened(rig)
    assert isinstance(src, Source)
    assert len(src.features) == rig.n_features and len(set(src.features)) == len(src.features)
    assert all(isinstance(name, str) and name for name in src.features)
    assert src.sampling_rate_hz is None or src.sampling_rate_hz > 0
    assert isinstance(src.stats, SourceStats)


def check_blocks_are_well_formed(rig: SourceRig) -> None:
    _opened(rig)
    blocks = read_all(rig)
    last = -np.inf
    for block in blocks:
        k = len(block)
        assert block.values.dtype == np.float32 and block.values.shape == (k, rig.n_features)
        assert block.timestamps.dtype == np.float64 and block.timestamps.shape == (k,)
        assert block.valid is None or (block.valid.dtype == bool and block.valid.shape == (k,))
        assert isinstance(block.gap_before, int) and block.gap_before >= 0
        if k:
            assert np.all(np.diff(block.timestamps) >= 0) and block.timestamps[0] >= last
            last = float(block.timestamps[-1])
    assert sum(len(b) for b in blocks) >= rig.good_rows
    if rig.finite:
        assert rig.source.read(0.01) is None and rig.source.read(0.01) is None  # ended stays ended


def check_bad_samples_are_flagged_and_counted(rig: SourceRig) -> None:
    _opened(rig)
    blocks = read_all(rig)
    delivered = sum(len(b) for b in blocks)
    flagged = sum(int((~b.valid).sum()) for b in blocks if b.valid is not None)
    nonfinite = sum(int((~np.isfinite(b.values)).any(axis=1).sum()) for b in blocks)
    stats = rig.source.stats
    assert flagged == rig.bad_rows == stats.bad_samples, (flagged, rig.bad_rows, stats.as_dict())
    assert stats.samples + stats.bad_samples == delivered, (stats.as_dict(), delivered)
    # Nothing bad is turned into a plausible number: it is flagged or stays non-finite.
    assert nonfinite >= rig.nonfinite_rows


def check_read_returns_within_its_timeout(rig: SourceRig) -> None:
    src = rig.source
    src.open()  # nothing fed: nothing is ready
    result: list[Any] = []
    before = rig.now()
    reader = threading.Thread(target=lambda: result.append(src.read(0.05)), daemon=True)
    reader.start()
    reader.join(HANG_LIMIT_S)
    assert not reader.is_alive(), f"{rig.name}: read(0.05) blocked"
    block = result[0]
    assert isinstance(block, SampleBlock) and block.values.shape[1:] == (rig.n_features,)
    assert len(block) == 0 or not rig.idle_empty, "nothing was fed, yet rows arrived"
    assert rig.now() - before <= 0.05 + rig.clock_slack, "read overran its timeout on the source's clock"


def check_device_errors_are_counted_not_raised(rig: SourceRig) -> None:
    assert rig.fail is not None
    _opened(rig)
    read_all(rig)
    rig.fail()
    for _ in range(400):
        block = rig.source.read(0.05)  # must not raise
        assert block is None or isinstance(block, SampleBlock)
        rig.step()
        if rig.source.stats.read_errors and rig.recovered():
            break
    stats = rig.source.stats
    assert stats.read_errors >= 1, stats.as_dict()
    assert stats.gaps >= 1 or stats.reconnects >= 1, stats.as_dict()
    assert rig.recovered(), f"{rig.name}: no samples after the device came back"


def check_close_twice_and_before_open(rig: SourceRig) -> None:
    rig.source.close()  # never opened
    _opened(rig)
    rig.source.read(0.01)
    rig.source.close()
    rig.source.close()
    assert all(isinstance(v, int) for v in rig.source.stats.as_dict().values())


#: check -> the rig capability it needs (None = every rig).
SOURCE_CHECKS: dict[Callable[[SourceRig], None], str | None] = {
    check_features_known_after_open: None,
    check_blocks_are_well_formed: None,
    check_bad_samples_are_flagged_and_counted: None,
    check_read_returns_within_its_timeout: "idle",
    check_device_errors_are_counted_not_raised: "fail",
    check_close_twice_and_before_open: None,
}
