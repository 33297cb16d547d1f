"""The ``vigil`` typer app: one app, commands grouped by package.

Command modules only declare options; their bodies import ``trainer`` /
``converter`` lazily (through :func:`vigil.cli.common.load_extra`) so a
device with only the edge extra installed can still run ``vigil agent`` and
gets a one-line hint for the others.
"""

from __future__ import annotations

import sys

import typer

from vigil.cli import (
    alerts_cmds,
    captures_cmds,
    convert_cmds,
    demo_cmds,
    deploy_cmds,
    evaluate_cmds,
    fleet_cmds,
    homeassistant_cmds,
    keys_cmds,
    package_cmds,
    policy_cmds,
    score_cmds,
    train_cmds,
)

app = typer.Typer(
    name="vigil",
    help="vigil-edge: train an LSTM autoencoder, ship a TFLite bundle, score and alert on the device.",
    epilog="The device agent: vigil agent run --config FILE | vigil agent check-config FILE (see vigil agent --help).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (train_cmds, evaluate_cmds, convert_cmds, score_cmds, package_cmds, alerts_cmds, demo_cmds, keys_cmds):
    group.register(app)
captures_cmds.register(app)  # vigil captures pull (edge_agent.capture_protocol)
homeassistant_cmds.register(app)  # vigil homeassistant remove (edge_agent.homeassistant)
fleet_cmds.register(app)  # vigil fleet train (vigil.fleet: local process pool or Ray)
for group in (deploy_cmds, policy_cmds):  # fleet rollout over MQTT (edge_agent.rollout)
    group.register(app)


def run_app(argv: list[str] | None = None) -> None:
    """Run the typer app; usage mistakes are one line too, exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="vigil", standalone_mode=False)
    except typer.Abort:
        typer.echo("vigil: aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        # click's UsageError/ClickException (typer vendors click in newer
        # releases, so match by shape rather than by import path).
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "vigil"
        message = exc.format_message()
        if message:  # empty when no_args_is_help already printed the help
            typer.echo(f"{where}: {message} (see {where} --help)", err=True)
        sys.exit(int(exc.exit_code))
    sys.exit(code if isinstance(code, int) else 0)
