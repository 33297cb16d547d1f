"""What ``vigil train`` prints while Keras works: something within the first second.

``trainer.training`` says "building model ..." before the graph is built; the
first epoch then spends seconds tracing the graph before its first batch, so a
heartbeat thread prints a line every ``BATCH_REPORT_SECONDS`` until that batch
is done. During an epoch a line is printed at most every
``BATCH_REPORT_SECONDS`` with the batches done; each epoch ends with one line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

BATCH_REPORT_SECONDS = 5.0


class Heartbeat:
    """Prints ``message (N s)`` after ``every`` seconds, then at doubling gaps, until stopped.

    Doubling keeps a slow trace on a loaded host to a handful of lines.
    """

    def __init__(self, echo: Callable[[str], None], message: str, every: float = BATCH_REPORT_SECONDS) -> None:
        self._echo, self._message, self._every = echo, message, every
        self._stop = threading.Event()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="vigil-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        gap = self._every
        while not self._stop.wait(gap):
            self._echo(f"  ... {self._message} ({time.perf_counter() - self._start:.0f} s)")
            gap *= 2

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def progress_callback(k: Any, epochs: int, steps: int, echo: Callable[[str], None],
                      started: float | None = None) -> Any:
    """A Keras callback printing progress; ``started`` (perf_counter) is when model building began."""

    class Progress(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        """One line per epoch, plus a batch count when an epoch takes long."""

        _beat: Heartbeat | None = None

        def on_train_begin(self, logs: Any = None) -> None:
            built = "" if started is None else f" (model built in {time.perf_counter() - started:.1f} s)"
            echo(f"starting epoch 1 of at most {epochs}{built}: tracing the graph, then {steps} batches per "
                 f"epoch ...")
            self._beat = Heartbeat(echo, "tracing the graph and running the first batch")

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = self._last = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._end_heartbeat()
            now = time.perf_counter()
            if now - self._last >= BATCH_REPORT_SECONDS:
                self._last = now
                echo(f"  ... batch {batch + 1}/{steps}  loss {(logs or {}).get('loss', float('nan')):.5g}  "
                     f"({now - self._start:.0f} s)")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            echo(f"epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', float('nan')):.5g}  "
                 f"val_loss {logs.get('val_loss', float('nan')):.5g}  ({time.perf_counter() - self._start:.1f} s)")

        def on_train_end(self, logs: Any = None) -> None:
            self._end_heartbeat()

        def close(self) -> None:
            self._end_heartbeat()

        def _end_heartbeat(self) -> None:
            if self._beat is not None:
                self._beat.stop()
                self._beat = None

    return Progress()
