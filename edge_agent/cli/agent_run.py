"""``vigil agent run --config FILE`` without typer (see :mod:`edge_agent.cli`)."""

from __future__ import annotations

import sys

from edge_agent.errors import VigilInputError


def run_agent(config: str) -> int:
    """Load the config and run the service; a config problem is one line and exit 2."""
    from edge_agent.config import load_config
    from edge_agent.service import AgentService, configure_logging

    try:
        cfg = load_config(config)
        configure_logging(cfg.values["log"]["level"])
        return AgentService(cfg).run()
    except VigilInputError as exc:
        print(f"vigil agent run: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vigil agent run: interrupted", file=sys.stderr)
        return 130
