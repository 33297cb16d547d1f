"""``vigil fleet train``: one model per asset of a fleet, in parallel (options only; the body is lazy)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vigil.cli.common import load_extra, one_line_errors

fleet_app = typer.Typer(help="Train a fleet: one model per asset.", no_args_is_help=True)


FLEET_TRAIN_HELP = (
    "Train, evaluate (assets with labels) and convert one model per asset; exit 1 if any asset failed.\n"
    "\n"
    "Each asset runs in a process of its own: its failure is reported (in the summary and in one line here) and "
    "the others go on. Run it again to resume: finished assets (same spec, same data) are skipped, failed ones are "
    "tried again. Writes OUT/<asset>/ (run, eval, bundle, log.txt, result.json), OUT/fleet.json and OUT/fleet.html."
)


@fleet_app.command("train", help=FLEET_TRAIN_HELP)
@one_line_errors("fleet train")
def fleet_train(
    fleet: Path = typer.Argument(..., help="FLEET.toml: one 'asset' table per machine (name, data, columns, rows, "
        "labels, option overrides) and an optional 'defaults' table (training/conversion options for every asset); "
        "see vigil/fleet/spec.py."),
    out: Path = typer.Option(..., "--out", help="Output folder: one folder per asset, fleet.json and fleet.html."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on a Ray cluster: ADDRESS (host:port of its head) or "
        "auto (the cluster this machine belongs to). Needs the fleet extra. Default: a local process pool."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local pool: assets trained at once "
        "(default: one per core)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="TensorFlow threads (Ray: CPUs) per asset "
        "(default: cores / workers locally, 1 on Ray)."),
    only: list[str] = typer.Option([], "--only", help="Only this asset (repeatable)."),
    redo: bool = typer.Option(False, "--redo", help="Train finished assets again (default: skip an asset whose "
        "result is there for the same spec and data)."),
) -> None:
    """Train, evaluate and convert one model per asset (help: FLEET_TRAIN_HELP)."""
    load_extra("fleet train", "train", "trainer.fit")
    from vigil.fleet import train_fleet

    run = train_fleet(fleet, out, workers=workers, ray_address=ray, threads=threads, only=list(only) or None,
                      redo=redo, echo=typer.echo)
    if run.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``fleet`` group to the ``vigil`` app."""
    app.add_typer(fleet_app, name="fleet")
