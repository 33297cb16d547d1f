"""Suite-wide settings and the one way to find the shared data. Fixtures live next to the tests that use them."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
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


# Files that train or convert real models for a minute or more, longest first. `make test` runs the suite on
# two pytest-xdist workers, one whole file at a time, in collection order (--no-loadscope-reorder): handing
# out the long files first keeps one of them from starting last while the other worker sits idle.
LONG_FILES_FIRST = (
    "test_converter.py", "test_fleet.py", "test_demo.py", "test_real_ecg.py", "test_spectral_pipeline.py",
    "test_install.py", "test_captures_train.py", "test_trainer_data_e2e.py", "test_trainer_training.py",
    "test_aer.py", "test_chaos_signed_convert.py", "test_train_e2e.py", "test_evaluate.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist only: the long files first (a stable sort, so each file keeps its own order)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per test run, even with several pytest-xdist workers; returns what it returned.

    Without xdist this is ``build(tmp_path_factory.mktemp(name))``. Under xdist every worker has its own
    basetemp inside the run's common one: the first worker to get here builds in that common folder under
    an exclusive lock, the others wait for it and reuse the result (read-only, like a session fixture).
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    common = tmp_path_factory.getbasetemp().parent
    folder, done = common / name, common / f"{name}.json"
    with (common / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if build() raises
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way in another worker
            folder.mkdir()
            done.write_text(json.dumps({"path": str(build(folder))}))
        return Path(json.loads(done.read_text())["path"])


@pytest.fixture(scope="session")
def tiny_run_3f(tmp_path_factory: pytest.TempPathFactory):
    """A small trained 3-feature LSTM run directory (shared by converter and agent tests)."""
    from tests.models import make_tiny_run

    return built_once(tmp_path_factory, "run3f", lambda folder: make_tiny_run(folder, n_features=3))


@pytest.fixture(scope="session")
def tiny_bundle_3f(tiny_run_3f, tmp_path_factory: pytest.TempPathFactory):
    """A float32 ``.vigil`` bundle converted from :func:`tiny_run_3f`."""
    from tests.models import make_tiny_bundle

    return built_once(tmp_path_factory, "bundle3f", lambda folder: make_tiny_bundle(tiny_run_3f, folder / "tiny.vigil"))
