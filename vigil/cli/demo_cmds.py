"""``vigil demo``: synthetic data -> train -> evaluate -> convert -> agent, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from vigil.cli.common import load_extra, one_line_errors


@one_line_errors("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Directory for the data, run, report, bundle and alerts."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic data and of training."),
) -> None:
    """Run the whole product on synthetic 3-axis vibration data (no network, no broker, a few minutes)."""
    demo_module = load_extra("demo", "train", "vigil.demo")
    summary = demo_module.run_demo(out, seed=seed, echo=typer.echo)
    if summary["agent"]["exit_code"] != 0:
        raise typer.Exit(summary["agent"]["exit_code"])


def register(app: typer.Typer) -> None:
    """Add ``vigil demo`` to the app."""
    app.command("demo")(demo)
