"""``vigil deploy BUNDLE --device ID... | --group NAME --host BROKER``: push a signed bundle, follow each device.

A group is a list of device ids in a TOML file (``--groups``, default
``vigil-groups.toml``): ``[groups]`` ``line-a = ["pump-01", "pump-02"]``. The
command still goes to each device's own command topic: devices accept commands
only there (the ACL lets only the operator publish there), and knowing the
members is what lets this command say which device did not answer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import load_extra, one_line_errors

DEFAULT_GROUPS = Path("vigil-groups.toml")
DEFAULT_TIMEOUT_S = 900.0
TLS_HELP = "CA certificate file; enables TLS."


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def read_group(path: Path, name: str) -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        groups = tomllib.loads(path.read_text(encoding="utf-8")).get("groups")
    except OSError as exc:
        raise VigilInputError(f"cannot read the groups file: {exc.strerror}", file=str(path)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise VigilInputError(f"not valid TOML: {exc}", file=str(path)) from None
    if not isinstance(groups, dict) or name not in groups:
        known = ", ".join(groups) if isinstance(groups, dict) else "none"
        raise VigilInputError(f"no group {name!r} in [groups] (known: {known})", file=str(path), key="groups")
    members = groups[name]
    if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
        raise VigilInputError("must be a non-empty list of device ids", file=str(path), key=f"groups.{name}")
    return list(dict.fromkeys(members))


def read_signed_bundle(path: Path) -> bytes:
    """The bundle's bytes, refused here already when it is damaged or unsigned (a device would refuse it)."""
    from edge_agent.bundle import MAX_BUNDLE_BYTES, parse_bundle

    try:
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise VigilInputError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes", file=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise VigilInputError(f"cannot read bundle: {exc.strerror}", file=str(path)) from None
    bundle = parse_bundle(data, str(path))
    if bundle.signature is None:
        raise VigilInputError("bundle is not signed (vigil sign BUNDLE --key KEY); devices accept only signed "
                              "bundles", file=str(path))
    return data


@one_line_errors("deploy")
def deploy(
    bundle: Path = typer.Argument(..., help="The signed .vigil bundle."),
    device: Optional[list[str]] = typer.Option(None, "--device", help="Target device id (repeat for several)."),
    group: Optional[str] = typer.Option(None, "--group", help="Target every device of this group (--groups file)."),
    groups: Path = typer.Option(DEFAULT_GROUPS, "--groups", help="TOML file: groups table, NAME = list of ids."),
    host: str = typer.Option(..., "--host", help="Broker host name or address."),
    port: Optional[int] = typer.Option(None, "--port", help="Broker port (default 1883, 8883 with TLS)."),
    username: Optional[str] = typer.Option(None, "--username", "--user", help="Operator user name."),
    password: Optional[str] = typer.Option(None, "--password", help="Password (prefer --password-env)."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Env variable with the password."),
    ca: Optional[Path] = typer.Option(None, "--ca", help=TLS_HELP),
    cert: Optional[Path] = typer.Option(None, "--cert", help="Client certificate for mutual TLS; enables TLS."),
    key: Optional[Path] = typer.Option(None, "--key", help="Client key for --cert."),
    tls: bool = typer.Option(False, "--tls", help="Use TLS with the system CA store."),
    protocol: str = typer.Option("5", "--protocol", help="MQTT protocol: 3.1.1 or 5."),
    topic_prefix: str = typer.Option("vigil/{device_id}", "--topic-prefix", help="The devices' mqtt.topic_prefix."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=0.1,
                                  help="Seconds to wait for every device's final state."),
) -> None:
    """Deploy a signed bundle; show each device's progress; exit 1 unless every device ends active."""
    load_extra("deploy", "edge", "paho.mqtt.client")
    from edge_agent.rollout import protocol as P
    from vigil.cli.command_client import CommandClient, broker_settings, echo_reply, last_known, new_command_id

    targets = _targets(device, group, groups)
    data = read_signed_bundle(bundle)
    settings = broker_settings(host, port, username, password, password_env, ca, cert, key, tls, protocol,
                               topic_prefix)
    client = CommandClient(settings)
    final: dict[str, dict[str, object]] = {}
    try:
        client.follow(targets)
        ids = {}
        for target in targets:
            command_id = new_command_id("deploy")
            ids[command_id] = target
            client.send(target, P.encode_command(P.DEPLOY, command_id, target, data), P.DEPLOY)
            typer.echo(f"{target}  sent ({len(data)} bytes, id {command_id})")
        for item in client.replies(set(ids), time.monotonic() + timeout):
            echo_reply(item)
            if item.get("state") in P.FINAL_STATES:
                final[ids[str(item["id"])]] = item
            if len(final) == len(targets):
                break
        seen = {target: last_known(client, target) for target in targets if target not in final}
    finally:
        client.close()
    _summary(targets, final, timeout, seen)


def _targets(device: list[str] | None, group: str | None, groups: Path) -> list[str]:
    if bool(device) == (group is not None):
        raise VigilInputError("give either --device ID (one or more) or --group NAME", key="--device")
    return list(dict.fromkeys(device)) if device else read_group(groups, str(group))


def _summary(targets: list[str], final: dict[str, dict[str, object]], timeout: float,
             seen: dict[str, str]) -> None:
    counts: dict[str, int] = {}
    for target in targets:
        state = str(final[target]["state"]) if target in final else "timed_out"
        counts[state] = counts.get(state, 0) + 1
        if target not in final:
            typer.echo(f"{target}  timed_out: no final state within {timeout:g} s ({seen.get(target, '?')}; the "
                       "command stays queued for the device's persistent session)")
    typer.echo("vigil deploy: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())), err=True)
    if counts.get("active", 0) != len(targets):
        raise typer.Exit(1)
