"""Import Keras the way the converter needs it.

Legacy tf_keras (Keras 2) is used on purpose: its LSTM converts to the fused
UNIDIRECTIONAL_SEQUENCE_LSTM TFLite op, while a Keras 3 LSTM becomes a slow
WHILE loop (and full-int8 conversion of that graph crashed the converter on
TF 2.21). ``TF_USE_LEGACY_KERAS`` must be set before tensorflow is imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
    fd 2 pointed at a temporary file, which is replayed if the import fails.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get("VIGIL_TF_VERBOSE"):
        import tensorflow as tf

        return tf
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # probes CUDA now, while quiet
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
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
