"""Which TFLite interpreter the device loads, and what it says when none is usable."""

from __future__ import annotations

import importlib.abc
import sys

import pytest

from edge_agent.errors import VigilInputError
from edge_agent.runtime import load_interpreter_class


class _Broken(importlib.abc.MetaPathFinder):
    """Makes ``names`` fail as a package built against another NumPy does (an ImportError from inside it)."""

    def __init__(self, names: set[str], missing: set[str]) -> None:
        self.names, self.missing = names, missing

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201 (importlib protocol)
        top = fullname.split(".")[0]
        if top in self.missing:
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        if top in self.names:
            raise ImportError("numpy.core.multiarray failed to import")
        return None


@pytest.fixture
def import_hook(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def install(broken: set[str], missing: set[str]) -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in broken | missing:
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setattr(sys, "meta_path", [_Broken(broken, missing), *sys.meta_path])

    return install


def test_the_installed_litert_is_used() -> None:
    cls, backend = load_interpreter_class()
    assert backend == "ai_edge_litert"
    assert cls.__name__ == "Interpreter"


def test_no_interpreter_at_all_says_what_to_install(import_hook) -> None:  # noqa: ANN001
    import_hook(broken=set(), missing={"ai_edge_litert", "tflite_runtime"})
    with pytest.raises(VigilInputError, match=r"no TFLite interpreter found: pip install 'vigil-edge\[edge\]'"):
        load_interpreter_class()


def test_an_installed_but_broken_interpreter_is_named_with_its_error(import_hook) -> None:  # noqa: ANN001
    import_hook(broken={"tflite_runtime"}, missing={"ai_edge_litert"})
    with pytest.raises(VigilInputError) as info:
        load_interpreter_class()
    message = str(info.value)
    assert "tflite-runtime is installed but does not import" in message
    assert "numpy.core.multiarray failed to import" in message
    assert "needs NumPy 1" in message
    assert "\n" not in message
