"""``vigil package``: a device tarball (``vigil agent`` itself is :mod:`edge_agent.launcher`, no typer)."""

from __future__ import annotations

from pathlib import Path

import typer

from vigil.cli.common import one_line_errors


@one_line_errors("package")
def package_cmd(
    bundle: Path = typer.Option(..., "--bundle", help="the .vigil bundle to ship"),
    config: Path = typer.Option(..., "--config", help="agent profile TOML (its bundle.path is rewritten)"),
    out: Path = typer.Option(..., "--out", help="DEVICE.tar.gz to write"),
    unit: Path = typer.Option(None, "--unit", help="systemd unit file (default: the shipped vigil-agent.service)"),
    trusted_key: list[Path] = typer.Option(
        [], "--trusted-key",
        help="public key file (KEY.pub from vigil keys new) put into [bundle] trusted_keys; repeatable. "
             "The bundle must be signed by it."),
) -> None:
    """Build DEVICE.tar.gz: wheel, bundle, config, systemd unit and install.sh."""
    from vigil.packaging import build_package

    result = build_package(bundle=bundle, config=config, out=out, unit=unit, trusted_keys=list(trusted_key))
    typer.echo(f"wrote {result.path} ({result.size} bytes): {', '.join(result.members)}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("package", help="Build DEVICE.tar.gz for a device: wheel, bundle, config, unit, install.sh.")(
        package_cmd
    )
