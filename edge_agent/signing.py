"""Ed25519 keys and signatures for bundles (PyNaCl, i.e. libsodium).

A hash inside a bundle only proves the bundle is intact, not who made it: a
manifest with the threshold multiplied by 1000 and the hashes recomputed is
intact. A signature by a key the device trusts proves origin. What is signed
is the sha256 of each of ``FORMAT``, ``manifest.json`` and ``model.tflite``
(the exact stored bytes), behind a domain tag so the signature cannot be
replayed for anything else.

PyNaCl was chosen over ``cryptography`` for the device: importing it and
verifying one signature adds about 1 MB resident memory to the agent's
process, ``cryptography`` about 7 MB (``benchmarks/chaos_signing.py``). It is
imported only when a key is used, so a device without trusted keys never
loads it.

Key file (JSON, mode 0600): ``{"format": "vigil-ed25519-key/1",
"private_key": <base64 32-byte seed>, "public_key": "ed25519:<base64>"}``.
A public key is written and configured as the text ``ed25519:<base64>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError

KEY_FORMAT = "vigil-ed25519-key/1"
PUBLIC_PREFIX = "ed25519:"
ALGORITHM = "ed25519"
_DOMAIN = b"vigil-bundle-signature/1\x00"
_MAX_KEY_FILE_BYTES = 4096


@dataclass(frozen=True)
class SigningKey:
    """A private key (32-byte seed) and its public key text."""

    seed: bytes
    public_key: str

    def sign(self, message: bytes) -> bytes:
        return bytes(_nacl_signing().SigningKey(self.seed).sign(message).signature)


def _nacl_signing() -> Any:
    try:
        import nacl.signing
    except ImportError:
        raise VigilInputError("signed bundles need PyNaCl: pip install pynacl") from None
    return nacl.signing


def public_key_text(raw: bytes) -> str:
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def key_id(public_key: str) -> str:
    """A short name for a key in messages: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]


def new_signing_key() -> SigningKey:
    signing = _nacl_signing()
    private = signing.SigningKey.generate()
    return SigningKey(bytes(private.encode()), public_key_text(bytes(private.verify_key.encode())))


def write_key_file(path: str | Path, key: SigningKey) -> Path:
    """Write the private key file (0600, never over an existing file) and ``PATH.pub`` beside it."""
    path = Path(path)
    record = {"format": KEY_FORMAT, "private_key": base64.b64encode(key.seed).decode(), "public_key": key.public_key}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VigilInputError("key file exists already; choose another name", file=str(path)) from None
    except OSError as exc:
        raise VigilInputError(f"cannot write key file: {exc.strerror}", file=str(path)) from None
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=2)
        out.write("\n")
    path.with_name(path.name + ".pub").write_text(key.public_key + "\n")
    return path


def read_key_file(path: str | Path) -> SigningKey:
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_KEY_FILE_BYTES:
            raise VigilInputError("not a vigil key file (too large)", file=str(path))
        record = json.loads(path.read_text())
    except OSError as exc:
        raise VigilInputError(f"cannot read key file: {exc.strerror}", file=str(path)) from None
    except (UnicodeDecodeError, ValueError):
        raise VigilInputError("not a vigil key file (not JSON)", file=str(path)) from None
    if not isinstance(record, dict) or record.get("format") != KEY_FORMAT:
        raise VigilInputError(f"not a vigil key file (format is not {KEY_FORMAT})", file=str(path), key="format")
    seed = _b64(record.get("private_key"), 32)
    if seed is None:
        raise VigilInputError("private_key must be 32 bytes in base64", file=str(path), key="private_key")
    public = public_key_text(bytes(_nacl_signing().SigningKey(seed).verify_key.encode()))
    if record.get("public_key") not in (None, public):
        raise VigilInputError("public_key does not belong to private_key", file=str(path), key="public_key")
    return SigningKey(seed, public)


def parse_public_key(text: Any, where: str = "trusted_keys") -> bytes:
    """``ed25519:<base64>`` -> 32 raw bytes, or a one-line error naming ``where``."""
    raw = _b64(text[len(PUBLIC_PREFIX):], 32) if isinstance(text, str) and text.startswith(PUBLIC_PREFIX) else None
    if raw is None:
        raise VigilInputError(f"not an ed25519 public key (expected '{PUBLIC_PREFIX}<base64 of 32 bytes>')", key=where)
    return raw


def parse_trusted_keys(keys: Iterable[Any]) -> dict[str, bytes]:
    """Public key text -> raw bytes for every configured key (all must parse)."""
    parsed: dict[str, bytes] = {}
    for i, text in enumerate(keys):
        raw = parse_public_key(text, f"trusted_keys[{i}]")
        parsed[public_key_text(raw)] = raw
    return parsed


def signed_message(format_bytes: bytes, manifest_bytes: bytes, model_bytes: bytes) -> bytes:
    parts = (format_bytes, manifest_bytes, model_bytes)
    return _DOMAIN + b"".join(hashlib.sha256(part).digest() for part in parts)


def signature_entry(key: SigningKey, message: bytes) -> bytes:
    """The ``signature.json`` entry for ``message``."""
    record = {
        "algorithm": ALGORITHM,
        "public_key": key.public_key,
        "signature": base64.b64encode(key.sign(message)).decode(),
        "signed": "sha256 of the FORMAT, manifest.json and model.tflite entries",
    }
    return (json.dumps(record, indent=2) + "\n").encode()


def check_signature(entry: bytes | None, message: bytes, trusted: dict[str, bytes]) -> str:
    """Verify ``entry`` over ``message`` by one of ``trusted``; the signer's key text, or a one-line reason."""
    if entry is None:
        raise ValueError("bundle is not signed, but trusted keys are configured")
    try:
        record = json.loads(entry)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("signature entry is not JSON") from None
    if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
        raise ValueError(f"signature entry is not an {ALGORITHM} signature")
    signer = record.get("public_key")
    signature = _b64(record.get("signature"), 64)
    if signature is None:
        raise ValueError("signature must be 64 bytes in base64")
    if not isinstance(signer, str) or signer not in trusted:
        name = key_id(signer) if isinstance(signer, str) else "?"
        raise ValueError(f"signed by key {name}, which is not in trusted_keys")
    signing = _nacl_signing()
    from nacl.exceptions import BadSignatureError

    try:
        signing.VerifyKey(trusted[signer]).verify(message, signature)
    except BadSignatureError:
        raise ValueError("signature does not match: the bundle was changed after it was signed") from None
    return signer


def _b64(text: Any, length: int) -> bytes | None:
    if not isinstance(text, str) or len(text) > 4 * length:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None
