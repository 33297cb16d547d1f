"""When to try a failed sensor again: exponential backoff on an injectable clock.

Shared by the I2C drivers (re-initialise the chip) and the serial source (reopen
the port). ``read(timeout)`` must never block past its deadline, so waiting is
capped by the caller's deadline rather than by the retry time.
"""

from __future__ import annotations

from collections.abc import Callable


class RetryTimer:
    """First retry after ``min_s``, doubling on each failure up to ``max_s``."""

    def __init__(self, min_s: float, max_s: float, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.min_s, self.max_s = float(min_s), float(max_s)
        self._clock, self._sleep = clock, sleep
        self._delay = self.min_s
        self._due_at = 0.0

    def failed(self) -> None:
        """Schedule the next attempt and lengthen the one after it."""
        self._due_at = self._clock() + self._delay
        self._delay = min(self._delay * 2.0, self.max_s)

    def succeeded(self) -> None:
        self._delay = self.min_s

    def wait_due(self, deadline: float) -> bool:
        """Sleep until the next attempt is due, but not past ``deadline``; True if it is due."""
        now = self._clock()
        if now < self._due_at:
            self._sleep(max(0.0, min(self._due_at, deadline) - now))
            return self._clock() >= self._due_at
        return True
