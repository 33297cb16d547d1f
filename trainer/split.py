"""The pinned time split of the training rows (fitted part, held-out tail).

The one owner is :func:`trainer.rundir.split_rows` (the run format: the
converter's parity check repeats it); this name stays for the trainer's callers.
"""

from __future__ import annotations

from trainer.rundir import split_rows as split_train_rows

__all__ = ["split_train_rows"]
