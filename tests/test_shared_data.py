"""The suite finds the shared data without a hidden variable: ../shared/data, or VIGIL_SHARED_DATA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import REPO_ROOT, shared_data_dir, shared_data_file


def test_default_is_beside_the_checkout_and_the_variable_overrides(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_SHARED_DATA", raising=False)
    assert shared_data_dir() == (REPO_ROOT.parent / "shared" / "data").resolve()
    (tmp_path / "discords").mkdir()
    monkeypatch.setenv("VIGIL_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()
    assert shared_data_file("discords") == tmp_path.resolve() / "discords"
    with pytest.raises(pytest.fail.Exception, match="VIGIL_SHARED_DATA"):
        shared_data_file("nope.csv")


def test_the_shared_data_is_there() -> None:
    # CI keeps it at ../shared/data: the real-data tests run, they are not skipped.
    assert (shared_data_file("discords") / "labels.json").is_file()


def test_no_test_hard_codes_the_shared_data_location() -> None:
    pattern = re.compile(r"""["']shared["']|shared/data|VIGIL_SHARED_DATA""")
    offenders = [path.name for path in (REPO_ROOT / "tests").rglob("*.py")
                 if path.name not in ("conftest.py", Path(__file__).name) and pattern.search(path.read_text())]
    assert offenders == [], f"use tests.conftest.shared_data_file() in {offenders}"
    assert conftest.SHARED_DATA_ENV == "VIGIL_SHARED_DATA"
