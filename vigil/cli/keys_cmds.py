"""``vigil keys new`` and ``vigil sign``: ed25519 keys and signed bundles (edge_agent.signing)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vigil.cli.common import one_line_errors

if TYPE_CHECKING:
    from edge_agent.signing import SigningKey

keys_app = typer.Typer(help="Signing keys for bundles.", no_args_is_help=True)


@keys_app.command("new")
@one_line_errors("keys new")
def keys_new(
    path: Path = typer.Argument(..., help="private key file to write (mode 0600); the public key goes to PATH.pub"),
) -> None:
    """Make an ed25519 key pair for `vigil sign` / `vigil convert --sign-key`."""
    from edge_agent.signing import new_signing_key, write_key_file

    key = new_signing_key()
    write_key_file(path, key)
    typer.echo(f"wrote {path} (private: keep it off the devices) and {path}.pub")
    typer.echo(f'device config: [bundle] trusted_keys = ["{key.public_key}"]')


@one_line_errors("sign")
def sign_cmd(
    bundle: Path = typer.Argument(..., help="the .vigil bundle to sign"),
    key: Path = typer.Option(..., "--key", help="private key file from `vigil keys new`"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the signed bundle here (default: in place)"),
) -> None:
    """Add an ed25519 signature over the bundle's manifest and model."""
    from edge_agent.signing import read_key_file

    sign_bundle_file(bundle, read_key_file(key), out)


def sign_bundle_file(bundle: Path, signing_key: SigningKey, out: Optional[Path] = None) -> Path:
    """Check ``bundle``, add the signature and write it to ``out`` (default: in place); says what it did."""
    from edge_agent.bundle import load_bundle, sign_bundle
    from edge_agent.errors import VigilInputError
    from edge_agent.signing import key_id

    load_bundle(bundle)  # size limits and every check before the bytes are touched
    signed = sign_bundle(bundle.read_bytes(), signing_key, str(bundle))
    target = out or bundle
    try:
        _write_atomic(target, signed)
    except OSError as exc:
        raise VigilInputError(f"cannot write signed bundle: {exc.strerror}", file=str(target)) from None
    typer.echo(f"signed {target} with key {key_id(signing_key.public_key)} ({signing_key.public_key})")
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file + fsync + rename: a crash never leaves half a bundle where the good one was."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or Path(".")))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.add_typer(keys_app, name="keys")
    app.command("sign", help="Sign a bundle (ed25519 over manifest and model) with a key from `vigil keys new`.")(
        sign_cmd
    )
