"""Which converted mode goes into the bundle: a rule that gives the same answer every time.

Among the modes that passed parity, ``--prefer latency`` (the default) keeps
those whose latency is within :data:`LATENCY_MARGIN` of float32's and, of
those, the smallest file; equal sizes go to the earlier mode in
:data:`~converter.quantize.MODES`. ``--prefer size`` drops the latency
condition. The latency figure compared is the median, over the interleaved
timing rounds, of the per-round ratio to float32 (each round times every mode
back to back, so load on the machine hits both sides of a ratio alike).

Why this is deterministic across workstations: the modes fall in two groups
that are far apart. float32, float16, dynamic (on small models) and
int8-weights all run float32 kernels (measured 0.73-1.06x of float32 on a quiet
host, up to 1.20x for a 0.17 ms model timed beside a second busy process);
full int8 runs the reference integer LSTM kernel (1.98-23x measured). A margin
of 1.5 sits between the groups, so timing noise does not move a mode across it
(1.15 did: the same run converted twice under load once kept int8-weights and
once float16), and the choice inside a group is by file size, which does not
depend on the machine. When float32 itself did not pass, the fastest passing
mode is the reference.
"""

from __future__ import annotations

import numpy as np

from converter.quantize import FLOAT32, MODES
from converter.table import DROPPED, KEPT, ModeReport

PREFERENCES = ("latency", "size")
LATENCY_MARGIN = 1.5  # a mode counts as "as fast as float32" up to 1.5x its latency: between the two groups


def latency_ratio(report: ModeReport, reference: ModeReport) -> float:
    """Median over rounds of ``report``'s round median / ``reference``'s (plain medians as a fallback)."""
    assert report.latency is not None and reference.latency is not None
    if report is reference:
        return 1.0
    mine, theirs = report.latency.round_medians_ms, reference.latency.round_medians_ms
    if mine and len(mine) == len(theirs) and report.latency.interleaved and min(theirs) > 0:
        return float(np.median(np.asarray(mine) / np.asarray(theirs)))
    base = reference.latency.median_ms
    return report.latency.median_ms / base if base > 0 else float("inf")


def _order(report: ModeReport) -> tuple[int, int]:
    rank = MODES.index(report.mode) if report.mode in MODES else len(MODES)
    return (report.size_bytes or 0, rank)


def _mark_failures(reports: list[ModeReport]) -> None:
    for r in reports:
        r.status = DROPPED
        if r.problems:
            r.reason = "; ".join(r.problems)
        elif r.parity is None:
            r.reason = "not checked"
        elif not r.parity.passed:
            r.reason = "parity failed: " + "; ".join(r.parity.reasons)
        elif r.latency is None:
            r.reason = "parity passed but latency not measured"


def choose(reports: list[ModeReport], prefer: str = "latency") -> ModeReport | None:
    """Pick the mode to ship and record for every mode why it was kept or dropped."""
    _mark_failures(reports)
    passing = [r for r in reports if r.passed and r.latency is not None]
    if not passing:
        return None
    reference = next((r for r in passing if r.mode == FLOAT32), None)
    if reference is None:
        reference = min(passing, key=lambda r: (r.latency.median_ms, _order(r)))  # type: ignore[union-attr]
    ratios = {r.mode: latency_ratio(r, reference) for r in passing}
    if prefer == "size":
        eligible = passing
    else:
        eligible = [r for r in passing if ratios[r.mode] <= LATENCY_MARGIN]
    chosen = min(eligible, key=_order)
    chosen.status = KEPT
    chosen.reason = _why_kept(chosen, reference, ratios, prefer)
    for r in passing:
        if r is not chosen:
            r.reason = _why_not(r, chosen, reference, ratios, prefer)
    return chosen


def _why_kept(chosen: ModeReport, reference: ModeReport, ratios: dict[str, float], prefer: str) -> str:
    size = f"{chosen.size_bytes:,} bytes"
    if prefer == "size":
        return f"smallest passing file ({size}; --prefer size)"
    if chosen is reference:
        return f"smallest passing file within {LATENCY_MARGIN:g}x of its own latency ({size}, {_ms(chosen)})"
    return (f"smallest passing file ({size}) with latency within {LATENCY_MARGIN:g}x of {reference.mode} "
            f"({ratios[chosen.mode]:.2f}x: {_ms(chosen)} vs {_ms(reference)})")


def _why_not(r: ModeReport, chosen: ModeReport, reference: ModeReport, ratios: dict[str, float], prefer: str) -> str:
    size = f"{r.size_bytes:,} vs {chosen.size_bytes:,} bytes"
    if prefer != "size" and ratios[r.mode] > LATENCY_MARGIN:
        return (f"parity passed but {ratios[r.mode]:.2f}x the latency of {reference.mode} "
                f"(> {LATENCY_MARGIN:g}x; {_ms(r)} vs {_ms(reference)})")
    if r.size_bytes == chosen.size_bytes:
        return f"parity passed, same size as {chosen.mode} ({size}); the earlier mode in the fixed order wins"
    return f"parity passed but larger than {chosen.mode} ({size})"


def forced_choice(reports: list[ModeReport]) -> ModeReport | None:
    """--force: the usable mode with the best worst-set Spearman (ops must still be builtin)."""
    usable = [r for r in reports if r.usable and r.parity is not None]
    if not usable:
        return None
    chosen = max(usable, key=lambda r: (np.nan_to_num(r.parity.worst()["spearman"], nan=-1.0),  # type: ignore[union-attr]
                                        -_order(r)[1]))
    chosen.status = KEPT
    chosen.reason = f"FORCED despite failing parity ({chosen.reason})"
    return chosen


def _ms(r: ModeReport) -> str:
    return "-" if r.latency is None else f"{r.latency.median_ms:.3f} ms"
