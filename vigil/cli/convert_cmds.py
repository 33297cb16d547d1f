"""``vigil convert`` and ``vigil verify`` (options only; bodies import lazily; both need the train extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vigil.cli.common import load_extra, one_line_errors


def convert(
    run: Path = typer.Argument(..., help="Run directory written by vigil train."),
    out: Path = typer.Option(..., "--out", help="Bundle file to write (NAME.vigil); NAME.conversion.json goes next to "
        "it."),
    quantize: str = typer.Option("auto", "--quantize", help="auto, or one or more (comma-separated) of float32, "
        "float16, dynamic, int8, int8-weights."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Normal data for int8 calibration (default: "
        "the run's training rows)."),
    prefer: str = typer.Option("latency", "--prefer", help="latency: the smallest passing mode within 1.5x of "
        "float32's latency; size: the smallest passing mode."),
    force: bool = typer.Option(False, "--force", help="Write the bundle even if parity fails."),
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorFlow's and the TFLite runtime's own log lines."),
    sign_key: Optional[Path] = typer.Option(None, "--sign-key", help="Sign the bundle with this private key file "
        "from `vigil keys new` (same as `vigil sign` afterwards)."),
) -> None:
    """Convert a trained run to a parity-checked .vigil bundle."""
    _run_convert(run, out, quantize, calibration, prefer, force, verbose, sign_key)


@one_line_errors("convert")
def _run_convert(run: Path, out: Path, quantize: str, calibration: Optional[Path], prefer: str, force: bool,
                 verbose: bool = False, sign_key: Optional[Path] = None) -> None:
    # The key is read before the conversion: a wrong path costs seconds, not a whole conversion.
    signing_key = _read_signing_key(sign_key)
    mod = load_extra("convert", "train", "converter.convert")
    cfg = mod.ConvertConfig(run=run, out=out, quantize=quantize.strip().lower(), calibration=calibration,
                            prefer=prefer.strip().lower(), force=force, verbose=verbose)
    result = mod.run_convert(cfg, echo=typer.echo)
    if signing_key is not None:
        from vigil.cli.keys_cmds import sign_bundle_file

        sign_bundle_file(result.bundle_path, signing_key)


def _read_signing_key(path: Optional[Path]) -> Any:
    if path is None:
        return None
    from edge_agent.signing import read_key_file

    return read_key_file(path)


def verify(
    bundle: Path = typer.Argument(..., help="The .vigil bundle."),
    run: Path = typer.Argument(..., help="The run directory it was converted from."),
    data: Path = typer.Argument(..., help="Data file (CSV/TXT/NPY/WAV) whose windows are compared."),
    rows: Optional[str] = typer.Option(None, "--rows", help="START:END data rows (0-based, END exclusive)."),
    max_windows: int = typer.Option(2000, "--max-windows", min=1, help="Compare at most this many windows (spread "
        "evenly)."),
) -> None:
    """Check that a bundle scores DATA like the run's Keras model (exit 1 if not)."""
    _run_verify(bundle, run, data, rows, max_windows)


@one_line_errors("verify")
def _run_verify(bundle: Path, run: Path, data: Path, rows: Optional[str], max_windows: int) -> None:
    from edge_agent.readers import parse_rows

    row_range = parse_rows(rows)
    mod = load_extra("verify", "train", "converter.verify")
    mod.run_verify(bundle, run, data, rows=row_range, max_windows=max_windows, echo=typer.echo)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("convert")(convert)
    app.command("verify")(verify)
