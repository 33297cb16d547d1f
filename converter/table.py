"""The conversion table: one row per quantization mode, printed and written as JSON.

Each row holds what the converter learned about one mode: whether it
converted, its ops, file size, per-window latency through the edge runtime,
the parity figures, and why it was kept or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from converter.latency import Latency
from converter.ops import ModelInfo
from converter.parity import ParityResult

KEPT = "kept"
DROPPED = "dropped"


@dataclass
class ModeReport:
    mode: str
    model_bytes: bytes | None = field(default=None, repr=False)
    convert_seconds: float | None = None
    ops: list[str] = field(default_factory=list)
    io: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # conversion error or forbidden ops
    latency: Latency | None = None
    parity: ParityResult | None = None
    status: str = DROPPED
    reason: str = ""
    info: ModelInfo | None = field(default=None, repr=False)
    log_tail: list[str] = field(default_factory=list, repr=False)  # the worker's last log lines after a crash

    @property
    def size_bytes(self) -> int | None:
        return None if self.model_bytes is None else len(self.model_bytes)

    @property
    def usable(self) -> bool:
        """Converted, builtin ops only, loads in the edge runtime."""
        return self.model_bytes is not None and not self.problems

    @property
    def passed(self) -> bool:
        return self.usable and self.parity is not None and self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        worst = self.parity.worst() if self.parity is not None and self.parity.sets else None
        return {
            "mode": self.mode,
            "status": self.status,
            "reason": self.reason,
            "size_bytes": self.size_bytes,
            "convert_seconds": None if self.convert_seconds is None else round(self.convert_seconds, 3),
            "ops": self.ops,
            "problems": self.problems,
            "notes": self.notes,
            "latency_ms": None if self.latency is None else self.latency.to_dict(),
            "parity": None if self.parity is None else {**self.parity.to_dict(), "worst": worst},
            **({"crash_log": self.log_tail} if self.log_tail else {}),
        }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(reports: list[ModeReport]) -> str:
    """Fixed-width text table of every mode (worst parity set per mode)."""
    header = (
        f"{'mode':<13}{'size':>9}{'median ms':>11}{'p99 ms':>9}"
        f"{'spearman':>10}{'max|d|':>10}{'mean|d|':>10}{'flipped':>9}  {'parity':<7}{'result'}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        worst = r.parity.worst() if r.parity is not None and r.parity.sets else {}
        parity = "-" if r.parity is None else ("pass" if r.parity.passed else "FAIL")
        lines.append(
            f"{r.mode:<13}{_fmt(r.size_bytes, ',d'):>9}"
            f"{_fmt(r.latency.median_ms if r.latency else None, '.3f'):>11}"
            f"{_fmt(r.latency.p99_ms if r.latency else None, '.3f'):>9}"
            f"{_fmt(worst.get('spearman'), '.5f'):>10}"
            f"{_fmt(worst.get('max_abs_diff'), '.2e'):>10}"
            f"{_fmt(worst.get('mean_abs_diff'), '.2e'):>10}"
            f"{_fmt(100 * worst['flipped_share'] if 'flipped_share' in worst else None, '.2f'):>8}%"
            f"  {parity:<7}{r.status}"
        )
    return "\n".join(lines)


def render_reasons(reports: list[ModeReport]) -> str:
    return "\n".join(f"  {r.mode}: {r.status} - {r.reason}" for r in reports)
