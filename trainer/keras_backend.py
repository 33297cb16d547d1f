"""Import Keras the way the converter needs it.

Legacy tf_keras (Keras 2) is used on purpose: its LSTM converts to the fused
UNIDIRECTIONAL_SEQUENCE_LSTM TFLite op, while a Keras 3 LSTM becomes a slow
WHILE loop (and full-int8 conversion of that graph crashed the converter on
TF 2.21). ``TF_USE_LEGACY_KERAS`` must be set before tensorflow is imported.
"""

from __future__ import annotations

import os
from types import ModuleType

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras() -> ModuleType:
    """Return the tf_keras module (imported lazily: it takes seconds)."""
    import tf_keras

    return tf_keras


def tensorflow() -> ModuleType:
    import tensorflow as tf

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
