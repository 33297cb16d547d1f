"""``vigil verify BUNDLE RUN DATA``: parity of an existing bundle on a user's file.

The windows of DATA are scored by the run's Keras model (trainer code) and by
the bundle through the device's ``Scorer``, twice in different orders; the
figures and limits are the ones ``vigil convert`` uses for the bundle's mode.
The bundle is scored in a runtime worker process (``converter/isolation.py``),
so an interpreter that crashes on it costs one line, not the command.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converter.convert import ConversionFailed
from converter.isolation import RUNTIME, Isolation, TaskCrashed, TaskFailed
from converter.ops import inspect_model
from converter.parity import ParityResult, Reference, keras_reference
from converter.quantize import ParityLimits, parity_limits
from converter.run_model import load_run_model
from converter.windows import WindowSet, data_windows, evenly
from converter.worker import array_file
from edge_agent.bundle import Bundle, load_bundle
from edge_agent.errors import VigilInputError
from trainer.rundir import RunInfo, read_run

VERIFY_LIMIT = 2000


@dataclass
class VerifyResult:
    bundle: Bundle
    parity: ParityResult
    ops: list[str]


def run_verify(
    bundle_path: str | Path,
    run_dir: str | Path,
    data: str | Path,
    rows: tuple[int | None, int | None] | None = None,
    max_windows: int = VERIFY_LIMIT,
    echo: Callable[[str], None] | None = print,
) -> VerifyResult:
    """Check parity on DATA; raises :class:`ConversionFailed` (exit 1) when it fails."""
    say = echo or (lambda _msg: None)
    bundle = load_bundle(bundle_path)
    run = read_run(run_dir)
    _check_match(bundle, run)
    model = load_run_model(run)
    info = inspect_model(bundle.model_bytes)
    problems = info.problems(bundle.spec.window, bundle.n_features)
    if problems:
        raise ConversionFailed("; ".join(problems), file=str(bundle_path))
    raw = evenly(data_windows(data, run.features, run.spec, rows), max_windows)
    windows = WindowSet(Path(data).name, raw)
    reference = keras_reference(model, windows, run.scaler, run.score_function, run.score_weights)
    limits = parity_limits(bundle.quantization)
    parity = _isolated_parity(Path(bundle_path), bundle.quantization, reference, limits)
    for s in parity.sets:
        say(
            f"{s.name}: {s.n_windows} windows, spearman {s.spearman:.6f} (>= {limits.min_spearman}), "
            f"max |diff| {s.max_abs_diff:.3e}, mean |diff| {s.mean_abs_diff:.3e}, "
            f"flipped {s.flipped} ({s.flipped_share:.3%}, <= {limits.max_flipped:.2%}), "
            f"orders identical: {'yes' if s.order_identical else 'NO'}"
        )
    if not parity.passed:
        raise ConversionFailed("parity failed: " + "; ".join(parity.reasons), file=str(bundle_path))
    say(f"parity passed: {bundle.path} ({bundle.quantization}, ops {', '.join(info.ops)})")
    return VerifyResult(bundle=bundle, parity=parity, ops=info.ops)


def _isolated_parity(bundle_path: Path, mode: str, reference: Reference, limits: ParityLimits) -> ParityResult:
    """The bundle scored by the device interpreter in a worker process: a crash is one line, not exit -11."""
    with tempfile.TemporaryDirectory(prefix="vigil-verify-") as tmp:
        job = Path(tmp)
        np.save(array_file(job, "data"), reference.windows.raw)
        np.save(array_file(job, "data_keras"), reference.keras_scores)
        req = {"task": "verify", "mode": mode, "bundle": str(bundle_path.resolve()), "set": "data",
               "set_title": reference.windows.name, "limits": limits.to_dict()}
        try:
            return ParityResult.from_dict(Isolation(job).call(RUNTIME, req))
        except TaskCrashed as exc:
            raise ConversionFailed(f"{exc.reason} while the device interpreter scored the bundle",
                                   file=str(bundle_path)) from None
        except TaskFailed as exc:
            raise ConversionFailed(f"the device interpreter refused the bundle: {exc.reason}",
                                   file=str(bundle_path)) from None


def _check_match(bundle: Bundle, run: RunInfo) -> None:
    """The bundle must have been made from this run's features and windowing."""
    if bundle.features != run.features:
        raise VigilInputError(
            f"bundle features {bundle.features} differ from the run's {run.features}", file=bundle.path
        )
    if bundle.spec != run.spec:
        raise VigilInputError(
            f"bundle window/hop {bundle.spec.window}/{bundle.spec.hop} differ from the run's "
            f"{run.spec.window}/{run.spec.hop}",
            file=bundle.path,
        )
