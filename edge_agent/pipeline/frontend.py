"""The pipeline's front-end stage: clean sample runs in, the model's rows out.

It sits between the sample-quality step and the window buffer
(:class:`edge_agent.pipeline.stream.StreamingPipeline`). The bundle manifest
says which one a model needs:

* ``manifest["frontend"]`` absent or ``{"kind": "raw"}``: the model sees the
  samples themselves (:class:`RawFrontEnd` passes runs through untouched).
* ``{"kind": "spectral", ...}``: the model sees one row of FFT features per
  frame (:class:`SpectralFrontEnd`, features from :mod:`edge_agent.core.spectral`).
  A frame row carries the stream row and timestamp of the frame's last sample,
  so events still name sample rows; a reset (gap) starts a new frame.

Both give the same rows whatever the block sizes (the framer keeps the
samples a frame still needs across blocks).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.core.spectral import Framer, SpectralSpec
from edge_agent.quality import CleanRun


class FrontEnd(Protocol):
    """What the pipeline needs of a front-end."""

    def apply(self, run: CleanRun) -> CleanRun: ...

    def output_rate(self, rate_hz: float | None) -> float | None: ...


class RawFrontEnd:
    """Samples are the model's rows (every bundle made before front-ends existed)."""

    def apply(self, run: CleanRun) -> CleanRun:
        return run

    def output_rate(self, rate_hz: float | None) -> float | None:
        return rate_hz


class SpectralFrontEnd:
    """One row of spectral features per completed frame."""

    def __init__(self, spec: SpectralSpec) -> None:
        self.spec = spec
        self.framer = Framer(spec)
        self.frames = 0

    def apply(self, run: CleanRun) -> CleanRun:
        if run.reset_before:
            self.framer.reset()
        features, ends = self.framer.push(run.values)
        self.frames += len(ends)
        return CleanRun(values=features.astype(np.float32), timestamps=np.asarray(run.timestamps)[ends],
                        reset_before=run.reset_before, rows=np.asarray(run.rows)[ends])

    def output_rate(self, rate_hz: float | None) -> float | None:
        return self.spec.frame_rate(rate_hz)


def frontend_for(bundle: Bundle) -> FrontEnd:
    """The front-end a bundle's model was trained behind."""
    spec = bundle.frontend
    return RawFrontEnd() if spec is None else SpectralFrontEnd(spec)
