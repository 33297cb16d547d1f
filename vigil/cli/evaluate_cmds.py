"""``vigil evaluate``: metrics, plots and an HTML report for a run on labeled data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vigil.cli.common import load_extra, one_line_errors


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``vigil`` app."""
    app.command("evaluate")(evaluate)


@one_line_errors("evaluate")
def evaluate(
    run: Path = typer.Argument(..., help="Run directory written by `vigil train`."),
    data: Path = typer.Argument(..., help="Labeled test data (CSV, TXT, NPY or WAV)."),
    labels: Path = typer.Option(..., "--labels", help="Label file: CSV start,end; Telemanom "
                                "labeled_anomalies.csv / anomaly_sequences.csv; NAB combined_windows.json; "
                                "discord labels.json."),
    rows: Optional[str] = typer.Option(None, "--rows", help="START:END data rows to evaluate (0-based, END "
                                       "exclusive); label ranges stay in file rows."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Telemanom channel id (e.g. P-1)."),
    series: Optional[str] = typer.Option(None, "--series", help="Series key in a JSON label file (NAB "
                                         "'folder/file.csv', discord 'file.txt')."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default RUN/eval)."),
) -> None:
    """Score labeled data with RUN and report LSTM-AE vs IsolationForest metrics and plots."""
    evaluation = load_extra("evaluate", "train", "trainer.evaluate")
    result = evaluation.run_evaluate(run, data, labels, rows=rows, out=out, channel=channel, series=series)
    out_dir = out if out is not None else run / "eval"
    typer.echo(evaluation.summarize(result))
    typer.echo(f"metrics: {out_dir / 'metrics.json'}")
    typer.echo(f"report:  {out_dir / result['report']}")
