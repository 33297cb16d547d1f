"""What ``vigil train`` prints while Keras works: something within the first second.

The first epoch includes building and tracing the graph (tens of seconds on a
loaded 2-core host), so during an epoch a line is printed at most every
``BATCH_REPORT_SECONDS`` with the batches done; each epoch ends with one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

BATCH_REPORT_SECONDS = 5.0


def progress_callback(k: Any, epochs: int, steps: int, echo: Callable[[str], None]) -> Any:
    class Progress(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        """One line per epoch, plus a batch count when an epoch takes long."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = self._last = time.perf_counter()
            if epoch == 0:
                echo(f"starting epoch 1: building and tracing the graph, then {steps} batches per epoch ...")

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            if now - self._last >= BATCH_REPORT_SECONDS:
                self._last = now
                echo(f"  ... batch {batch + 1}/{steps}  loss {(logs or {}).get('loss', float('nan')):.5g}  "
                     f"({now - self._start:.0f} s)")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            echo(f"epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', float('nan')):.5g}  "
                 f"val_loss {logs.get('val_loss', float('nan')):.5g}  ({time.perf_counter() - self._start:.1f} s)")

    return Progress()
