"""Watch a child process through /proc: peak RSS, CPU ticks, and timestamped stdout lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int | None:
    """A ``/proc/<pid>/status`` field in kB (VmHWM = peak RSS, VmRSS = current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Child:
    """A child process whose stdout lines are recorded with the time they arrived."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
                 stderr_path: Path | None = None) -> None:
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err,
                                     text=True, bufsize=1)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.perf_counter() - self.started, line.rstrip("\n")))
                self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float, start: int = 0) -> tuple[float, re.Match[str]] | None:
        """(seconds since start, match) of the first line from ``start`` on that matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        return self.lines[i][0], m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and i >= len(self.lines):
                    return None
                self._cond.wait(min(left, 0.05))

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return int(self.proc.returncode)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def sample_cpu(pid: int, seconds: float) -> dict[str, Any]:
    """CPU seconds used by ``pid`` over ``seconds`` of wall time, as a share of one core."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.perf_counter()
    return {"cpu_s": c1 - c0, "wall_s": t1 - t0, "share_of_one_core": (c1 - c0) / (t1 - t0)}
