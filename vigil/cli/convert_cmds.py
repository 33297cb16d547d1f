"""``vigil convert``, ``vigil verify`` and ``vigil score`` (options only; bodies import lazily).

``convert`` and ``verify`` need the train extra (TensorFlow); ``score`` runs on
the edge extra alone, through the same code the agent runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vigil.cli.common import load_extra, one_line_errors
from edge_agent.errors import VigilInputError


def convert(
    run: Path = typer.Argument(..., help="Run directory written by vigil train."),
    out: Path = typer.Option(..., "--out", help="Bundle file to write (NAME.vigil); NAME.conversion.json goes next to it."),
    quantize: str = typer.Option("auto", "--quantize", help="auto, float32, float16, dynamic, int8 or int8-weights."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Normal data for int8 calibration (default: the run's training rows)."),
    prefer: str = typer.Option("latency", "--prefer", help="auto keeps the fastest passing mode (latency) or the smallest (size)."),
    force: bool = typer.Option(False, "--force", help="Write the bundle even if parity fails."),
) -> None:
    """Convert a trained run to a parity-checked .vigil bundle."""
    _run_convert(run, out, quantize, calibration, prefer, force)


@one_line_errors("convert")
def _run_convert(run: Path, out: Path, quantize: str, calibration: Optional[Path], prefer: str, force: bool) -> None:
    mod = load_extra("convert", "train", "converter.convert")
    cfg = mod.ConvertConfig(run=run, out=out, quantize=quantize.strip().lower(), calibration=calibration,
                            prefer=prefer.strip().lower(), force=force)
    mod.run_convert(cfg, echo=typer.echo)


def verify(
    bundle: Path = typer.Argument(..., help="The .vigil bundle."),
    run: Path = typer.Argument(..., help="The run directory it was converted from."),
    data: Path = typer.Argument(..., help="Data file (CSV/TXT/NPY/WAV) whose windows are compared."),
    rows: Optional[str] = typer.Option(None, "--rows", help="START:END data rows (0-based, END exclusive)."),
    max_windows: int = typer.Option(2000, "--max-windows", min=1, help="Compare at most this many windows (spread evenly)."),
) -> None:
    """Check that a bundle scores DATA like the run's Keras model (exit 1 if not)."""
    _run_verify(bundle, run, data, rows, max_windows)


@one_line_errors("verify")
def _run_verify(bundle: Path, run: Path, data: Path, rows: Optional[str], max_windows: int) -> None:
    from edge_agent.readers import parse_rows

    row_range = parse_rows(rows)
    mod = load_extra("verify", "train", "converter.verify")
    mod.run_verify(bundle, run, data, rows=row_range, max_windows=max_windows, echo=typer.echo)


def score(
    bundle: Path = typer.Argument(..., help="The .vigil bundle."),
    data: Path = typer.Argument(..., help="Data file (CSV/TXT/NPY/WAV)."),
    out: Path = typer.Option(..., "--out", help="scores.csv: row,score,threshold,anomalous[,timestamp]."),
    events: Optional[Path] = typer.Option(None, "--events", help="events.jsonl: one alert payload per event."),
    rows: Optional[str] = typer.Option(None, "--rows", help="START:END data rows (0-based, END exclusive)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="File columns feeding the bundle's features, in order (default: by name)."),
    sensitivity: float = typer.Option(1.0, "--sensitivity", help="Alert when score > threshold x sensitivity."),
    k: int = typer.Option(1, "--k", help="Open an event when k of the last n windows are anomalous."),
    n: int = typer.Option(1, "--n", help="See --k."),
    m: int = typer.Option(1, "--m", help="Close an event after m normal windows in a row."),
    cooldown: int = typer.Option(0, "--cooldown", help="Windows after a close before a new event may open."),
    threads: int = typer.Option(1, "--threads", min=1, help="Interpreter threads."),
) -> None:
    """Score a file offline exactly as the device would (scores.csv, events.jsonl)."""
    _run_score(bundle, data, out, events, rows, columns, sensitivity, k, n, m, cooldown, threads)


@one_line_errors("score")
def _run_score(bundle: Path, data: Path, out: Path, events: Optional[Path], rows: Optional[str],
               columns: Optional[str], sensitivity: float, k: int, n: int, m: int, cooldown: int,
               threads: int) -> None:
    from edge_agent.alerts import AlertPolicy
    from edge_agent.readers import parse_columns, parse_rows

    try:
        policy = AlertPolicy(sensitivity=sensitivity, k=k, n=n, m=m, cooldown=cooldown)
    except ValueError as exc:
        raise VigilInputError(str(exc), key="alert policy") from None
    row_range, names = parse_rows(rows), parse_columns(columns)
    offline = load_extra("score", "edge", "edge_agent.offline")
    result = offline.score_file(bundle, data, rows=row_range, policy=policy, columns=names, num_threads=threads)
    offline.write_scores_csv(result, out)
    if events is not None:
        offline.write_events_jsonl(result, events)
    flagged = int(result.anomalous.sum())
    typer.echo(
        f"scored {len(result.rows)} rows ({result.windows_scored} windows): {flagged} anomalous rows, "
        f"{len(result.events)} events; wrote {out}" + (f" and {events}" if events is not None else "")
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("convert")(convert)
    app.command("verify")(verify)
    app.command("score")(score)
