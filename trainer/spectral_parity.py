"""Front-end parity: does the device's streaming front-end give the trainer's frames?

The trainer stores a raw excerpt of its training rows and the frame features it
computed from it (``trainer.spectral_train``). The converter replays the excerpt
through the device's front-end (:class:`edge_agent.pipeline.frontend.SpectralFrontEnd`)
in blocks of uneven sizes and compares: the features must agree to float32
precision (they are the same numpy code; this catches a manifest whose
parameters do not describe the frames the model was trained on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core.spectral import SpectralSpec
from edge_agent.errors import VigilInputError
from edge_agent.pipeline.frontend import SpectralFrontEnd
from edge_agent.quality import CleanRun
from trainer.spectral_train import FRAMES_FILE, RAW_FILE

# Block sizes cycled through: a sensor's small reads, a replay's large ones, and sizes that cut frames.
BLOCK_SIZES = (1, 7, 10, 64, 333, 4096)
MAX_ABS_DIFF = 1e-5  # the window buffer holds float32: relative 1e-7 of features of order 1-10


def streamed_frames(raw: np.ndarray, spec: SpectralSpec) -> np.ndarray:
    """The frame features the device computes from ``raw`` read in blocks of :data:`BLOCK_SIZES`."""
    frontend = SpectralFrontEnd(spec)
    out, start, i = [], 0, 0
    while start < len(raw):
        size = BLOCK_SIZES[i % len(BLOCK_SIZES)]
        block = np.asarray(raw[start:start + size], dtype=np.float32)
        rows = np.arange(start, start + len(block), dtype=np.int64)
        run = CleanRun(values=block, timestamps=rows.astype(np.float64), reset_before=False, rows=rows)
        out.append(frontend.apply(run).values)
        start, i = start + size, i + 1
    return np.concatenate(out) if out else np.empty((0, spec.n_outputs), np.float32)


def frontend_parity(run_dir: Path, section: dict[str, Any]) -> dict[str, Any]:
    """Compare the run's stored frames with the device front-end's; refuse (one line) a mismatch."""
    try:
        spec = SpectralSpec.from_dict(section)
        raw = np.load(run_dir / RAW_FILE, allow_pickle=False)
        trained = np.load(run_dir / FRAMES_FILE, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VigilInputError(f"spectral front-end parity: cannot read the run's excerpt ({exc})",
                              file=str(run_dir), key="frontend") from None
    # The device reads float32 samples: the excerpt goes through the same cast.
    device = streamed_frames(np.asarray(raw, np.float32), spec)
    reference = np.asarray(trained, np.float32)
    if device.shape != reference.shape:
        raise VigilInputError(f"spectral front-end parity: the device makes {device.shape[0]} frames of "
                              f"{device.shape[1]} features, the trainer stored {reference.shape}",
                              file=str(run_dir), key="frontend")
    diff = float(np.max(np.abs(device.astype(np.float64) - reference))) if device.size else 0.0
    if not diff <= MAX_ABS_DIFF:
        raise VigilInputError(f"spectral front-end parity failed: max abs feature difference {diff:.3g} "
                              f"(limit {MAX_ABS_DIFF:g})", file=str(run_dir), key="frontend")
    return {"frames": int(device.shape[0]), "max_abs_diff": diff, "limit": MAX_ABS_DIFF,
            "block_sizes": list(BLOCK_SIZES), "passed": True}
