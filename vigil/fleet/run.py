"""The fleet run: skip what is finished, run the rest on the chosen engine, write the summary."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError
from vigil.fleet.job import is_finished, read_result
from vigil.fleet.spec import Asset, load_fleet
from vigil.fleet.summary import counts, write_summary


@dataclass
class FleetRun:
    results: list[dict[str, Any]]
    json_path: Path
    html_path: Path

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") != "ok"]


def _selected(assets: list[Asset], only: list[str] | None, fleet: Path) -> list[Asset]:
    if not only:
        return assets
    names = {a.name for a in assets}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise VigilInputError(f"no asset named {unknown[0]!r} (assets: {', '.join(sorted(names))})", file=str(fleet),
                              key="--only")
    return [a for a in assets if a.name in only]


def progress_line(i: int, n: int, result: dict[str, Any]) -> str:
    name = result.get("asset")
    if result.get("status") != "ok":
        return f"[{i}/{n}] {name} FAILED in {result.get('stage', '?')}: {result.get('error', '?')}"
    bundle = result.get("bundle", {})
    return (f"[{i}/{n}] {name} ok: threshold {result.get('threshold', 0):.4g}, {bundle.get('mode')} bundle "
            f"{bundle.get('bytes', 0) / 1024:.1f} KiB, {result.get('time_s', 0):.1f} s")


def train_fleet(fleet: Path, out: Path, *, workers: int | None = None, ray_address: str | None = None,
                threads: int | None = None, only: list[str] | None = None, redo: bool = False,
                echo: Callable[[str], None] = print) -> FleetRun:
    """Train every asset of ``fleet`` not finished yet into ``out``; failures are reported, never raised."""
    from vigil.fleet.engines import run_local, run_ray

    fleet, out = Path(fleet), Path(out)
    assets = _selected(load_fleet(fleet), only, fleet)
    if workers is not None and workers < 1:
        raise VigilInputError("must be at least 1", key="--workers")
    if threads is not None and threads < 1:
        raise VigilInputError("must be at least 1", key="--threads")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    skipped = [] if redo else [a for a in assets if is_finished(a, out)]
    todo = [a for a in assets if a not in skipped]
    for asset in skipped:
        echo(f"{asset.name}: finished earlier with the same spec and data, skipped (--redo trains it again)")
    finished: dict[str, dict[str, Any]] = {a.name: {**(read_result(out, a.name) or {}), "skipped": True}
                                           for a in skipped}

    def done(result: dict[str, Any]) -> None:
        finished[result["asset"]] = result
        echo(progress_line(len(finished) - len(skipped), len(todo), result))

    cores = os.cpu_count() or 1
    header: dict[str, Any] = {"fleet": str(fleet), "out": str(out)}
    if ray_address is None:
        n_workers = workers or min(len(todo), cores) or 1
        per_asset = threads or max(1, cores // n_workers)
        header.update(engine="local", workers=n_workers, threads_per_asset=per_asset)
        if todo:
            echo(f"training {len(todo)} asset(s) on {n_workers} local worker process(es), {per_asset} thread(s) each")
            run_local(todo, out, workers=n_workers, threads=per_asset, done=done)
    else:
        if workers is not None:
            raise VigilInputError("--workers is for the local pool; Ray runs as many as the cluster has CPUs for",
                                  key="--workers")
        per_asset = threads or 1
        header.update(engine="ray", threads_per_asset=per_asset)
        if todo:
            echo(f"training {len(todo)} asset(s) on the Ray cluster at {ray_address}, {per_asset} CPU(s) each")
            header["ray"] = run_ray(todo, out, address=ray_address, threads=per_asset, done=done)
    header["wall_s"] = round(time.time() - started, 3)
    results = [finished[a.name] for a in assets]
    json_path, html_path = write_summary(out, header, results)
    c = counts(results)
    echo(f"{c['ok']} of {c['assets']} asset(s) ok, {c['failed']} failed; summary {html_path} and {json_path}")
    return FleetRun(results, json_path, html_path)
