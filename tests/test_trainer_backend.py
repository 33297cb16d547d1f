"""TensorFlow's import chatter is kept off the terminal, but a crash inside the import never is.

Each case runs ``trainer.keras_backend.tensorflow()`` in a fresh interpreter whose
``tensorflow`` is a stand-in package on ``sys.path`` that behaves like the real
one at import: it writes absl-style lines straight to file descriptor 2, and
then returns, raises, or kills the process with SIGSEGV. (The real import takes
seconds; what is under test is the fd-2 and faulthandler handling around it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHATTER = "I0000 00:00:1.0 cudart_stub.cc:31] Could not find cuda drivers on your machine"
STANDIN = '''
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"{chatter}\\n")
BEHAVIOUR = {behaviour!r}
if BEHAVIOUR == "raise":
    raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
if BEHAVIOUR == "segfault":
    os.write(2, b"F0000 check failed: the CPU lacks AVX\\n")
    import faulthandler
    faulthandler._sigsegv()

class _Config:
    @staticmethod
    def list_physical_devices(kind):
        os.write(2, b"E0000 failed call to cuInit: UNKNOWN ERROR (303)\\n")
        return []

config = _Config()
__version__ = "stand-in"
'''


def _run(tmp_path: Path, behaviour: str, verbose: bool = False) -> subprocess.CompletedProcess:
    package = tmp_path / "site" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(STANDIN.format(chatter=CHATTER, behaviour=behaviour))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
           "TMPDIR": str(tmp_path)}
    env.pop("VIGIL_TF_VERBOSE", None)
    if verbose:
        env["VIGIL_TF_VERBOSE"] = "1"
    code = ("from trainer.keras_backend import tensorflow\n"
            "tf = tensorflow()\n"
            "print('imported', tf.__version__, flush=True)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)


def _import_logs(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("vigil-tensorflow-import-*.log"))


def test_clean_import_is_quiet_and_leaves_no_log(tmp_path: Path) -> None:
    result = _run(tmp_path, "ok")
    assert result.returncode == 0, result.stderr
    assert "imported stand-in" in result.stdout
    assert result.stderr == ""
    assert _import_logs(tmp_path) == []


def test_verbose_shows_the_chatter(tmp_path: Path) -> None:
    result = _run(tmp_path, "ok", verbose=True)
    assert result.returncode == 0, result.stderr
    assert CHATTER in result.stderr


def test_failed_import_replays_what_tensorflow_said(tmp_path: Path) -> None:
    result = _run(tmp_path, "raise")
    assert result.returncode != 0
    assert CHATTER in result.stderr  # the quiet part is replayed ...
    assert "cannot open shared object file" in result.stderr  # ... with the exception
    assert _import_logs(tmp_path) == []


def test_crash_inside_the_import_is_printed_and_its_log_kept(tmp_path: Path) -> None:
    result = _run(tmp_path, "segfault")
    assert result.returncode != 0 and "imported" not in result.stdout
    assert "Segmentation fault" in result.stderr  # faulthandler wrote to the real stderr
    assert "tensorflow" in result.stderr  # with the Python stack that was importing it
    logs = _import_logs(tmp_path)
    assert len(logs) == 1 and "check failed: the CPU lacks AVX" in logs[0].read_text()


def test_log_level_is_set_before_tensorflow_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import os, sys, trainer.keras_backend; "
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                            cwd=tempfile.gettempdir(), check=True)
    assert result.stdout.split() == ["3", "False"]
