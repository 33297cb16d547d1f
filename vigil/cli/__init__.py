"""The ``vigil`` command line (entry point ``main``).

``vigil agent ...`` (what systemd starts and keeps running for months) is the
device's own argparse launcher, :mod:`edge_agent.launcher`: no typer on the
device. Every other command is in the typer app (:mod:`vigil.cli.typer_app`),
which comes with the ``train`` or ``cli`` extra.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

AGENT = "agent"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vigil`` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [AGENT]:
        from edge_agent.launcher import main as agent_main

        sys.exit(agent_main(args[1:], prog="vigil agent"))
    if importlib.util.find_spec("typer") is None:
        print("vigil: this install has only the device agent ('vigil agent run|check-config'); "
              "the workstation commands need: pip install 'vigil-edge[train]' (or '[cli]')", file=sys.stderr)
        sys.exit(2)
    from vigil.cli.typer_app import run_app

    run_app(args)


def __getattr__(name: str) -> Any:
    # `from vigil.cli import app` keeps working without importing typer eagerly.
    if name == "app":
        from vigil.cli.typer_app import app

        return app
    raise AttributeError(name)
