"""The ``vigil`` command line (entry point ``main``).

The commands live in a typer app (:mod:`edge_agent.cli.typer_app`). ``vigil agent
run``, what systemd starts and keeps running for months, skips typer: the app
and what it pulls in (rich, pydantic) would cost the device about 8 MB of
resident memory for parsing one option.
"""

from __future__ import annotations

import sys
from typing import Any

AGENT_RUN = ("agent", "run")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vigil`` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    config = agent_run_config(args)
    if config is not None:
        from edge_agent.cli.agent_run import run_agent

        sys.exit(run_agent(config))
    from edge_agent.cli.typer_app import run_app

    run_app(args)


def agent_run_config(args: list[str]) -> str | None:
    """The config path of a plain ``agent run --config FILE``; None sends it through typer."""
    if tuple(args[:2]) != AGENT_RUN:
        return None
    rest = args[2:]
    if len(rest) == 2 and rest[0] in ("--config", "-c") and not rest[1].startswith("-"):
        return rest[1]
    if len(rest) == 1 and rest[0].startswith("--config=") and len(rest[0]) > len("--config="):
        return rest[0][len("--config="):]
    return None  # --help, a mistake, ...: typer prints help or the one-line usage error


def __getattr__(name: str) -> Any:
    # `from edge_agent.cli import app` keeps working without importing typer eagerly.
    if name == "app":
        from edge_agent.cli.typer_app import app

        return app
    raise AttributeError(name)
