"""``vigil train --features spectral``: train the autoencoder on frame features instead of samples.

The raw rows are turned into one row of spectral features per frame
(:mod:`edge_agent.core.spectral`, the device's own code) before anything else
sees them; from then on the trainer runs unchanged on the frame table: the
scaler, windows (``--window`` / ``--hop`` count frames), threshold and
detection settings are all in frames. What the run records for the device:

* ``run.json["frontend"]``: the spectral parameters (the converter copies
  them into the manifest; the pipeline builds its front-end from them);
* ``run.json["sampling_rate_hz"]``: the *sample* rate (what the source
  delivers and the agent's config is checked against);
* ``frontend_raw.npy`` / ``frontend_frames.npy``: a raw excerpt and the frames
  the trainer computed from it, for the converter's front-end parity check.

The sensor-health checks judge raw samples against per-feature training
statistics; the trainer's statistics here are of frame features, so a
spectral run ships none (the device skips those checks for it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core.spectral import SpectralSpec, spectral_frames
from edge_agent.errors import VigilInputError
from edge_agent.readers import Table

FEATURE_KINDS = ("raw", "spectral")
# The trainer's sample-window defaults; a spectral run replaces them by frame-window ones.
SAMPLE_WINDOW_DEFAULTS = (128, 4)
SPECTRAL_WINDOW = 16  # frames: with hop = frame / 2 about 8 frame lengths of signal
# A window every 4th frame (every 256 ms at 1 kHz: once per 0.25 s read of the agent). Measured against
# a window per frame (benchmarks/results/vibration.md, spectral_cpu.md): the same detection on the
# bearing rig (33/36 fault files at the 1% budget, no normal-file event; more fault files with an event)
# and on the demo data (4/4 faults, no false event), for a quarter of the invokes (agent 0.97 -> 0.73%).
SPECTRAL_HOP = 4
DEFAULT_BANDS = 12
FRAME_SECONDS = 0.128  # aim: ~8 Hz FFT resolution; at least MIN_DEFAULT_FRAME samples
MIN_DEFAULT_FRAME = 64
MAX_DEFAULT_FRAME = 2048
UNKNOWN_RATE_FRAME = 128
RAW_EXCERPT_FRAMES = 64
RAW_FILE = "frontend_raw.npy"
FRAMES_FILE = "frontend_frames.npy"


def default_frame(rate_hz: float | None) -> int:
    """A power of two near ``FRAME_SECONDS`` of samples, within [64, 2048]."""
    if rate_hz is None or not np.isfinite(rate_hz) or rate_hz <= 0:
        return UNKNOWN_RATE_FRAME
    wanted = max(rate_hz * FRAME_SECONDS, 1.0)
    return int(np.clip(2 ** round(np.log2(wanted)), MIN_DEFAULT_FRAME, MAX_DEFAULT_FRAME))


def spectral_spec_for(table: Table, options: dict[str, Any] | None = None) -> SpectralSpec:
    """The spectral parameters for ``table``: ``options`` (frame, hop, bands, normalise) over the defaults."""
    opts = dict(options or {})
    frame = int(opts.get("frame") or default_frame(table.sampling_rate_hz))
    hop = int(opts.get("hop") or max(frame // 2, 1))
    bands = int(opts.get("bands") or min(DEFAULT_BANDS, frame // 2))
    try:
        return SpectralSpec(frame=frame, hop=hop, bands=bands, normalise=bool(opts.get("normalise", True)),
                            inputs=tuple(table.names), rate_hz=table.sampling_rate_hz)
    except ValueError as exc:
        raise VigilInputError(f"spectral front-end: {exc}", key="features") from None


def frame_table(table: Table, spec: SpectralSpec) -> Table:
    """The table of frame features: one row per complete frame, at the frame's last sample."""
    # float32 samples, as every source hands them to the device's front-end: the same frames bit for bit.
    values, ends = spectral_frames(np.asarray(table.values, dtype=np.float32), spec)
    if len(values) < 2:
        raise VigilInputError(f"has {table.n_rows} rows: too few for spectral frames of {spec.frame} samples "
                              f"(hop {spec.hop})", file=table.source)
    stamps = None if table.timestamps is None else np.asarray(table.timestamps)[ends]
    return Table(values=values, names=spec.output_names, timestamps=stamps, timestamp_column=table.timestamp_column,
                 sampling_rate_hz=spec.frame_rate(table.sampling_rate_hz), source=table.source,
                 row_offset=table.row_offset)


def spectral_config(cfg: Any) -> Any:
    """``cfg`` with frame-window defaults when the sample-window defaults were left as they are."""
    if (cfg.window, cfg.hop) != SAMPLE_WINDOW_DEFAULTS:
        return cfg
    cfg.echo(f"spectral features: window {SPECTRAL_WINDOW} frames, hop {SPECTRAL_HOP} (--window/--hop count frames)")
    return replace(cfg, window=SPECTRAL_WINDOW, hop=SPECTRAL_HOP)


def check_features(kind: str, labels: Any) -> None:
    if kind not in FEATURE_KINDS:
        raise VigilInputError(f"--features must be raw or spectral, not {kind!r}", key="features")
    if kind == "spectral" and labels is not None:
        raise VigilInputError("--labels (label rows) cannot be used with --features spectral yet: labels name "
                              "sample rows, the spectral model scores frames", key="labels")


def spectral_input(cfg: Any, table: Table) -> tuple[Any, Table, SpectralSpec | None, Table | None]:
    """``(cfg, table the trainer fits on, spectral spec or None, the raw table)`` for ``cfg.features``."""
    kind = str(getattr(cfg, "features", "raw")).strip().lower()
    check_features(kind, cfg.labels)
    if kind == "raw":
        return cfg, table, None, None
    spec = spectral_spec_for(table, getattr(cfg, "frontend", None))
    frames = frame_table(table, spec)
    cfg.echo(f"spectral front-end: {frames.n_rows} frames of {spec.frame} samples (hop {spec.hop}), "
             f"{spec.bands} log bands{' (level-normalised)' if spec.normalise else ''} + rms, kurtosis, crest "
             f"per axis = {spec.n_outputs} features")
    return spectral_config(cfg), frames, spec, table


def finish_meta(meta: dict[str, Any], spec: SpectralSpec | None, raw: Table | None, out: Path) -> None:
    """Record the front-end in ``meta`` and write the parity excerpt (no-op for raw features)."""
    if spec is None or raw is None:
        return
    meta["frontend"] = spec.to_dict()
    meta["sampling_rate_hz"] = raw.sampling_rate_hz
    detection = meta.get("detection")
    if isinstance(detection, dict):
        detection.pop("feature_stats", None)  # frame statistics: the device's sensor checks see samples
    n = min(raw.n_rows, spec.frame + (RAW_EXCERPT_FRAMES - 1) * spec.hop)
    excerpt = np.asarray(raw.values[:n], dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / RAW_FILE, excerpt)
    np.save(out / FRAMES_FILE, spectral_frames(excerpt, spec)[0])
