"""``vigil policy set --device ID --host BROKER sensitivity=0.8 k=3 n=5``: change ``[alerts]`` on running devices.

Values are written as in the TOML (``0.8``, ``3``, ``true``); ``key=unset``
puts a key back to its default (k/n/m/cooldown/smoothing: the bundle's
recommended policy). They are checked here and again on the device against the
config schema's ``[alerts]`` keys; the device stores them beside its spool
(they survive restarts) and answers ``applied`` with the effective values.
``vigil policy reset`` drops every remote value (the config file's apply again).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import load_extra, one_line_errors
from vigil.cli.deploy_cmds import TLS_HELP

policy_app = typer.Typer(help="Change the alert policy (the alerts section) of running devices over MQTT.",
                         no_args_is_help=True)
DEFAULT_TIMEOUT_S = 60.0


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["k=3", "sensitivity=0.8", "smoothing=unset"]`` -> validated ``{key: value}`` (None = default)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    from edge_agent.rollout.policy import validate_changes

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise VigilInputError(f"expected KEY=VALUE, got {item!r}", key="alerts")
        if text in ("unset", "default"):
            out[name] = None
            continue
        try:
            out[name] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[name] = text  # a bare word: the schema says whether a string is allowed
    validate_changes(out)  # the device checks again; this is for a quick one-line answer
    return out


def _run(devices: list[str], header: dict[str, Any], connection: dict[str, Any], timeout: float) -> None:
    load_extra("policy", "edge", "paho.mqtt.client")
    from edge_agent.rollout import protocol as P
    from vigil.cli.command_client import CommandClient, broker_settings, echo_reply, new_command_id

    targets = list(dict.fromkeys(devices))
    client = CommandClient(broker_settings(**connection))
    final: dict[str, str] = {}
    try:
        client.follow(targets)
        ids = {}
        for target in targets:
            command_id = new_command_id("policy")
            ids[command_id] = target
            client.send(target, P.encode_command(P.POLICY, command_id, target, **header), P.POLICY)
        for item in client.replies(set(ids), time.monotonic() + timeout):
            echo_reply(item)
            if item.get("state") in P.FINAL_STATES:
                final[ids[str(item["id"])]] = str(item["state"])
            if len(final) == len(targets):
                break
    finally:
        client.close()
    for target in targets:
        if target not in final:
            typer.echo(f"{target}  timed_out: no answer within {timeout:g} s (queued for the device's session)")
    if any(final.get(t) != P.APPLIED for t in targets):
        raise typer.Exit(1)


def _connection(host: str, port: int | None, username: str | None, password: str | None, password_env: str | None,
                ca: Path | None, cert: Path | None, key: Path | None, tls: bool, protocol: str,
                topic_prefix: str) -> dict[str, Any]:
    return {"host": host, "port": port, "username": username, "password": password, "password_env": password_env,
            "ca": ca, "cert": cert, "key": key, "tls": tls, "protocol": protocol, "topic_prefix": topic_prefix}


_DEVICE = typer.Option(..., "--device", help="Target device id (repeat for several).")
_HOST = typer.Option(..., "--host", help="Broker host name or address.")
_PORT = typer.Option(None, "--port", help="Broker port (default 1883, 8883 with TLS).")
_USER = typer.Option(None, "--username", "--user", help="Operator user name.")
_PASSWORD = typer.Option(None, "--password", help="Password (prefer --password-env).")
_PASSWORD_ENV = typer.Option(None, "--password-env", help="Env variable with the password.")
_CA = typer.Option(None, "--ca", help=TLS_HELP)
_CERT = typer.Option(None, "--cert", help="Client certificate for mutual TLS; enables TLS.")
_KEY = typer.Option(None, "--key", help="Client key for --cert.")
_TLS = typer.Option(False, "--tls", help="Use TLS with the system CA store.")
_PROTOCOL = typer.Option("5", "--protocol", help="MQTT protocol: 3.1.1 or 5.")
_PREFIX = typer.Option("vigil/{device_id}", "--topic-prefix", help="The devices' mqtt.topic_prefix.")
_TIMEOUT = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=0.1, help="Seconds to wait for each answer.")


@policy_app.command("set")
@one_line_errors("policy set")
def policy_set(
    values: list[str] = typer.Argument(..., help="KEY=VALUE of alerts keys (KEY=unset for the default)."),
    device: list[str] = _DEVICE, host: str = _HOST, port: Optional[int] = _PORT, username: Optional[str] = _USER,
    password: Optional[str] = _PASSWORD, password_env: Optional[str] = _PASSWORD_ENV, ca: Optional[Path] = _CA,
    cert: Optional[Path] = _CERT, key: Optional[Path] = _KEY, tls: bool = _TLS, protocol: str = _PROTOCOL,
    topic_prefix: str = _PREFIX, timeout: float = _TIMEOUT,
) -> None:
    """Set alerts-section values on devices; exit 1 unless every device answers applied."""
    changes = parse_assignments(values)
    _run(device, {"set": changes}, _connection(host, port, username, password, password_env, ca, cert, key, tls,
                                               protocol, topic_prefix), timeout)


@policy_app.command("reset")
@one_line_errors("policy reset")
def policy_reset(
    device: list[str] = _DEVICE, host: str = _HOST, port: Optional[int] = _PORT, username: Optional[str] = _USER,
    password: Optional[str] = _PASSWORD, password_env: Optional[str] = _PASSWORD_ENV, ca: Optional[Path] = _CA,
    cert: Optional[Path] = _CERT, key: Optional[Path] = _KEY, tls: bool = _TLS, protocol: str = _PROTOCOL,
    topic_prefix: str = _PREFIX, timeout: float = _TIMEOUT,
) -> None:
    """Drop every remotely set alerts value; the config file's values apply again."""
    _run(device, {"reset": True}, _connection(host, port, username, password, password_env, ca, cert, key, tls,
                                              protocol, topic_prefix), timeout)
