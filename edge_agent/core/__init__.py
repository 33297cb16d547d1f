"""Shared numeric core: windowing, scaling, scoring, smoothing.

Everything here is numpy-only and deterministic. The trainer, the converter and
the agent all call these functions, so a window scored on the workstation and
on the device goes through the very same arithmetic.
"""

from edge_agent.core.scaler import Scaler
from edge_agent.core.scoring import (
    ScoreFunction,
    WindowScore,
    score_windows,
    score_windows_with_steps,
    step_errors,
    window_errors,
)
from edge_agent.core.smoothing import Ewma, ewma
from edge_agent.core.windowing import (
    WindowBuffer,
    WindowSpec,
    row_scores_from_windows,
    sliding_windows,
    window_end_rows,
)

__all__ = [
    "Ewma",
    "ScoreFunction",
    "Scaler",
    "WindowBuffer",
    "WindowScore",
    "WindowSpec",
    "ewma",
    "row_scores_from_windows",
    "score_windows",
    "score_windows_with_steps",
    "step_errors",
    "sliding_windows",
    "window_end_rows",
    "window_errors",
]
