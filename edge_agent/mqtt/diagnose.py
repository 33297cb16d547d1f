"""Say what happened when a broker closes the connection before CONNACK.

mosquitto closes a TLS connection without a TLS alert when it rejects the
client certificate (missing, expired, from another CA): the client sees only
"EOF" right after sending CONNECT. From the wire alone that looks like a wrong
port, so we look at what we know locally: was TLS on, is a client certificate
configured, is it within its validity dates (read from the PEM with a tiny DER
walk: no extra dependency), and how long the broker kept us waiting (a hung
broker accepts TCP and never answers).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

from edge_agent.mqtt.settings import MqttSettings

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def early_close(settings: MqttSettings, waited_s: float, now: dt.datetime | None = None) -> str:
    """One line for a connection the broker closed (or never answered) before CONNACK."""
    where = f"{settings.host}:{settings.resolved_port}"
    if waited_s >= settings.connect_timeout_s:
        return (f"{where} accepted the connection but sent no CONNACK for {waited_s:.0f} s "
                "(broker hung, stopped or overloaded?)")
    if settings.tls is None:
        return (f"connection closed by {where} before CONNACK (a TLS-only port reached without TLS, "
                "or the client id was rejected?)")
    cert = settings.tls.cert_file
    if not cert:
        return (f"connection closed by {where} right after the TLS handshake, before CONNACK: the broker "
                "probably requires a client certificate and none is configured (mqtt.tls cert_file/key_file)")
    validity = certificate_validity(Path(cert))
    now = now or dt.datetime.now(dt.timezone.utc)
    if validity is not None:
        not_before, not_after = validity
        if now > not_after:
            return f"client certificate {cert} expired on {not_after:%Y-%m-%d %H:%M} UTC: the broker {where} refused it"
        if now < not_before:
            return (f"client certificate {cert} is not valid before {not_before:%Y-%m-%d %H:%M} UTC "
                    f"(device clock wrong?): the broker {where} refused it")
    return (f"connection closed by {where} right after the TLS handshake, before CONNACK: the broker did not "
            f"accept client certificate {cert} (signed by a CA it does not trust?) or the client id")


def certificate_validity(path: Path) -> tuple[dt.datetime, dt.datetime] | None:
    """(notBefore, notAfter) of the first certificate in a PEM file, or None if it cannot be read."""
    try:
        match = _PEM.search(path.read_bytes())
        if match is None:
            return None
        der = base64.b64decode(b"".join(match.group(1).split()))
        cert = _children(_content(der, 0)[0])
        tbs = _children(cert[0])
        fields = tbs[1:] if tbs[0][0] == 0xA0 else tbs  # skip the explicit [0] version
        validity = _children(fields[3])  # serial, signature algorithm, issuer, validity
        return _time(validity[0]), _time(validity[1])
    except (OSError, ValueError, IndexError):
        return None


def _content(data: bytes, at: int) -> tuple[tuple[int, bytes], int]:
    """The TLV at ``at``: ((tag, value bytes), offset after it)."""
    tag, length, at = data[at], data[at + 1], at + 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4:
            raise ValueError("bad DER length")
        length, at = int.from_bytes(data[at:at + n], "big"), at + n
    if at + length > len(data):
        raise ValueError("truncated DER")
    return (tag, data[at:at + length]), at + length


def _children(node: tuple[int, bytes]) -> list[tuple[int, bytes]]:
    items, at = [], 0
    while at < len(node[1]):
        item, at = _content(node[1], at)
        items.append(item)
    return items


def _time(node: tuple[int, bytes]) -> dt.datetime:
    tag, raw = node
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSS, years 1950-2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime: YYYYMMDDHHMMSS
        raise ValueError("not a certificate time")
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)
