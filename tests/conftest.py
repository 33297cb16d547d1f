"""Suite-wide settings and the one way to find the shared data. Fixtures live next to the tests that use them."""

from __future__ import annotations

import os
from pathlib import Path

# Keep TensorFlow quiet and on the legacy Keras the converter needs; must be set
# before any test module imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402 (after the environment settings above)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "VIGIL_SHARED_DATA"


def shared_data_dir() -> Path:
    """The real labeled data: ``$VIGIL_SHARED_DATA`` if set, else ``../shared/data`` beside the checkout."""
    override = os.environ.get(SHARED_DATA_ENV, "").strip()
    return Path(override).expanduser().resolve() if override else (REPO_ROOT.parent / "shared" / "data").resolve()


def shared_data_file(*parts: str) -> Path:
    """A path under the shared data; a missing one fails the test (never a silent skip) saying where it looked."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared data not found: {path} (put the data at ../shared/data beside the checkout, "
                    f"or set {SHARED_DATA_ENV})", pytrace=False)
    return path


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
