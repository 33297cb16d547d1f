"""``vigil package``: a device tarball (``vigil agent`` itself is :mod:`edge_agent.launcher`, no typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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
    target: Optional[str] = typer.Option(
        None, "--target",
        help="add a wheelhouse so install.sh needs no network: rpi64 (64-bit Raspberry Pi OS, aarch64), "
             "rpi32 (32-bit, armv7l) or x86_64 (a Linux gateway PC)"),
    python: Optional[str] = typer.Option(
        None, "--python", help="the device's Python for --target: 3.11 (bookworm, default) or 3.13 (trixie)"),
    instance: Optional[str] = typer.Option(
        None, "--instance",
        help="install as vigil-agent@NAME (config /etc/vigil/NAME.toml, state /var/lib/vigil/NAME): "
             "one gateway, several sensors/models"),
    find_links: list[Path] = typer.Option(
        [], "--find-links", help="extra local folder of wheels for --target (passed to pip download)"),
) -> None:
    """Build DEVICE.tar.gz: wheel, bundle, config, systemd unit and install.sh."""
    from vigil.packaging import build_package

    result = build_package(bundle=bundle, config=config, out=out, unit=unit, trusted_keys=list(trusted_key),
                           target=target, python=python, instance=instance, find_links=list(find_links))
    shown = [m for m in result.members if "/wheelhouse/" not in m]
    wheels = len(result.members) - len(shown)
    typer.echo(f"wrote {result.path} ({result.size} bytes): {', '.join(shown)}"
               + (f" + {wheels} wheels in wheelhouse/" if wheels else ""))


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("package", help="Build DEVICE.tar.gz for a device: wheel, bundle, config, unit, install.sh.")(
        package_cmd
    )
