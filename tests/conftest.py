"""Suite-wide settings. Fixtures live next to the tests that use them."""

from __future__ import annotations

import os

# Keep TensorFlow quiet and on the legacy Keras the converter needs; must be set
# before any test module imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run_3f(tmp_path_factory: pytest.TempPathFactory):
    """A small trained 3-feature LSTM run directory (shared by converter and agent tests)."""
    from tests.models import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("run3f"), n_features=3)


@pytest.fixture(scope="session")
def tiny_bundle_3f(tiny_run_3f, tmp_path_factory: pytest.TempPathFactory):
    """A float32 ``.vigil`` bundle converted from :func:`tiny_run_3f`."""
    from tests.models import make_tiny_bundle

    return make_tiny_bundle(tiny_run_3f, tmp_path_factory.mktemp("bundle3f") / "tiny.vigil")
