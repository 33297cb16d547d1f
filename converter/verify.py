"""``vigil verify BUNDLE RUN DATA``: parity of an existing bundle on a user's file.

The windows of DATA are scored by the run's Keras model (trainer code) and by
the bundle through the device's ``Scorer``, twice in different orders; the
figures and limits are the ones ``vigil convert`` uses for the bundle's mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converter.convert import ConversionFailed
from converter.ops import inspect_model
from converter.parity import ParityResult, check_parity, keras_reference
from converter.quantize import parity_limits
from converter.run_model import load_run_model
from converter.windows import WindowSet, data_windows, evenly
from edge_agent.bundle import Bundle, load_bundle
from edge_agent.errors import VigilInputError
from edge_agent.runtime import Scorer
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
    parity = check_parity(Scorer(bundle), [reference], bundle.threshold, limits, bundle.quantization)
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
