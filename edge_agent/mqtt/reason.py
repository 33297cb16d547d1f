"""Broker answers and socket errors as one clear line for logs and ``check-config``.

Works on plain integers or on paho's ``ReasonCode`` (anything with ``.value``),
so this module never imports paho. MQTT 3.1.1 CONNACK codes 1..5 arrive from
paho 2 (VERSION2 callbacks) already converted to the MQTT 5 codes 0x84..0x87.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from edge_agent.lean_imports import is_deferred

_MESSAGES = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version (try protocol = \"3.1.1\")",
    0x85: "client identifier not valid",
    0x86: "bad username or password",
    0x87: "not authorized (check username, password and the broker ACL)",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over (another client uses the same client_id)",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9F: "connection rate exceeded",
}

# MQTT 3.1.1 CONNACK return codes, in case a raw code reaches us.
_V3_CONNACK = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}

# Refusals that retrying cannot fix without someone changing the config or broker.
_FATAL = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C}


def code_value(code: Any) -> int:
    """The numeric reason code of a paho ``ReasonCode`` or an int."""
    return int(getattr(code, "value", code))


def describe_reason(code: Any, *, connack_v3: bool = False) -> str:
    """One line for a reason code (``connack_v3``: ``code`` is a raw 3.1.1 CONNACK code)."""
    value = code_value(code)
    if connack_v3:
        value = _V3_CONNACK.get(value, 0x80) if value else 0
    if value < 0x80:
        return "success" if value == 0 else f"reason code {value:#04x}"
    return _MESSAGES.get(value, f"refused with reason code {value:#04x}")


def is_failure(code: Any) -> bool:
    return code_value(code) >= 0x80


def is_fatal_refusal(code: Any) -> bool:
    """True for refusals (credentials, ACL, protocol) a retry cannot fix."""
    return code_value(code) in _FATAL


def describe_exception(exc: BaseException, host: str, port: int) -> str:
    """One line for a failed TCP/TLS connect to ``host:port``."""
    where = f"{host}:{port}"
    # Only a loaded ssl module can have raised a TLS error: a plain-TCP agent keeps OpenSSL out (lean_imports).
    tls_loaded = not is_deferred("ssl")
    if tls_loaded and isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return f"TLS certificate verification failed for {where}: {detail}"
    if tls_loaded and isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where} (is the broker running and listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r}: {exc.strerror or exc}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out connecting to {where}"
    if isinstance(exc, ConnectionResetError):
        return f"connection to {where} reset (TLS listener reached without TLS, or the reverse?)"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"cannot connect to {where}: {type(exc).__name__}: {exc}"
