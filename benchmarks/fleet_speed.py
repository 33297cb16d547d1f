"""Fleet training speed: the real series on 1 local worker vs 2 (issue 13 item 4 target: >= 1.7x).

Builds one FLEET.toml holding every series of the quality benchmark (16 discords + NAB
realKnownCause: train rows, labels and evaluation rows as there), then runs
``vigil fleet train`` on it as a user would (a separate process each time, a fresh
output folder, so nothing is skipped as finished) with ``--workers 1`` and
``--workers 2``, interleaved (1, 2, then 2, 1, ... for ``--repeat`` rounds). The pool's own
thread choice applies (cores // workers TensorFlow threads per asset), so both use the
whole machine. Reported: wall seconds per run, their medians and the speedup
(median 1-worker wall / median 2-worker wall), assets ok/failed, and the load average
before each run. ``--epochs`` caps training (the speedup is about the pool, and a
full-default fleet run takes an hour per contender on 2 cores); the cap is written
into the results.

    nice -n 0 .venv/bin/python -m benchmarks.fleet_speed [--epochs 3] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log, md_table, write_results
from benchmarks.datasets import Series, all_series

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "fleet_speed"
COMMAND = ".venv/bin/python -m benchmarks.fleet_speed"


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def asset_block(series: Series) -> str:
    lines = ["[[asset]]", f"name = {_toml_str(series.name)}", f"data = {_toml_str(str(series.path))}"]
    if series.columns:
        lines.append("columns = [" + ", ".join(_toml_str(c) for c in series.columns) + "]")
    lines.append(f'rows = "{series.train_rows[0]}:{series.train_rows[1]}"')
    lines.append(f"labels = {_toml_str(str(series.labels_path))}")
    lines.append(f"series = {_toml_str(series.labels_key)}")
    lines.append(f'eval_rows = "{series.test_rows[0]}:{series.test_rows[1]}"')
    if series.timestamp_column:
        lines.append(f"timestamp_column = {_toml_str(series.timestamp_column)}")
    return "\n".join(lines)


def write_fleet(path: Path, epochs: int | None, quantize: str | None = None) -> int:
    series = all_series()
    defaults = ([f"epochs = {epochs}"] if epochs else []) + ([f"quantize = {_toml_str(quantize)}"] if quantize else [])
    head = "[defaults]\n" + "\n".join(defaults) + "\n\n" if defaults else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "\n\n".join(asset_block(s) for s in series) + "\n")
    return len(series)


def run_once(fleet: Path, workers: int, tag: str) -> dict[str, Any]:
    out = WORK / f"out-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()
    cmd = [str(Path(sys.executable).with_name("vigil")), "fleet", "train", str(fleet), "--out", str(out),
           "--workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    summary_path = out / "fleet.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    results = summary.get("assets", summary.get("results", []))
    ok = sum(1 for r in results if r.get("status") == "ok")
    log(f"workers {workers}: {wall:.1f} s, exit {proc.returncode}, {ok}/{len(results)} ok, load {load[0]:.2f}")
    return {"workers": workers, "wall_s": round(wall, 2), "exit": proc.returncode, "ok": ok,
            "assets": len(results), "load_before": [round(x, 2) for x in load],
            "threads_per_asset": summary.get("threads_per_asset"),
            "stderr_tail": proc.stderr[-400:] if proc.returncode else ""}


def main(epochs: int | None, repeat: int, quantize: str | None = None) -> dict[str, Any]:
    fleet = WORK / "FLEET.toml"
    n_assets = write_fleet(fleet, epochs, quantize)
    runs: list[dict[str, Any]] = []
    for r in range(repeat):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):  # alternate which contender goes first
            runs.append(run_once(fleet, workers, f"w{workers}-{len(runs)}"))
    med = {w: statistics.median(x["wall_s"] for x in runs if x["workers"] == w) for w in (1, 2)}
    speedup = med[1] / med[2] if med[2] else None
    data = {"epochs_cap": epochs, "quantize": quantize or "auto (default)", "assets": n_assets, "runs": runs,
            "median_wall_s": {str(k): v for k, v in med.items()}, "speedup_2_vs_1": speedup}
    rows = [[x["workers"], x["threads_per_asset"], x["wall_s"], f"{x['ok']}/{x['assets']}", x["exit"],
             x["load_before"][0]] for x in runs]
    md = (f"{n_assets} assets (the quality benchmark's series), epochs capped at {epochs or 'the default'}, "
          f"quantize {quantize or 'auto (default)'}; "
          f"runs interleaved.\n\n"
          + md_table(["workers", "threads per asset", "wall s", "assets ok", "exit", "load (1 min) before"], rows)
          + f"\n\nMedian wall: 1 worker {med[1]:.1f} s, 2 workers {med[2]:.1f} s; speedup "
            f"{speedup:.2f}x (target >= 1.7x).\n")
    write_results("fleet_speed", data, md, COMMAND + (f" --epochs {epochs}" if epochs else "")
                  + (f" --quantize {quantize}" if quantize else ""))
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="cap epochs per asset (0: the trainer's default)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds: 1 then 2 workers, then 2 then 1, ...")
    parser.add_argument("--quantize", default=None, help="one conversion mode for every asset (default: auto)")
    args = parser.parse_args()
    main(args.epochs or None, args.repeat, args.quantize)
