"""Hostile-input-safe parsing and type/range checks of a bundle manifest.

A manifest that passes its hash can still be nonsense (a threshold of 1e308
blinds the device, a hop of 1e9 never scores) or hostile (a 5000-digit
integer, 100,000 nested arrays). Every field the device uses is checked here
for type and range, and the JSON itself is bounded before it is parsed, so any
of these is one ``VigilInputError`` line, never a traceback.

``manifest["detection"]`` is left alone: ``edge_agent.detection.settings``
validates it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from edge_agent.core.scaler import SCALER_KINDS
from edge_agent.core.scoring import ScoreFunction
from edge_agent.core.spectral import FRONTEND_KINDS, MAX_BANDS, MAX_FRAME, MIN_FRAME, RAW_KIND, SpectralSpec
from edge_agent.errors import VigilInputError

MAX_MANIFEST_BYTES = 1 << 20
# model.kind: "autoencoder" (also absent) or the architecture names the converter writes for it
# (lstm, dense); "aer" = edge_agent.core.aer (its score is in its output, read like an autoencoder's).
AUTOENCODER_KIND = "autoencoder"
MODEL_KINDS = (AUTOENCODER_KIND, "lstm", "dense", "aer")
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20  # int64 has 19; anything longer is hostile or broken
MAX_FEATURES = 1024
MAX_WINDOW = 1 << 16
MAX_NAME_CHARS = 256
# Scores are errors of scaled values (minmax: about [0, 1]); a threshold far
# outside this range means the device would never (or always) alert.
MIN_THRESHOLD = 1e-12
MAX_THRESHOLD = 1e6
# Scaled values are float32 on the device: parameters must stay well inside it.
MAX_SCALER_MAGNITUDE = 1e30
MIN_SCALE_MAGNITUDE = 1e-30
MAX_SAMPLING_RATE_HZ = 1e6
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class ManifestError(ValueError):
    """A bad field; ``key`` names it (dotted path)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def parse_manifest_json(data: bytes, source: str) -> Any:
    """``json.loads`` with bounded size, nesting depth and integer length."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise VigilInputError(f"manifest is {len(data)} bytes (limit {MAX_MANIFEST_BYTES})", file=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VigilInputError(f"manifest is not UTF-8: {exc}", file=source) from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise VigilInputError(f"manifest nests {depth} levels deep (limit {MAX_JSON_DEPTH})", file=source)
    try:
        return json.loads(text, parse_int=_bounded_int)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise VigilInputError(f"manifest is not valid JSON: {exc}", file=source) from None


def json_depth(text: str) -> int:
    """Deepest bracket nesting of JSON text (strings ignored); cheap enough for 1 MB."""
    brackets = re.sub(r"[^\[\]{}]", "", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(digits)} digits (limit {MAX_INT_DIGITS})")
    return int(digits)


def check_manifest(manifest: Any) -> None:
    """Raise :class:`ManifestError` naming the first field of the wrong type or out of range."""
    if not isinstance(manifest, dict):
        raise ManifestError("manifest", f"must be a JSON object, not {_kind(manifest)}")
    features = _features(manifest)
    window = _int(manifest, "window", 2, MAX_WINDOW)
    _int(manifest, "hop", 1, window)
    _scaler(_object(manifest, "scaler"), len(features))
    score = _object(manifest, "score")
    if _member(score, "function", "score.function") not in [f.value for f in ScoreFunction]:
        raise ManifestError("score.function", f"must be one of {', '.join(f.value for f in ScoreFunction)}")
    _weights(score.get("weights"), len(features))
    threshold = _object(manifest, "threshold")
    _number(_member(threshold, "value", "threshold.value"), "threshold.value", MIN_THRESHOLD, MAX_THRESHOLD)
    smoothing = manifest.get("smoothing", {})
    if not isinstance(smoothing, dict):
        raise ManifestError("smoothing", f"must be an object, not {_kind(smoothing)}")
    if smoothing.get("alpha") is not None:
        _number(smoothing["alpha"], "smoothing.alpha", 0.0, 1.0, low_open=True)
    _string(_member(_object(manifest, "quantization"), "mode", "quantization.mode"), "quantization.mode", 64)
    _io(_object(manifest, "io"), window, len(features))
    _model(_object(manifest, "model"))
    _string(_member(manifest, "model_id", "model_id"), "model_id", MAX_NAME_CHARS)
    for key in ("timestamp_column", "created"):
        if manifest.get(key) is not None:
            _string(manifest[key], key, MAX_NAME_CHARS)
    if manifest.get("sampling_rate_hz") is not None:
        _number(manifest["sampling_rate_hz"], "sampling_rate_hz", 0.0, MAX_SAMPLING_RATE_HZ, low_open=True)
    if manifest.get("frontend") is not None:
        _frontend(manifest["frontend"], features)


def _frontend(section: Any, features: list[str]) -> None:
    """``frontend``: absent or raw = the model reads samples; spectral = its features are frame features."""
    if not isinstance(section, dict):
        raise ManifestError("frontend", f"must be an object, not {_kind(section)}")
    kind = section.get("kind", RAW_KIND)
    if kind not in FRONTEND_KINDS:
        raise ManifestError("frontend.kind", f"must be one of {', '.join(FRONTEND_KINDS)}, not {_short(kind)}")
    if kind == RAW_KIND:
        return
    frame = _int(section, "frame", MIN_FRAME, MAX_FRAME, key="frontend.frame")
    _int(section, "hop", 1, frame, key="frontend.hop")
    _int(section, "bands", 1, min(MAX_BANDS, frame // 2), key="frontend.bands")
    if not isinstance(section.get("normalise", False), bool):
        raise ManifestError("frontend.normalise", f"must be true or false, not {_short(section['normalise'])}")
    if section.get("window_function", "hann") != "hann":
        raise ManifestError("frontend.window_function", f"must be hann, not {_short(section['window_function'])}")
    if section.get("rate_hz") is not None:
        _number(section["rate_hz"], "frontend.rate_hz", 0.0, MAX_SAMPLING_RATE_HZ, low_open=True)
    inputs = _member(section, "inputs", "frontend.inputs")
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_FEATURES:
        raise ManifestError("frontend.inputs", f"must be a list of 1 to {MAX_FEATURES} names")
    for i, name in enumerate(inputs):
        _string(name, f"frontend.inputs[{i}]", MAX_NAME_CHARS)
    if len(set(inputs)) != len(inputs):
        raise ManifestError("frontend.inputs", "input names must be unique")
    expected = SpectralSpec.from_dict(section).output_names
    if features != expected:
        raise ManifestError("features", f"must be the spectral front-end's {len(expected)} outputs "
                                        f"({', '.join(expected[:3])}, ...), got {len(features)} names")


def _features(manifest: dict[str, Any]) -> list[str]:
    features = _member(manifest, "features", "features")
    if not isinstance(features, list) or not 1 <= len(features) <= MAX_FEATURES:
        raise ManifestError("features", f"must be a list of 1 to {MAX_FEATURES} names")
    for i, name in enumerate(features):
        _string(name, f"features[{i}]", MAX_NAME_CHARS)
    if len(set(features)) != len(features):
        raise ManifestError("features", "feature names must be unique")
    return features


def _scaler(scaler: dict[str, Any], n_features: int) -> None:
    if scaler.get("kind", "minmax") not in SCALER_KINDS:
        raise ManifestError("scaler.kind", f"must be one of {', '.join(SCALER_KINDS)}")
    for part in ("offset", "scale"):
        values = _member(scaler, part, f"scaler.{part}")
        if not isinstance(values, list) or len(values) != n_features:
            raise ManifestError(f"scaler.{part}", f"must be a list of {n_features} numbers (one per feature)")
        for i, value in enumerate(values):
            number = _number(value, f"scaler.{part}[{i}]", -MAX_SCALER_MAGNITUDE, MAX_SCALER_MAGNITUDE)
            if part == "scale" and abs(number) < MIN_SCALE_MAGNITUDE:
                raise ManifestError(f"scaler.scale[{i}]", f"must be non-zero (|scale| >= {MIN_SCALE_MAGNITUDE:g})")


def _weights(raw: Any, n_features: int) -> None:
    if raw is None:
        return
    if not isinstance(raw, list) or len(raw) != n_features:
        raise ManifestError("score.weights", f"must be null or a list of {n_features} numbers")
    weights = [_number(w, f"score.weights[{i}]", 0.0, MAX_SCALER_MAGNITUDE) for i, w in enumerate(raw)]
    if sum(weights) <= 0:
        raise ManifestError("score.weights", "must not all be zero")


def _io(io_spec: dict[str, Any], window: int, n_features: int) -> None:
    expected = [1, window, n_features]
    for side in ("input", "output"):
        tensor = _object(io_spec, side, f"io.{side}")
        shape = _member(tensor, "shape", f"io.{side}.shape")
        if not isinstance(shape, list) or not all(_is_int(v) for v in shape):
            raise ManifestError(f"io.{side}.shape", "must be a list of integers")
        if shape != expected:
            raise ManifestError(f"io.{side}.shape", f"{side} shape {shape}, expected {expected}")
        if "dtype" in tensor:
            _string(tensor["dtype"], f"io.{side}.dtype", 32)


def _model(model: dict[str, Any]) -> None:
    sha = _member(model, "sha256", "model.sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ManifestError("model.sha256", "must be 64 lower-case hex digits")
    _int(model, "bytes", 1, 1 << 40, key="model.bytes")
    kind = model.get("kind", AUTOENCODER_KIND)
    if kind not in MODEL_KINDS:  # decides how the model's output is read: an unknown kind must not load
        raise ManifestError("model.kind", f"must be one of {', '.join(MODEL_KINDS)}, not {_short(kind)}")


# -- primitives ---------------------------------------------------------------------


def _member(obj: dict[str, Any], name: str, key: str) -> Any:
    if name not in obj:
        raise ManifestError(key, f"missing '{name}'")
    return obj[name]


def _object(obj: dict[str, Any], name: str, key: str | None = None) -> dict[str, Any]:
    value = _member(obj, name, key or name)
    if not isinstance(value, dict):
        raise ManifestError(key or name, f"must be an object, not {_kind(value)}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(obj: dict[str, Any], name: str, low: int, high: int, key: str | None = None) -> int:
    value = _member(obj, name, key or name)
    if not _is_int(value):
        raise ManifestError(key or name, f"must be an integer, not {_kind(value)} {_short(value)}")
    if not low <= value <= high:
        raise ManifestError(key or name, f"{value} is out of range [{low}, {high}]")
    return int(value)


def _number(value: Any, key: str, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(key, f"must be a number, not {_kind(value)} {_short(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ManifestError(key, f"must be finite, not {number}")
    if number < low or number > high or (low_open and number <= low):
        bracket = "(" if low_open else "["
        raise ManifestError(key, f"{number:g} is out of range {bracket}{low:g}, {high:g}]")
    return number


def _string(value: Any, key: str, max_chars: int) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(key, f"must be a non-empty string, not {_kind(value)} {_short(value)}")
    if len(value) > max_chars or not value.isprintable():
        raise ManifestError(key, f"must be printable and at most {max_chars} characters")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
