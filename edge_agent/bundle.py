"""The ``.vigil`` bundle: one file with the TFLite model and everything needed to score.

A bundle is a zip archive with a fixed layout (all entries stored, not
compressed, in this order; the full description is ``converter/FORMAT.md``)::

    FORMAT            b"vigil-bundle/1\\n" (format name and version)
    manifest.json     features, window, scaler, score, threshold, quantization, ...
    manifest.sha256   hex sha256 of the manifest.json bytes
    model.tflite      the TFLite flatbuffer; its sha256 is in the manifest
    signature.json    optional: ed25519 signature (edge_agent.signing)

Loading refuses, with one line naming the file, anything it cannot trust: a
truncated or damaged archive, an unknown format version, a model or manifest
whose hash does not match, a manifest field of the wrong type or out of range
(edge_agent.manifest_checks), and hostile archives: a compressed or oversized
entry is refused from the zip directory, before anything is inflated or read.
With trusted keys, :func:`verify_bundle_signature` refuses an unsigned or
wrongly signed bundle. Only numpy and the standard library are used here (PyNaCl
only when a signature is checked), so the device can load bundles.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import signing
from edge_agent.core import Scaler, WindowSpec
from edge_agent.core.scoring import ScoreFunction
from edge_agent.core.spectral import RAW_KIND, SPECTRAL_KIND, SpectralSpec
from edge_agent.errors import VigilInputError
from edge_agent.manifest_checks import MAX_MANIFEST_BYTES, ManifestError, check_manifest, parse_manifest_json

BUNDLE_FORMAT = "vigil-bundle/1"
SUPPORTED_FORMATS = (BUNDLE_FORMAT,)
FORMAT_ENTRY = "FORMAT"
MANIFEST_ENTRY = "manifest.json"
MANIFEST_HASH_ENTRY = "manifest.sha256"
MODEL_ENTRY = "model.tflite"
SIGNATURE_ENTRY = "signature.json"
LAYOUT = (FORMAT_ENTRY, MANIFEST_ENTRY, MANIFEST_HASH_ENTRY, MODEL_ENTRY)
SIGNED_LAYOUT = (*LAYOUT, SIGNATURE_ENTRY)
MAX_MODEL_BYTES = 64 << 20
# Read from the zip directory before anything is read: a bigger (or compressed)
# entry is refused, so a zip bomb never inflates (the unit allows 256 MB).
ENTRY_LIMITS = {
    FORMAT_ENTRY: 64,
    MANIFEST_ENTRY: MAX_MANIFEST_BYTES,
    MANIFEST_HASH_ENTRY: 256,
    MODEL_ENTRY: MAX_MODEL_BYTES,
    SIGNATURE_ENTRY: 4096,
}
MAX_BUNDLE_BYTES = sum(ENTRY_LIMITS.values()) + (64 << 10)
# The archive's member timestamps carry no meaning (the manifest has "created");
# a fixed one keeps two packs of the same content byte-identical.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle."""

    path: str
    manifest: dict[str, Any] = field(repr=False)
    model_bytes: bytes = field(repr=False)
    features: list[str]
    spec: WindowSpec
    scaler: Scaler
    threshold: float
    score_function: str
    weights: list[float] | None
    smoothing_alpha: float | None
    model_id: str
    sampling_rate_hz: float | None
    # The exact stored bytes a signature covers, and the signature entry (None: unsigned).
    format_bytes: bytes = field(default=b"", repr=False)
    manifest_bytes: bytes = field(default=b"", repr=False)
    signature: bytes | None = field(default=None, repr=False)

    @property
    def quantization(self) -> str:
        return str(self.manifest["quantization"]["mode"])

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def model_kind(self) -> str:
        """``manifest["model"]["kind"]``: autoencoder (also when absent), lstm / dense (autoencoders) or aer."""
        return str(self.manifest.get("model", {}).get("kind", "autoencoder"))

    @property
    def timestamp_column(self) -> str | None:
        return self.manifest.get("timestamp_column")

    @property
    def frontend(self) -> SpectralSpec | None:
        """``manifest["frontend"]`` when spectral: the model's rows are frame features (None: raw samples)."""
        section = self.manifest.get("frontend")
        if not isinstance(section, dict) or section.get("kind", RAW_KIND) != SPECTRAL_KIND:
            return None
        return SpectralSpec.from_dict(section)

    @property
    def input_features(self) -> list[str]:
        """The sensor columns the bundle reads: the front-end's inputs, else the model's features."""
        spec = self.frontend
        return list(self.features) if spec is None else list(spec.inputs)

    @property
    def detection(self) -> dict[str, Any] | None:
        """``manifest["detection"]``: recommended alert policy, dynamic threshold, sensor health (or None)."""
        section = self.manifest.get("detection")
        return section if isinstance(section, dict) else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_bundle(manifest: dict[str, Any], model_bytes: bytes) -> bytes:
    """Serialize a manifest and model into bundle bytes (the one writer of the layout)."""
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
    contents = {
        FORMAT_ENTRY: (str(manifest["format"]) + "\n").encode(),
        MANIFEST_ENTRY: manifest_bytes,
        MANIFEST_HASH_ENTRY: (sha256_hex(manifest_bytes) + "\n").encode(),
        MODEL_ENTRY: bytes(model_bytes),
    }
    return _write_entries(contents)


def _write_entries(contents: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in contents:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, contents[name])
    return out.getvalue()


def sign_bundle(data: bytes, key: signing.SigningKey, source: str = "<bundle>") -> bytes:
    """Bundle bytes with ``signature.json`` added (or replaced); the other entries keep their exact bytes."""
    bundle = parse_bundle(data, source)
    message = signing.signed_message(bundle.format_bytes, bundle.manifest_bytes, bundle.model_bytes)
    entries = _read_entries(data, source)
    entries[SIGNATURE_ENTRY] = signing.signature_entry(key, message)
    return _write_entries({name: entries[name] for name in SIGNED_LAYOUT})


def verify_bundle_signature(bundle: Bundle | bytes, trusted_keys: Any) -> str | None:
    """Refuse (one-line VigilInputError) an unsigned or wrongly signed bundle when keys are trusted.

    ``trusted_keys``: the ``[bundle] trusted_keys`` list of ``ed25519:<base64>``
    texts; empty or None means signatures are not required (returns None).
    Returns the signer's public key text when a signature was checked.
    """
    if not trusted_keys:
        return None
    if isinstance(trusted_keys, str):
        trusted_keys = [trusted_keys]
    trusted = signing.parse_trusted_keys(trusted_keys)
    if not isinstance(bundle, Bundle):
        bundle = parse_bundle(bytes(bundle))
    message = signing.signed_message(bundle.format_bytes, bundle.manifest_bytes, bundle.model_bytes)
    try:
        return signing.check_signature(bundle.signature, message, trusted)
    except ValueError as exc:
        raise VigilInputError(f"refused: {exc}", file=bundle.path, key="bundle.trusted_keys") from None


def load_bundle(path: str | Path, trusted_keys: Any = None) -> Bundle:
    """Read and verify a bundle file (and its signature when keys are trusted); errors are one line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise VigilInputError(f"bundle is {size} bytes (limit {MAX_BUNDLE_BYTES})", file=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise VigilInputError(f"cannot read bundle: {exc.strerror or exc}", file=str(path)) from None
    bundle = parse_bundle(data, str(path))
    verify_bundle_signature(bundle, trusted_keys)
    return bundle


def parse_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Verify bundle bytes (layout, version, hashes, manifest) and build a :class:`Bundle`."""
    entries = _read_entries(data, source)
    version = entries[FORMAT_ENTRY].decode("utf-8", "replace").strip()
    if version not in SUPPORTED_FORMATS:
        raise VigilInputError(
            f"unknown bundle format {version!r}; this vigil reads {', '.join(SUPPORTED_FORMATS)}",
            file=source,
        )
    manifest_bytes = entries[MANIFEST_ENTRY]
    if entries[MANIFEST_HASH_ENTRY].decode("ascii", "replace").strip() != sha256_hex(manifest_bytes):
        raise VigilInputError("manifest hash mismatch: the bundle was modified or damaged", file=source)
    manifest = parse_manifest_json(manifest_bytes, source)
    if not isinstance(manifest, dict) or manifest.get("format") != version:
        raise VigilInputError("manifest format differs from the bundle's FORMAT entry", file=source, key="format")
    model_bytes = entries[MODEL_ENTRY]
    _check_model_hash(manifest, model_bytes, source)
    try:
        check_manifest(manifest)
    except ManifestError as exc:
        raise VigilInputError(f"invalid manifest: {exc}", file=source, key=exc.key) from None
    return _build(manifest, entries, source)


def _read_entries(data: bytes, source: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = tuple(info.filename for info in infos)
            if names not in (LAYOUT, SIGNED_LAYOUT):
                raise VigilInputError(
                    f"not a vigil bundle (entries {list(names[:6])}, expected {list(LAYOUT)})", file=source
                )
            for info in infos:
                _check_entry_before_reading(info, source)
            return {info.filename: archive.read(info) for info in infos}
    except zipfile.BadZipFile as exc:
        # A truncated file loses the zip directory at its end; a flipped byte
        # inside an entry fails the entry's CRC-32.
        raise VigilInputError(f"truncated or damaged bundle ({exc})", file=source) from None
    except VigilInputError:
        raise
    except Exception as exc:
        # zipfile raises many kinds on hostile headers (NotImplementedError for
        # unknown flag bits, RuntimeError for "encrypted", struct.error, EOFError):
        # whichever it is, the archive is damaged.
        raise VigilInputError(f"truncated or damaged bundle ({type(exc).__name__}: {exc})", file=source) from None


def _check_entry_before_reading(info: zipfile.ZipInfo, source: str) -> None:
    """Refuse from the directory alone what would be costly to read: compressed or oversized entries."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise VigilInputError(
            f"entry {info.filename} is compressed (method {info.compress_type}); bundle entries are stored",
            file=source,
        )
    limit = ENTRY_LIMITS[info.filename]
    if info.file_size > limit or info.compress_size != info.file_size:
        raise VigilInputError(
            f"entry {info.filename} declares {info.file_size} bytes (limit {limit}, stored {info.compress_size})",
            file=source,
        )


def _check_model_hash(manifest: dict[str, Any], model_bytes: bytes, source: str) -> None:
    model = manifest.get("model")
    if not isinstance(model, dict) or "sha256" not in model:
        raise VigilInputError("manifest has no model sha256", file=source, key="model.sha256")
    if len(model_bytes) != model.get("bytes") or sha256_hex(model_bytes) != model["sha256"]:
        raise VigilInputError("model hash mismatch: the bundle was modified or damaged",
                              file=source, key="model.sha256")


def _build(manifest: dict[str, Any], entries: dict[str, bytes], source: str) -> Bundle:
    """The Bundle of a manifest that passed :func:`check_manifest` (types and ranges are known good)."""
    features = [str(name) for name in manifest["features"]]
    try:
        spec = WindowSpec(int(manifest["window"]), int(manifest["hop"]))
        scaler = Scaler.from_dict(manifest["scaler"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VigilInputError(f"invalid manifest: {exc}", file=source, key="window") from None
    weights = manifest["score"].get("weights")
    alpha = manifest.get("smoothing", {}).get("alpha")
    rate = manifest.get("sampling_rate_hz")
    return Bundle(
        path=source,
        manifest=manifest,
        model_bytes=entries[MODEL_ENTRY],
        features=features,
        spec=spec,
        scaler=scaler,
        threshold=float(manifest["threshold"]["value"]),
        score_function=ScoreFunction(manifest["score"]["function"]).value,
        weights=None if weights is None else [float(w) for w in weights],
        smoothing_alpha=None if alpha is None else float(alpha),
        model_id=str(manifest["model_id"]),
        sampling_rate_hz=None if rate is None else float(rate),
        format_bytes=entries[FORMAT_ENTRY],
        manifest_bytes=entries[MANIFEST_ENTRY],
        signature=entries.get(SIGNATURE_ENTRY),
    )
