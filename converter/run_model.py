"""Load a run's Keras model for conversion (TensorFlow imported quietly), shared by the converter and its workers."""

from __future__ import annotations

from typing import Any

from converter.export import quiet
from edge_agent.errors import VigilInputError
from trainer.rundir import RunInfo


def load_run_model(run: RunInfo, verbose: bool = False) -> Any:
    """The run's Keras model (TensorFlow imported quietly); a broken file is a one-line error."""
    from trainer.keras_backend import keras

    with quiet(enabled=not verbose):  # TensorFlow's import-time C++ log lines (CUDA probing, oneDNN notes)
        keras()
    try:
        return run.load_model()
    except (OSError, ValueError, TypeError) as exc:
        raise VigilInputError(f"cannot load the model: {_first_line(exc)}", file=str(run.model_path)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
