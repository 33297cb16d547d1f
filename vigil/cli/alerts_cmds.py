"""``vigil alerts``: watch alerts live from a broker, one line each, optionally appended to a file."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import load_extra, one_line_errors


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("alerts")(alerts)


@one_line_errors("alerts")
def alerts(
    host: str = typer.Option(..., "--host", help="Broker host name or address."),
    port: Optional[int] = typer.Option(None, "--port", help="Broker port (default 1883, 8883 with TLS)."),
    device: Optional[str] = typer.Option(None, "--device", help="Only this device id (default: all devices)."),
    prefix: str = typer.Option("vigil", "--prefix", help="Topic root: alerts are read from <prefix>/<device>/alert."),
    out: Optional[Path] = typer.Option(None, "--out", help="Append each alert as a JSON line here."),
    username: Optional[str] = typer.Option(None, "--username", help="Broker user name."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Env variable with the password."),
    ca: Optional[Path] = typer.Option(None, "--ca", help="CA certificate file; enables TLS."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="Client certificate for mutual TLS; enables TLS."),
    key: Optional[Path] = typer.Option(None, "--key", help="Client key for --cert."),
    tls: bool = typer.Option(False, "--tls", help="Use TLS with the system CA store."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="MQTT protocol: 3.1.1 or 5 (default 3.1.1, "
        "5 with --share)."),
    share: Optional[str] = typer.Option(None, "--share", help="Join shared subscription GROUP ($share/GROUP/...): "
        "the consumers of one group split the alerts between them (MQTT 5; run one per process/machine)."),
    as_json: bool = typer.Option(False, "--json", help="Print the alert JSON instead of a summary line."),
    count: Optional[int] = typer.Option(None, "--count", min=1, help="Exit 0 after this many alerts."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.0, help="Stop after S seconds (exit 1 if --count "
        "not reached)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log connection events on stderr."),
) -> None:
    """Show alerts live as they arrive (duplicates from re-sends are dropped)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(name)s: %(message)s")
    subscriber_mod = load_extra("alerts", "edge", "edge_agent.mqtt.subscriber")
    from edge_agent.mqtt.settings import MqttSettings, TlsSettings

    password = _password(password_env)
    tls_settings = None
    if ca or cert or key or tls:
        tls_settings = TlsSettings(
            ca_file=str(ca) if ca else None, cert_file=str(cert) if cert else None, key_file=str(key) if key else None
        )
    settings = MqttSettings(
        host=host, port=port, username=username, password=password, tls=tls_settings,
        protocol=protocol or ("5" if share else "3.1.1"),
        reconnect_min_s=0.5, reconnect_max_s=10.0,
    )
    sink = _open_out(out)
    sub = subscriber_mod.AlertSubscriber(settings, root=prefix, device=device, share=share)
    sub.start()
    try:
        received = _watch(sub, sink, as_json=as_json, count=count, timeout=timeout)
    finally:
        sub.stop()
        if sink is not None:
            sink.close()
    if count is not None and received < count:
        typer.echo(f"vigil alerts: timed out after {timeout:g} s with {received} of {count} alert(s)", err=True)
        raise typer.Exit(1)


def _password(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    if env_name not in os.environ:
        raise VigilInputError(f"environment variable {env_name} is not set", key="--password-env")
    return os.environ[env_name]


def _open_out(out: Path | None) -> Any:
    if out is None:
        return None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return open(out, "a", encoding="utf-8")  # noqa: SIM115 (closed by the caller)
    except OSError as exc:
        raise VigilInputError(f"cannot open for appending: {exc.strerror}", file=str(out)) from None


def _watch(sub: Any, out: Any, *, as_json: bool, count: int | None, timeout: float | None) -> int:
    """Print and store alerts until ``count`` or ``timeout``; returns how many alerts arrived."""
    from edge_agent.sinks.stdout import format_alert_line

    deadline = None if timeout is None else time.monotonic() + timeout
    received, announced, reported_error = 0, False, None
    while count is None or received < count:
        left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
        if left <= 0:
            break
        if sub.fatal_refusal:
            raise VigilInputError(f"broker {sub.where} refused the connection: {sub.fatal_refusal}")
        if not announced and sub.subscribed.is_set():
            typer.echo(f"vigil alerts: listening on {sub.alert_filter} at {sub.where}", err=True)
            announced = True
        if sub.last_error and sub.last_error != reported_error:
            typer.echo(f"vigil alerts: {sub.last_error} (retrying)", err=True)
        reported_error = sub.last_error
        item = sub.get(left)
        if item is None:
            continue
        if item.kind == "status":
            typer.echo(f"status {item.device} {item.text}")
        elif item.kind == "invalid":
            typer.echo(f"vigil alerts: skipped a malformed message on {item.topic}: {item.text}", err=True)
        elif item.kind == "alert":
            received += 1
            typer.echo(json.dumps(item.payload, separators=(",", ":")) if as_json else format_alert_line(item.payload))
            if out is not None:
                _append(out, item.payload)
    if sub.invalid:
        typer.echo(f"vigil alerts: {sub.invalid} malformed message(s) skipped", err=True)
    return received


def _append(out: Any, payload: dict[str, Any]) -> None:
    try:
        out.write(json.dumps(payload, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    except OSError as exc:
        raise VigilInputError(f"cannot write: {exc.strerror}", file=out.name) from None
