"""Every source kind passes the one source contract (tests/contracts/source_checks.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.config_schema import KINDS
from tests.contracts.source_checks import SOURCE_CHECKS
from tests.contracts.source_rigs import CAPABILITIES, RIGS, SourceRig

CASES = [(kind, check) for kind in RIGS for check, needs in SOURCE_CHECKS.items()
         if needs is None or needs in CAPABILITIES[kind]]


def test_every_source_kind_has_a_rig() -> None:
    assert set(RIGS) == set(KINDS) == set(CAPABILITIES)


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[[str], SourceRig]]:
    made: list[SourceRig] = []

    def make(kind: str) -> SourceRig:
        made.append(RIGS[kind](tmp_path))
        return made[-1]

    yield make
    for rig in made:
        rig.source.close()
        for undo in rig.cleanup:
            undo()


@pytest.mark.parametrize(("kind", "check"), CASES, ids=[f"{k}-{c.__name__.removeprefix('check_')}" for k, c in CASES])
def test_source_contract(kind: str, check: Callable[[SourceRig], None], make_rig: Callable[[str], SourceRig]) -> None:
    check(make_rig(kind))
