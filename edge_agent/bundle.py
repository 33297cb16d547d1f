"""The ``.vigil`` bundle: one file with the TFLite model and everything needed to score.

A bundle is a zip archive with a fixed layout (all entries stored, not
compressed, in this order; the full description is ``converter/FORMAT.md``)::

    FORMAT            b"vigil-bundle/1\\n" (format name and version)
    manifest.json     features, window, scaler, score, threshold, quantization, ...
    manifest.sha256   hex sha256 of the manifest.json bytes
    model.tflite      the TFLite flatbuffer; its sha256 is in the manifest

Loading refuses, with one line naming the file, anything it cannot trust: a
truncated or damaged archive, an unknown format version, a model or manifest
whose hash does not match, or a manifest that is missing a key. Only numpy and
the standard library are used here, so the device can load bundles.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.core import Scaler, WindowSpec
from edge_agent.core.scoring import ScoreFunction
from edge_agent.errors import VigilInputError

BUNDLE_FORMAT = "vigil-bundle/1"
SUPPORTED_FORMATS = (BUNDLE_FORMAT,)
FORMAT_ENTRY = "FORMAT"
MANIFEST_ENTRY = "manifest.json"
MANIFEST_HASH_ENTRY = "manifest.sha256"
MODEL_ENTRY = "model.tflite"
LAYOUT = (FORMAT_ENTRY, MANIFEST_ENTRY, MANIFEST_HASH_ENTRY, MODEL_ENTRY)
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

    @property
    def quantization(self) -> str:
        return str(self.manifest["quantization"]["mode"])

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def timestamp_column(self) -> str | None:
        return self.manifest.get("timestamp_column")


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
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in LAYOUT:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, contents[name])
    return out.getvalue()


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle file; any problem is a one-line VigilInputError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VigilInputError(f"cannot read bundle: {exc.strerror or exc}", file=str(path)) from None
    return parse_bundle(data, str(path))


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
    try:
        manifest = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VigilInputError(f"manifest is not valid JSON: {exc}", file=source) from None
    if not isinstance(manifest, dict) or manifest.get("format") != version:
        raise VigilInputError("manifest format differs from the bundle's FORMAT entry", file=source, key="format")
    model_bytes = entries[MODEL_ENTRY]
    _check_model_hash(manifest, model_bytes, source)
    return _build(manifest, model_bytes, source)


def _read_entries(data: bytes, source: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if tuple(names) != LAYOUT:
                raise VigilInputError(
                    f"not a vigil bundle (entries {names[:6]}, expected {list(LAYOUT)})", file=source
                )
            return {name: archive.read(name) for name in LAYOUT}
    except zipfile.BadZipFile as exc:
        # A truncated file loses the zip directory at its end; a flipped byte
        # inside an entry fails the entry's CRC-32.
        raise VigilInputError(f"truncated or damaged bundle ({exc})", file=source) from None
    except (EOFError, OSError, ValueError) as exc:
        raise VigilInputError(f"truncated or damaged bundle ({exc})", file=source) from None


def _check_model_hash(manifest: dict[str, Any], model_bytes: bytes, source: str) -> None:
    model = manifest.get("model")
    if not isinstance(model, dict) or "sha256" not in model:
        raise VigilInputError("manifest has no model sha256", file=source, key="model.sha256")
    if len(model_bytes) != model.get("bytes") or sha256_hex(model_bytes) != model["sha256"]:
        raise VigilInputError("model hash mismatch: the bundle was modified or damaged", file=source, key="model.sha256")


def _build(manifest: dict[str, Any], model_bytes: bytes, source: str) -> Bundle:
    key = "manifest"
    try:
        key = "features"
        features = [str(name) for name in manifest["features"]]
        if not features:
            raise ValueError("no features")
        key = "window"
        spec = WindowSpec(int(manifest["window"]), int(manifest["hop"]))
        key = "scaler"
        scaler = Scaler.from_dict(manifest["scaler"])
        if scaler.n_features != len(features):
            raise ValueError(f"{scaler.n_features} scaler entries for {len(features)} features")
        key = "threshold.value"
        threshold = float(manifest["threshold"]["value"])
        if not math.isfinite(threshold):
            raise ValueError("not a finite number")
        key = "score.function"
        score_function = ScoreFunction(manifest["score"]["function"]).value
        key = "score.weights"
        weights = _weights(manifest["score"].get("weights"), len(features))
        key = "smoothing.alpha"
        alpha = _alpha(manifest.get("smoothing", {}).get("alpha"))
        key = "quantization.mode"
        str(manifest["quantization"]["mode"])
        key = "io"
        _check_io(manifest["io"], spec, len(features))
        key = "model_id"
        model_id = str(manifest["model_id"])
        key = "sampling_rate_hz"
        rate = manifest.get("sampling_rate_hz")
        rate = None if rate is None else float(rate)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise VigilInputError(f"invalid manifest: {detail}", file=source, key=key) from None
    return Bundle(
        path=source,
        manifest=manifest,
        model_bytes=model_bytes,
        features=features,
        spec=spec,
        scaler=scaler,
        threshold=threshold,
        score_function=score_function,
        weights=weights,
        smoothing_alpha=alpha,
        model_id=model_id,
        sampling_rate_hz=rate,
    )


def _weights(raw: Any, n_features: int) -> list[float] | None:
    if raw is None:
        return None
    weights = [float(w) for w in raw]
    if len(weights) != n_features or any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise ValueError(f"need {n_features} non-negative weights, not all zero")
    return weights


def _alpha(raw: Any) -> float | None:
    if raw is None:
        return None
    alpha = float(raw)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return alpha


def _check_io(io_spec: dict[str, Any], spec: WindowSpec, n_features: int) -> None:
    expected = [1, spec.window, n_features]
    for side in ("input", "output"):
        shape = [int(v) for v in io_spec[side]["shape"]]
        if shape != expected:
            raise ValueError(f"{side} shape {shape}, expected {expected}")
