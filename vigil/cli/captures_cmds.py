"""``vigil captures pull``: fetch an agent's captures over MQTT (request/response on the device's topics).

The protocol is :mod:`edge_agent.capture_protocol`: one ``list`` request, then
one ``get`` per capture not already here; each file arrives in chunks with
its SHA-256 and is written only when complete and intact (temp file, then
rename), so an interrupted pull leaves nothing half-written and the next pull
fetches what is missing. Captures can also simply be copied off the device
(``<state dir>/captures/*.npy`` + ``*.json``).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import add_group, load_extra, one_line_errors


def register(app: typer.Typer) -> None:
    """Add ``vigil captures`` to the ``vigil`` app."""
    add_group(app, "captures", "Captures of raw rows around alerts, for retraining.", {"pull": pull})


@one_line_errors("captures pull")
def pull(
    host: str = typer.Option(..., "--host", help="Broker host name or address."),
    device: str = typer.Option(..., "--device", help="Device id whose captures to fetch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory to write to (default captures/<device>)."),
    port: Optional[int] = typer.Option(None, "--port", help="Broker port (default 1883, 8883 with TLS)."),
    prefix: str = typer.Option("vigil", "--prefix", help="Topic root: the device's topics are <prefix>/<device>/..."),
    username: Optional[str] = typer.Option(None, "--username", help="Broker user name (an operator account)."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Env variable with the password."),
    ca: Optional[Path] = typer.Option(None, "--ca", help="CA certificate file; enables TLS."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="Client certificate for mutual TLS; enables TLS."),
    key: Optional[Path] = typer.Option(None, "--key", help="Client key for --cert."),
    tls: bool = typer.Option(False, "--tls", help="Use TLS with the system CA store."),
    protocol: str = typer.Option("5", "--protocol", help="MQTT protocol: 3.1.1 or 5."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Give up when the device stays silent this "
        "long (seconds)."),
) -> None:
    """Fetch the captures this directory does not hold yet; prints one line per capture."""
    load_extra("captures pull", "edge", "paho.mqtt.client")
    from vigil.cli.command_client import broker_settings

    settings = broker_settings(host, port, username, None, password_env, ca, cert, key, tls, protocol, prefix)
    folder = out or Path("captures") / device
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VigilInputError(f"cannot create the output directory: {exc.strerror}", file=str(folder)) from None
    with CapturePuller(settings, f"{prefix.rstrip('/')}/{device}", timeout) as puller:
        listing = puller.request({"op": "list"}, lambda m: m.get("op") == "list")[0]["captures"]
        wanted = [c for c in listing if not _have(folder, c)]
        typer.echo(f"vigil captures: {len(listing)} capture(s) on {device}, {len(wanted)} to fetch into {folder}")
        for item in wanted:
            files = puller.fetch(str(item["name"]), len(item.get("files", {})) or 2)
            for file, data in files.items():
                _write(folder / Path(file).name, data)
            typer.echo(f"pulled {item['name']} ({sum(len(d) for d in files.values())} bytes)")


def _have(folder: Path, item: dict[str, Any]) -> bool:
    sizes = item.get("files", {})
    return bool(sizes) and all((folder / f).is_file() and (folder / f).stat().st_size == s for f, s in sizes.items())


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise VigilInputError(f"cannot write: {exc.strerror}", file=str(path)) from None


class CapturePuller:
    """One MQTT session to a device's capture topics; :meth:`request` and :meth:`fetch` block."""

    def __init__(self, settings: Any, device_prefix: str, timeout: float) -> None:
        from edge_agent import capture_protocol as P

        self.P = P
        self.settings = settings
        self.prefix = device_prefix
        self.timeout = timeout
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._subscribed = threading.Event()
        self._client: Any = None
        self._refused: str | None = None

    def __enter__(self) -> CapturePuller:
        import paho.mqtt.client as mqtt

        from edge_agent.mqtt.reason import describe_exception, describe_reason, is_failure

        proto = mqtt.MQTTv5 if self.settings.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"vigil-captures-{uuid.uuid4().hex[:8]}",
                             protocol=proto)
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.tls is not None:
            client.tls_set_context(self.settings.tls.ssl_context("--ca"))

        def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if is_failure(rc):
                self._refused = describe_reason(rc)
                self._subscribed.set()
                return
            c.subscribe(self.P.reply_topic(self.prefix), qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = lambda _c, _u, msg: self._on_message(bytes(msg.payload))
        try:
            client.connect(self.settings.host, self.settings.resolved_port, keepalive=30)
        except Exception as exc:
            raise VigilInputError(describe_exception(exc, self.settings.host, self.settings.resolved_port)) from None
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(self.timeout) or self._refused:
            self.__exit__()
            why = f"refused the connection: {self._refused}" if self._refused else "did not answer"
            raise VigilInputError(f"broker {self.settings.host}:{self.settings.resolved_port} {why}")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_message(self, payload: bytes) -> None:
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return
        if isinstance(message, dict):
            self._messages.put(message)

    def request(self, body: dict[str, Any], done: Any, *, collect: Any = None) -> list[dict[str, Any]]:
        """Publish a request; return its replies until ``done(reply)`` is true (``collect`` sees each)."""
        request_id = uuid.uuid4().hex[:16]
        self._client.publish(self.P.request_topic(self.prefix), self.P.encode({"request_id": request_id, **body}),
                             qos=self.P.REQUEST_QOS)
        replies: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise VigilInputError(f"no answer from {self.prefix} within {self.timeout:g} s (is the agent "
                                      "running with [captures] enabled and mqtt_pull = true?)") from None
            if message.get("request_id") != request_id:
                continue  # another operator's pull, or a late reply
            if "error" in message:
                raise VigilInputError(f"the device refused: {message['error']}")
            deadline = time.monotonic() + self.timeout  # the device is alive: restart the silence clock
            replies.append(message)
            if collect is not None:
                collect(message)
            if done(message):
                return replies

    def fetch(self, name: str, n_files: int) -> dict[str, bytes]:
        """Every file of capture ``name``, checked against its announced size and SHA-256."""
        files: dict[str, Any] = {}

        def collect(message: dict[str, Any]) -> None:
            if message.get("op") == "chunk" and message.get("name") == name:
                file = str(message["file"])
                if file not in files:
                    files[file] = self.P.FileAssembly(int(message["chunks"]), int(message["size"]),
                                                      str(message["sha256"]))
                files[file].add(message)

        def done(_message: dict[str, Any]) -> bool:
            return len(files) == n_files and all(f.complete for f in files.values())

        self.request({"op": "get", "name": name}, done, collect=collect)
        try:
            return {file: assembly.data() for file, assembly in files.items()}
        except ValueError as exc:
            raise VigilInputError(f"capture {name}: {exc}") from None


def train_with_extra_normal(fit: Any, opts: dict[str, Any], captures: list[Path]) -> Any:
    """``vigil train --extra-normal``: train on DATA plus the captures, keep the combined rows in the run.

    The combined file is built beside the run directory (which training
    replaces), moved into it afterwards, and run.json's ``training.source``
    points at it, with ``training.extra_normal`` saying which rows came from
    which capture file.
    """
    import shutil

    from trainer.prepare import EXTRA_NORMAL_FILE, with_extra_normal
    from trainer.rundir import RUN_JSON, read_run

    out = Path(opts["out"])
    staging = out.parent / f".{out.name}.extra-normal"
    try:
        train_opts, note = with_extra_normal(opts, list(captures), staging)
        typer.echo(f"--extra-normal: {note['rows']} rows from {len(note['captures'])} capture(s) added before "
                   f"{note['data_rows'][1] - note['data_rows'][0]} rows of {note['data']}")
        run = fit.run_train(fit.TrainConfig(**train_opts, echo=typer.echo))
        kept = run.path / EXTRA_NORMAL_FILE
        shutil.move(str(staging / EXTRA_NORMAL_FILE), kept)
        meta = json.loads((run.path / RUN_JSON).read_text(encoding="utf-8"))
        meta["training"]["source"] = str(kept)
        meta["training"]["extra_normal"] = note
        _write(run.path / RUN_JSON, (json.dumps(meta, indent=2) + "\n").encode())
        return read_run(run.path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
