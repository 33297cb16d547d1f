"""Capture files and the request/response protocol that fetches them over MQTT (no paho, no numpy here).

A capture is two files in the agent's capture directory: ``<name>.npy`` (the
raw rows, float32 ``[rows, features]``) and ``<name>.json`` (the sidecar,
schema ``vigil.capture/1``: event id, kind, stream rows, times, scores, the
alert that caused it). Both the agent (:mod:`edge_agent.captures`) and
``vigil captures pull`` use the names and messages defined here.

Topics, under the device prefix (``vigil/<device_id>``):

* ``<prefix>/cmd/captures``  operator -> agent, QoS 1, JSON
  ``{"request_id": ID, "op": "list"}`` or ``{"request_id": ID, "op": "get", "name": NAME}``.
* ``<prefix>/captures``  agent -> operator, QoS 1, JSON, every reply carrying its ``request_id``:
  a ``list`` reply ``{"request_id", "op": "list", "captures": [{"name", "files": {file: size}}]}``;
  for ``get`` one message per chunk ``{"request_id", "op": "chunk", "name", "file", "chunk", "chunks",
  "size", "sha256", "data": base64}``; on a refusal ``{"request_id", "error": "..."}``.

The topics fit the example ACL's model: only an operator may publish under
``<prefix>/cmd/``, which the device may read; the device writes one level
below its prefix.

Chunks are small (48 KiB of file each) so a pull never holds a whole capture
in a broker queue, and each file carries its SHA-256 so a puller can tell a
complete file from a damaged one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CAPTURE_SCHEMA = "vigil.capture/1"
REQUEST_TOPIC = "cmd/captures"
REPLY_TOPIC = "captures"
REQUEST_QOS = 1
CHUNK_BYTES = 48 * 1024
SUFFIXES = (".npy", ".json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_name(name: object) -> bool:
    """A capture name is one path component of safe characters (never ``..`` or a slash)."""
    return isinstance(name, str) and bool(_NAME.match(name)) and ".." not in name


def capture_name(stamp: str, event_id: str) -> str:
    """``<UTC stamp>_<event id>`` with unsafe characters replaced (sorts by time)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", f"{stamp}_{event_id}")[:120]
    return safe.strip("-") or "capture"


def request_topic(prefix: str) -> str:
    return f"{prefix}/{REQUEST_TOPIC}"


def reply_topic(prefix: str) -> str:
    return f"{prefix}/{REPLY_TOPIC}"


def parse_request(payload: bytes) -> tuple[str, str, str | None]:
    """``(request_id, op, name)`` of a request; ValueError (one line) for anything else."""
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("request is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("request is not a JSON object")
    request_id, op, name = message.get("request_id"), message.get("op"), message.get("name")
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ValueError("request_id must be 1-64 letters, digits, _ or -")
    if op not in ("list", "get"):
        raise ValueError(f"op must be list or get, got {op!r}")
    if op == "get" and not valid_name(name):
        raise ValueError(f"name {name!r} is not a capture name")
    return request_id, str(op), name if op == "get" else None


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def chunk_messages(request_id: str, name: str, file: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The chunk messages of one file, made one at a time (one empty chunk for an empty file)."""
    digest = hashlib.sha256(data).hexdigest()
    chunks = max(1, -(-len(data) // CHUNK_BYTES))
    for i in range(chunks):
        piece = data[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]
        yield {"request_id": request_id, "op": "chunk", "name": name, "file": file, "chunk": i, "chunks": chunks,
               "size": len(data), "sha256": digest, "data": base64.b64encode(piece).decode("ascii")}


@dataclass
class FileAssembly:
    """Chunks of one file as they arrive (any order, duplicates ignored)."""

    chunks: int
    size: int
    sha256: str
    parts: dict[int, bytes] = field(default_factory=dict)

    def add(self, message: dict[str, Any]) -> None:
        index = int(message["chunk"])
        if 0 <= index < self.chunks:
            self.parts[index] = base64.b64decode(str(message["data"]), validate=True)

    @property
    def complete(self) -> bool:
        return len(self.parts) == self.chunks

    def data(self) -> bytes:
        """The file's bytes; ValueError when its size or SHA-256 is not the announced one."""
        blob = b"".join(self.parts[i] for i in range(self.chunks))
        if len(blob) != self.size or hashlib.sha256(blob).hexdigest() != self.sha256:
            raise ValueError("size or SHA-256 differs from what the device announced")
        return blob
