"""The pinned time split of the training rows (fitted part, held-out tail).

Its own module so that ``trainer.fit`` and ``trainer.baseline`` (which fit
imports) both use it without importing each other.
"""

from __future__ import annotations

import numpy as np


def split_train_rows(rows: np.ndarray, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, held-out tail): the pinned split the converter's parity repeats."""
    n_heldout = round(len(rows) * validation_fraction)
    return rows[: len(rows) - n_heldout], rows[len(rows) - n_heldout :]
