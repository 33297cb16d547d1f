"""The ``vigil`` command line: one app, commands grouped by package.

Command modules only declare options; their bodies import ``trainer`` /
``converter`` lazily (through :func:`edge_agent.cli.common.load_extra`) so a
device with only the edge extra installed can still run ``vigil agent`` and
gets a one-line hint for the others.
"""

from __future__ import annotations

import typer

from edge_agent.cli import agent_cmds, alerts_cmds, convert_cmds, demo_cmds, evaluate_cmds, train_cmds

app = typer.Typer(
    name="vigil",
    help="vigil-edge: train an LSTM autoencoder, ship a TFLite bundle, score and alert on the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (train_cmds, evaluate_cmds, convert_cmds, agent_cmds, alerts_cmds, demo_cmds):
    group.register(app)


def main() -> None:
    app()
