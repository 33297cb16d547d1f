"""Suite-wide settings. Fixtures live next to the tests that use them."""

from __future__ import annotations

import os

# Keep TensorFlow quiet and on the legacy Keras the converter needs; must be set
# before any test module imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")
