"""Commands of this group (options only; bodies import their package lazily)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
