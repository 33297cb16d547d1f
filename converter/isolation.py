"""Run conversion and interpreter checks in worker processes, so a crash costs one mode.

The TFLite converter and the TFLite interpreter are C++; on degenerate models
they have segfaulted (measured: full-int8 models calibrated on constant data
crash in ``allocate_tensors``), which used to kill ``vigil convert`` with exit
-11 and nothing printed. Here every task runs in a worker process
(``python -m converter.worker``): when the worker dies, the task it was doing
is reported as a one-line reason (``converter crashed (SIGSEGV) in convert
(export.py:97)``) built from the exit signal and the last useful line of the
worker's log (its fd 2, where faulthandler writes the crash's traceback), and
a fresh worker takes the next task.

Workers are persistent (one TensorFlow import for all modes and for every
later conversion in the same process, ~6 s each) and replaced only after a
crash; they exit when this process does (their stdin closes). Two kinds are
used: a *converter* worker (TensorFlow, the Keras model, the exporter) and a
*runtime* worker (interpreter only, starts in ~0.3 s) for the parity checks
and the interleaved latency rounds, so an interpreter crash does not cost a
TensorFlow restart.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edge_agent.errors import VigilInputError

DEFAULT_TIMEOUT_S = 900.0
LOG_TAIL_LINES = 20
# Lines that say nothing about a crash (faulthandler's trailer, TF/absl chatter).
_NOISE_PREFIXES = ("Extension modules:", "INFO: Created TensorFlow Lite", "Current thread", "Thread 0x",
                   "Fatal Python error", "WARNING: All log messages before absl")


class TaskCrashed(Exception):
    """The worker died (signal, exit code or timeout) while doing one task."""

    def __init__(self, reason: str, log_tail: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


class TaskFailed(Exception):
    """The task raised in the worker; ``reason`` is its one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def crash_detail(log_lines: list[str]) -> str:
    """Where a crash happened, from the worker's log: faulthandler's innermost frame, else its last line."""
    for i, line in enumerate(log_lines):
        if "most recent call first" in line:
            for frame in log_lines[i + 1 :]:
                frame = frame.strip()
                if frame.startswith("File "):
                    return _frame_text(frame)
    useful = [line.strip() for line in log_lines if line.strip() and not line.strip().startswith(_NOISE_PREFIXES)]
    return useful[-1][:300] if useful else ""


def _frame_text(frame: str) -> str:
    """``File "/x/interpreter.py", line 575 in allocate_tensors`` -> ``in allocate_tensors (interpreter.py:575)``."""
    try:
        path_part, rest = frame[len('File "') :].split('", line ', 1)
        line_no, _, func = rest.partition(" in ")
        return f"in {func.strip()} ({Path(path_part).name}:{line_no.strip()})"
    except ValueError:
        return frame[:300]


@dataclass
class WorkerSpec:
    name: str  # "converter" or "runtime" (log file names, messages)
    crash_noun: str  # "converter" / "interpreter": what crashed, in the reason


class WorkerProcess:
    """One live worker: send a request, wait for its answer or its death."""

    def __init__(self, spec: WorkerSpec, log_path: Path, verbose: bool) -> None:
        """Start ``python -m converter.worker``; ``verbose`` keeps TensorFlow's C++ log level."""
        self.spec = spec
        self.log_path = log_path
        self.verbose = verbose
        self._log_offset = 0
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env.setdefault("TF_USE_LEGACY_KERAS", "1")
        # trainer.keras_backend sets level 2 in this process on import; --verbose means everything.
        env["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
        env["PYTHONUNBUFFERED"] = "1"
        self._log: IO[bytes] = open(log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "converter.worker", str(write_fd)],
                stdin=subprocess.PIPE, stdout=self._log, stderr=self._log, pass_fds=(write_fd,), env=env,
            )
        finally:
            os.close(write_fd)
        self._responses = os.fdopen(read_fd, "r")

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The task's result; raises :class:`TaskCrashed` (worker gone) or :class:`TaskFailed`."""
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write((json.dumps(req) + "\n").encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(timed_out=False) from None
        ready, _, _ = select.select([self._responses], [], [], timeout)
        line = self._responses.readline() if ready else None
        self._relay_log()
        if not line:
            raise self._died(timed_out=line is None, timeout=timeout)
        reply = json.loads(line)
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        if reply.get("input_error"):
            raise VigilInputError(str(reply.get("where") or reply.get("error")))
        raise TaskFailed(str(reply.get("error") or "failed"))

    def _died(self, timed_out: bool, timeout: float = 0.0) -> TaskCrashed:
        if timed_out:
            self._proc.kill()
        returncode = self._proc.wait()
        tail = self.log_tail()
        if timed_out:
            what = f"{self.spec.crash_noun} timed out after {timeout:.0f} s"
        elif returncode < 0:
            what = f"{self.spec.crash_noun} crashed ({signal_name(returncode)})"
        else:
            what = f"{self.spec.crash_noun} worker exited with code {returncode}"
        detail = crash_detail(tail)
        self.close()
        return TaskCrashed(f"{what} {detail}".strip(), tail)

    def log_tail(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-LOG_TAIL_LINES:]

    def _relay_log(self) -> None:
        """--verbose: show what the worker logged (TensorFlow's C++ lines included) as it goes."""
        if not self.verbose:
            return
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                new = log.read()
        except OSError:
            return
        self._log_offset += len(new)
        if new:
            sys.stderr.write(new.decode(errors="replace"))
            sys.stderr.flush()

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._responses.close()
        self._log.close()


CONVERTER = WorkerSpec("converter", "converter")
RUNTIME = WorkerSpec("runtime", "interpreter")


class _Pool:
    """Live workers by (kind, verbose), shared by every conversion in this process."""

    def __init__(self) -> None:
        self.workers: dict[tuple[str, bool], WorkerProcess] = {}
        self.started = 0
        self._log_dir: Path | None = None

    def get(self, spec: WorkerSpec, verbose: bool) -> WorkerProcess:
        key = (spec.name, verbose)
        worker = self.workers.get(key)
        if worker is None or not worker.alive:
            if worker is not None:
                worker.close()
            self.started += 1
            worker = WorkerProcess(spec, self.log_dir() / f"{spec.name}-{self.started}.log", verbose)
            self.workers[key] = worker
        return worker

    def discard(self, spec: WorkerSpec, verbose: bool) -> None:
        self.workers.pop((spec.name, verbose), None)

    def log_dir(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="vigil-convert-workers-"))
        return self._log_dir

    def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def shutdown_workers() -> None:
    """Stop the pooled workers now (they also stop when this process exits)."""
    _POOL.shutdown()


class Isolation:
    """Run one conversion's tasks in the pooled workers; a crashed worker is replaced on the next call."""

    def __init__(self, job: Path, verbose: bool = False, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.job = job
        self.verbose = verbose
        self.timeout = timeout

    def call(self, spec: WorkerSpec, req: dict[str, Any]) -> dict[str, Any]:
        from converter.worker import CRASH_ENV

        worker = _POOL.get(spec, self.verbose)
        full = {**req, "job": str(self.job), "verbose": self.verbose, "crash": os.environ.get(CRASH_ENV, "")}
        try:
            return worker.request(full, self.timeout)
        except TaskCrashed:
            _POOL.discard(spec, self.verbose)
            raise

    def __enter__(self) -> Isolation:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop: the workers outlive one conversion (see the module docstring)."""
