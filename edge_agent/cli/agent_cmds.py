"""``vigil agent run|check-config`` and ``vigil package`` (device side; edge extra only)."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.cli.common import one_line_errors

agent_app = typer.Typer(
    name="agent",
    help="Run the on-device agent (sensor -> TFLite scoring -> alerts) or check its config.",
    no_args_is_help=True,
)


@agent_app.command("run")
@one_line_errors("agent run")
def run_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="agent TOML file (see firmware_configs/README.md)"),
) -> None:
    """Run the agent until SIGTERM/SIGINT (or the end of a replayed file); exit 0 after a clean stop."""
    # `vigil agent run --config FILE` normally reaches run_agent without typer (edge_agent.cli.main).
    from edge_agent.cli.agent_run import run_agent

    raise typer.Exit(run_agent(str(config)))


@agent_app.command("check-config")
@one_line_errors("agent check-config")
def check_config_cmd(
    config: Path = typer.Argument(..., help="agent TOML file"),
) -> None:
    """Validate the config (bundle and source features included); print it with defaults filled in."""
    from edge_agent.config import load_config, render_config

    typer.echo(render_config(load_config(config)), nl=False)


@one_line_errors("package")
def package_cmd(
    bundle: Path = typer.Option(..., "--bundle", help="the .vigil bundle to ship"),
    config: Path = typer.Option(..., "--config", help="agent profile TOML (its bundle.path is rewritten)"),
    out: Path = typer.Option(..., "--out", help="DEVICE.tar.gz to write"),
    unit: Path = typer.Option(None, "--unit", help="systemd unit file (default: the shipped vigil-agent.service)"),
) -> None:
    """Build DEVICE.tar.gz: wheel, bundle, config, systemd unit and install.sh."""
    from edge_agent.packaging import build_package

    result = build_package(bundle=bundle, config=config, out=out, unit=unit)
    typer.echo(f"wrote {result.path} ({result.size} bytes): {', '.join(result.members)}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.add_typer(agent_app, name="agent")
    app.command("package", help="Build DEVICE.tar.gz for a device: wheel, bundle, config, unit, install.sh.")(
        package_cmd
    )
