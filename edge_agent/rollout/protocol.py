"""The command protocol between ``vigil deploy`` / ``vigil policy`` and the agent.

Topics, under the device's topic prefix (default ``vigil/<device_id>``)::

    <prefix>/cmd/deploy   operator -> device, QoS 1: a signed bundle
    <prefix>/cmd/policy   operator -> device, QoS 1: new [alerts] values
    <prefix>/reply        device -> operator, QoS 1: progress and outcome of each command
    <prefix>/rollout      device, retained: the active bundle, a running probation, the remote policy

Commands are two levels below the prefix on purpose: the example mosquitto ACL
lets a device write ``<prefix>/+`` (one level) and only read ``<prefix>/cmd/#``,
so a device (or its stolen password) cannot command itself or anyone else.

A command message is a JSON header line (``vigil.command/1``), then ``\\n``,
then the body: the raw ``.vigil`` bytes for a deploy (no base64: a bundle may
be megabytes on a Pi), nothing for a policy. Header fields: ``command``,
``id`` (the operator's name for this command, echoed in every reply),
``device`` (must be the receiving device), ``sent`` (unix time), and for a
policy ``set`` = ``{key: value}`` (null = back to the default).

Replies (``vigil.reply/1``): ``device``, ``command``, ``id``, ``state``,
``time`` and, where it applies, ``reason``, ``model_id``, ``sha256``,
``alerts``. Deploy states in order: ``received``, ``verified``, ``staged``,
``probation``, then one final ``active`` | ``rolled_back`` | ``refused``.
A policy ends ``applied`` or ``refused``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

COMMAND_FORMAT = "vigil.command/1"
REPLY_FORMAT = "vigil.reply/1"
STATE_FORMAT = "vigil.rollout/1"
CMD_LEVEL = "cmd"
DEPLOY = "deploy"
POLICY = "policy"
COMMANDS = (DEPLOY, POLICY)
REPLY_TOPIC = "reply"
STATE_TOPIC = "rollout"
COMMAND_QOS = 1
REPLY_QOS = 1

RECEIVED, VERIFIED, STAGED, PROBATION = "received", "verified", "staged", "probation"
ACTIVE, ROLLED_BACK, REFUSED, APPLIED = "active", "rolled_back", "refused", "applied"
FINAL_STATES = (ACTIVE, ROLLED_BACK, REFUSED, APPLIED)
MAX_HEADER_BYTES = 64 << 10
MAX_ID_CHARS = 64


def command_topic(prefix: str, command: str) -> str:
    return f"{prefix}/{CMD_LEVEL}/{command}"


def command_filter(prefix: str) -> str:
    return f"{prefix}/{CMD_LEVEL}/+"


def reply_topic(prefix: str) -> str:
    return f"{prefix}/{REPLY_TOPIC}"


def state_topic(prefix: str) -> str:
    return f"{prefix}/{STATE_TOPIC}"


class CommandError(ValueError):
    """A command that cannot be read; the message is the one-line reason sent back."""


@dataclass(frozen=True)
class Command:
    command: str
    id: str
    device: str
    header: dict[str, Any] = field(repr=False)
    body: bytes = field(default=b"", repr=False)


def encode_command(command: str, command_id: str, device: str, body: bytes = b"", **fields: Any) -> bytes:
    """The message ``vigil deploy`` / ``vigil policy`` publish."""
    header = {"format": COMMAND_FORMAT, "command": command, "id": command_id, "device": device,
              "sent": round(time.time(), 3), **fields}
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + bytes(body)


def decode_command(payload: bytes) -> Command:
    """Header and body of a command message, or :class:`CommandError` saying what is wrong."""
    head, sep, body = bytes(payload).partition(b"\n")
    if len(head) > MAX_HEADER_BYTES:
        raise CommandError(f"command header is larger than {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(head)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandError("not a vigil command (the first line is not JSON)") from None
    if not isinstance(header, dict) or header.get("format") != COMMAND_FORMAT:
        raise CommandError(f"not a vigil command (format is not {COMMAND_FORMAT})")
    command, command_id, device = header.get("command"), header.get("id"), header.get("device")
    if command not in COMMANDS:
        raise CommandError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_ID_CHARS:
        raise CommandError(f"id must be a string of 1..{MAX_ID_CHARS} characters")
    if not isinstance(device, str) or not device:
        raise CommandError("device must name the target device")
    return Command(str(command), command_id, device, header, body if sep else b"")


def reply(device: str, command: str, command_id: str, state: str, **fields: Any) -> dict[str, Any]:
    """One reply payload; ``fields`` whose value is None are left out."""
    out: dict[str, Any] = {"format": REPLY_FORMAT, "device": device, "command": command, "id": command_id,
                           "state": state, "time": round(time.time(), 3)}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


__all__ = [
    "ACTIVE", "APPLIED", "COMMANDS", "COMMAND_FORMAT", "DEPLOY", "FINAL_STATES", "POLICY", "PROBATION", "RECEIVED",
    "REFUSED", "REPLY_FORMAT", "ROLLED_BACK", "STAGED", "VERIFIED", "Command", "CommandError", "command_filter",
    "command_topic", "decode_command", "encode_command", "reply", "reply_topic", "state_topic",
]
