"""Import Keras the way the converter needs it.

Legacy tf_keras (Keras 2) is used on purpose: its LSTM converts to the fused
UNIDIRECTIONAL_SEQUENCE_LSTM TFLite op, while a Keras 3 LSTM becomes a slow
WHILE loop (and full-int8 conversion of that graph crashed the converter on
TF 2.21). ``TF_USE_LEGACY_KERAS`` must be set before tensorflow is imported.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# 3 = C++ errors too: TF 2.21's tf.data prints "E0000 ... NodeDef mentions attribute
# use_unbounded_threadpool" on every fit, which is harmless but reads as a failure.
# ``vigil train --verbose`` sets 0 (and VIGIL_TF_VERBOSE) before this module is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def keras() -> ModuleType:
    """Return the tf_keras module (imported lazily: it takes seconds)."""
    tensorflow()
    import tf_keras

    return tf_keras


def tensorflow() -> ModuleType:
    """Return tensorflow, imported with its C++ start-up chatter kept off the terminal.

    TF 2.21 writes absl lines (CUDA probing, oneDNN notes) straight to file
    descriptor 2 before any log level applies, so the first import runs with
    fd 2 pointed at a log file, which is replayed if the import raises. A crash
    inside the import (a CPU without the instructions the wheel needs, a broken
    install) must never be hidden: faulthandler writes the fatal signal and the
    Python stack to the real stderr, and the log file (TensorFlow's own last
    words) is kept in the temp directory as ``vigil-tensorflow-import-*.log``:
    it is removed only after a clean import.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get("VIGIL_TF_VERBOSE"):
        import tensorflow as tf

        return tf
    fd, log_path = tempfile.mkstemp(prefix="vigil-tensorflow-import-", suffix=".log")
    sys.stderr.flush()
    saved = os.dup(2)
    crash_fd = os.dup(saved)  # the real stderr, for faulthandler while fd 2 is quiet
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=crash_fd)
    os.dup2(fd, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # probes CUDA now, while quiet
    except BaseException:
        os.dup2(saved, 2)
        sys.stderr.write(Path(log_path).read_text(encoding="utf-8", errors="replace"))
        Path(log_path).unlink(missing_ok=True)  # replayed: nothing left to keep
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        if was_enabled:
            faulthandler.enable(file=2)  # the fd, not sys.stderr (which may be a capture without one)
        else:
            faulthandler.disable()
        os.close(crash_fd)
    Path(log_path).unlink(missing_ok=True)
    return tf


def set_seed(seed: int) -> None:
    """Make weight init, shuffling and dropout reproducible for one process."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    tf = tensorflow()
    tf.random.set_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # older TF, or already configured
        pass
