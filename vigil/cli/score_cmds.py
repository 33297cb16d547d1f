"""``vigil score``: what will the device publish for this file? (the agent's own pipeline, offline).

Runs on the edge extra alone. Without ``--config`` the bundle's recommended
alert policy applies; with ``--config agent.toml`` everything in it that
changes what the device publishes (``[alerts]``, ``[quality]``, the device id,
the source's rate and columns) applies too, so ``events.jsonl`` holds the very
payloads, both phases, that the configured agent would send.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import load_extra, one_line_errors


def score(
    bundle: Path = typer.Argument(..., help="The .vigil bundle."),
    data: Path = typer.Argument(..., help="Data file (CSV/TXT/NPY/WAV)."),
    out: Path = typer.Option(..., "--out", help="scores.csv: row,score,threshold,anomalous[,timestamp]."),
    events: Optional[Path] = typer.Option(None, "--events", help="events.jsonl: every alert payload (open and close) "
        "as the agent publishes it."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Agent TOML whose [alerts], [quality], device "
        "id and source rate/columns apply."),
    rows: Optional[str] = typer.Option(None, "--rows", help="START:END data rows (0-based, END exclusive)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="File columns feeding the bundle's features, in "
        "order (default: by name)."),
    sensitivity: Optional[float] = typer.Option(None, "--sensitivity", help="Alert when score > threshold x "
        "sensitivity (overrides the config)."),
    k: Optional[int] = typer.Option(None, "--k", help="Open an event when k of the last n windows are anomalous "
        "(default: the bundle's policy)."),
    n: Optional[int] = typer.Option(None, "--n", help="See --k."),
    m: Optional[int] = typer.Option(None, "--m", help="Close an event after m normal windows in a row."),
    cooldown: Optional[int] = typer.Option(None, "--cooldown",
                                           help="Windows after a close before a new event may open."),
    threads: int = typer.Option(1, "--threads", min=1, help="Interpreter threads."),
) -> None:
    """Score a file offline exactly as the device would (scores.csv, events.jsonl)."""
    overrides = {"sensitivity": sensitivity, "k": k, "n": n, "m": m, "cooldown": cooldown}
    _run_score(bundle, data, out, events, config, rows, columns, overrides, threads)


@one_line_errors("score")
def _run_score(bundle_path: Path, data: Path, out: Path, events: Optional[Path], config_path: Optional[Path],
               rows: Optional[str], columns: Optional[str], overrides: dict[str, Any], threads: int) -> None:
    from edge_agent.readers import parse_columns, parse_rows

    load_extra("score", "edge", "edge_agent.runtime")
    from edge_agent.bundle import load_bundle
    from edge_agent.pipeline import PipelineSettings, replay_file
    from edge_agent.pipeline.replay import write_events_jsonl, write_scores_csv

    bundle = load_bundle(bundle_path)
    row_range, names = parse_rows(rows), parse_columns(columns)
    rate = None
    if config_path is not None:
        from edge_agent.config import check_source_against_bundle, compare_rate, load_config

        config = load_config(config_path, check_bundle=False, check_files=False)
        settings = PipelineSettings.from_config(config, bundle)
        source = config.source
        rate = float(getattr(source, "rate_hz", 0.0) or 0.0) or None  # the sensor's rate judges gaps
        # What the device refuses at check-config is refused here too: replayed at another rate every
        # row looks like a gap, nothing is scored, and "0 events" would pass for an answer.
        if source.kind == "replay":
            compare_rate(rate, bundle, config.path)  # its file is DATA here, not the config's path
            names = names or (list(source.columns) or None)
            row_range = row_range if rows is not None else source.row_slice
        else:
            check_source_against_bundle(config, bundle)  # the sensor's features and rate
    else:
        settings = PipelineSettings.for_bundle(bundle)
    settings = _with_overrides(settings, overrides)
    result = replay_file(bundle, data, settings=settings, rows=row_range, columns=names, num_threads=threads,
                         rate_hz=rate)
    write_scores_csv(result, out)
    if events is not None:
        write_events_jsonl(result.payloads, events)
    flagged = int(result.anomalous.sum())
    faults = sum(1 for p in result.payloads if p.get("kind") == "sensor_fault" and p.get("phase") == "open")
    typer.echo(
        f"scored {len(result.rows)} rows ({result.counters['windows_scored']} windows): {flagged} anomalous rows, "
        f"{len(result.events)} events, {faults} sensor faults; wrote {out}"
        + (f" and {events}" if events is not None else "")
    )


def _with_overrides(settings: Any, overrides: dict[str, Any]) -> Any:
    from edge_agent.alerts import AlertPolicy

    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return settings
    policy = settings.policy
    fields = {"sensitivity": policy.sensitivity, "k": policy.k, "n": policy.n, "m": policy.m,
              "cooldown": policy.cooldown, **given}
    try:
        return replace(settings, policy=AlertPolicy(**fields))
    except ValueError as exc:
        raise VigilInputError(str(exc), key="alert policy") from None


def register(app: typer.Typer) -> None:
    """Add ``vigil score`` to the app."""
    app.command("score")(score)
