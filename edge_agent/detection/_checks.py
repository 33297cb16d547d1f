"""Checks for values read from a manifest: one-line :class:`VigilInputError` naming the key.

Settings dataclasses call these from ``__post_init__``, so a value built in
code and a value read from JSON are held to the same rules. ``bool`` is not
accepted where a number is expected (JSON ``true`` is not ``1``), and NaN or
infinity is never a valid setting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from edge_agent.errors import VigilInputError


def mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VigilInputError(f"must be a JSON object, got {type(value).__name__}", key=key)
    return value


def refuse_unknown(obj: Mapping[str, Any], allowed: Iterable[str], key: str) -> None:
    known = set(allowed)
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        raise VigilInputError(f"unknown key (known: {', '.join(sorted(known))})", key=f"{key}.{unknown[0]}")


def real(value: object, key: str, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite number within ``[lo, hi]`` (open ends when asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VigilInputError(f"must be a number, got {type(value).__name__}", key=key)
    number = float(value)
    if not math.isfinite(number):
        raise VigilInputError(f"must be finite, got {number}", key=key)
    if lo is not None and (number < lo or (lo_open and number == lo)):
        raise VigilInputError(f"must be {'>' if lo_open else '>='} {lo:g}, got {number:g}", key=key)
    if hi is not None and (number > hi or (hi_open and number == hi)):
        raise VigilInputError(f"must be {'<' if hi_open else '<='} {hi:g}, got {number:g}", key=key)
    return number


def optional_real(value: object, key: str, **bounds: Any) -> float | None:
    return None if value is None else real(value, key, **bounds)


def integer(value: object, key: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (a float with an integral value such as ``3.0`` is accepted) within bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VigilInputError(f"must be an integer, got {type(value).__name__}", key=key)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise VigilInputError(f"must be an integer, got {value}", key=key)
    number = int(value)
    if lo is not None and number < lo:
        raise VigilInputError(f"must be >= {lo}, got {number}", key=key)
    if hi is not None and number > hi:
        raise VigilInputError(f"must be <= {hi}, got {number}", key=key)
    return number


def boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise VigilInputError(f"must be true or false, got {type(value).__name__}", key=key)
    return value


def choice(value: object, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise VigilInputError(f"must be one of {', '.join(choices)}, got {value!r}", key=key)
    return value


def text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise VigilInputError("must be a non-empty string", key=key)
    return value


def pair(value: object, key: str) -> tuple[float, float]:
    """``[lo, hi]`` with ``lo < hi``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise VigilInputError("must be a list [lo, hi]", key=key)
    lo, hi = real(value[0], f"{key}[0]"), real(value[1], f"{key}[1]")
    if not lo < hi:
        raise VigilInputError(f"needs lo < hi, got [{lo:g}, {hi:g}]", key=key)
    return lo, hi
