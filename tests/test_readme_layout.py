"""README's "where things are" table matches the tree: every path it names exists, every package is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH_TOKEN = re.compile(r"^[\w./-]+(/|\.(py|md|in|json|toml))$")
# Installed packages (pyproject's packages.find) and the other top-level folders a newcomer looks for.
TOP_LEVEL = ("edge_agent", "trainer", "converter", "vigil", "benchmarks", "firmware_configs", "tests")


def table_rows() -> list[list[str]]:
    """The path-like backticked names of each row of the table under "Where things are"."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.replace(" ", "") == "|what|where|")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        where = line.split("|")[2]
        rows.append([t for t in re.findall(r"`([^`]+)`", where) if PATH_TOKEN.match(t)])
    return rows


def resolves(token: str, row: list[str]) -> bool:
    """``token`` exists from the root, or beside / under a folder another name of the same row is in."""
    bases = {ROOT}
    for other in row:
        path = ROOT / other
        bases.update([path, *path.parents] if other.endswith("/") else path.parents)
    return any((base / token).exists() for base in bases if ROOT in (base, *base.parents))


def test_every_path_in_the_table_exists() -> None:
    rows = table_rows()
    assert len(rows) >= 10 and all(rows)
    missing = [token for row in rows for token in row if not resolves(token, row)]
    assert missing == [], f"README 'where things are' names paths that do not exist: {missing}"


def test_every_package_is_in_the_table() -> None:
    named = {token.rstrip("/") for row in table_rows() for token in row if "/" in token}
    packages = [d for d in TOP_LEVEL if (ROOT / d).is_dir()]
    packages += [str(p.parent.relative_to(ROOT)) for d in TOP_LEVEL[:4] for p in (ROOT / d).glob("*/__init__.py")]

    def covered(package: str) -> bool:
        # Named itself, or something inside it is, or it sits inside a folder the table names.
        return any(n == package or n.startswith(package + "/") or package.startswith(n + "/") for n in named)

    assert len(packages) > len(TOP_LEVEL)
    assert [p for p in packages if not covered(p)] == []
