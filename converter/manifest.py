"""Build the bundle manifest from a run, a converted model and its checks.

Every key is described in ``converter/FORMAT.md``; ``edge_agent.bundle``
is the reader and refuses a manifest that lacks what the device needs.
"""

from __future__ import annotations

import datetime as dt
import platform
from importlib import metadata
from typing import Any

from converter.ops import ModelInfo
from converter.quantize import MODE_DESCRIPTIONS
from edge_agent.bundle import BUNDLE_FORMAT, MODEL_ENTRY, Bundle, pack_bundle, parse_bundle, sha256_hex
from trainer.rundir import RunInfo


def library_versions() -> dict[str, str]:
    """Versions of what made the bundle (missing packages are left out)."""
    versions = {"python": platform.python_version()}
    for dist in ("vigil-edge", "tensorflow", "tf-keras", "numpy", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_id(run: RunInfo, sha256: str) -> str:
    """Run directory name plus the start of the model hash: readable and unique per model."""
    name = run.path.resolve().name or "model"
    return f"{name}-{sha256[:12]}"


def build_manifest(
    run: RunInfo,
    mode: str,
    model_bytes: bytes,
    info: ModelInfo,
    quantization_details: dict[str, Any],
    conversion: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of one bundle (JSON-ready)."""
    sha = sha256_hex(model_bytes)
    meta = run.meta
    threshold = dict(meta["threshold"])
    threshold["value"] = float(threshold["value"])
    threshold.setdefault("strategy", "unknown")
    model_meta = meta.get("model", {}) or {}
    shape = run.model_shape
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "model_id": model_id(run, sha),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "features": run.features,
        "timestamp_column": meta.get("timestamp_column"),
        "sampling_rate_hz": meta.get("sampling_rate_hz"),
        "window": run.spec.window,
        "hop": run.spec.hop,
        "scaler": run.scaler.to_dict(),
        "score": {"function": run.score_function, "weights": run.score_weights},
        "threshold": threshold,
        "smoothing": {"alpha": run.smoothing_alpha},
        "quantization": {
            "mode": mode,
            "description": MODE_DESCRIPTIONS[mode],
            "details": quantization_details,
        },
        "io": {side: _io_entry(info.io[side]) for side in ("input", "output")},
        "ops": info.op_counts,
        "model": {
            "file": MODEL_ENTRY,
            "sha256": sha,
            "bytes": len(model_bytes),
            "kind": shape.kind,
            "units": list(shape.units),
            "layers": shape.layers,
            "center": shape.center,
            "loss": model_meta.get("loss"),
            "batch_size": 1,
        },
        "source_run": {
            "path": str(run.path.resolve()),
            "created": meta.get("created"),
            "seed": meta.get("seed"),
            "versions": meta.get("versions"),
        },
        "conversion": conversion,
        "versions": library_versions(),
    }
    detection = run.detection
    if detection is not None:  # the trainer's settings, verbatim (contract in the team brief)
        manifest["detection"] = detection
    frontend = meta.get("frontend")
    if frontend is not None:  # the model's rows are frames of this front-end (trainer.spectral_train)
        from trainer.spectral_parity import frontend_parity

        manifest["frontend"] = {**frontend, "parity": frontend_parity(run.path, frontend)}
    skill = run.skill_ratio
    if skill is not None:
        manifest["training"] = {"skill_ratio": skill}
    return manifest


def bundle_for(run: RunInfo, mode: str, model_bytes: bytes, info: ModelInfo, notes: list[str]) -> Bundle:
    """Pack and re-load through the device's loader: parity runs on what the device will read."""
    manifest = build_manifest(run, mode, model_bytes, info, {"notes": notes}, {})
    return parse_bundle(pack_bundle(manifest, model_bytes), f"<{mode} bundle>")


def _io_entry(tensor: dict[str, Any]) -> dict[str, Any]:
    return {
        "shape": tensor["shape"],
        "dtype": tensor["dtype"],
        "quantization": tensor["quantization"],
    }
