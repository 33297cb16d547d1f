"""Benchmark: the AER model option (``--model aer``) against today's autoencoder, published events.

Same series as ``benchmarks/quality.py`` (``benchmarks/datasets.py``), no per-series tuning:

1. Train AER with the trainer's defaults plus ``model="aer"`` (``--epochs N`` caps the epochs; early
   stopping with the default patience applies either way) into ``.work/aer/runs/<series>/run`` and
   convert it (``--quantize float32`` by default: the float bundle is what AER's score is; the
   autoencoder's bundle is the ``auto`` choice of its quality run) to ``auto.vigil`` there.
2. Score both models through the quality benchmark's own machinery (``quality.run_all`` with
   ``--runs``: the published events of the streaming pipeline with the bundle's recommended policy, the
   row-level baselines, and the ``--score-modes`` replays): the autoencoder from its cached runs in
   ``.work/quality`` (read only, never retrained), AER from step 1, both in this one invocation with the
   same evaluation code, into ``.work/aer/eval_<model>/``.
3. ``results/aer.{json,md}``: per series and in total, event tp / fp / fn, precision, recall and F1 of
   the published events (``float`` = Keras model, ``auto`` = the bundle on the device's interpreter).

Run: ``.venv/bin/python -m benchmarks.aer`` (``--only NAME ...`` for a few series).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import quality
from benchmarks.common import ROOT, log, md_table, write_results
from benchmarks.datasets import all_series
from benchmarks.reference import WORK

COMMAND = ".venv/bin/python -m benchmarks.aer"
AER_WORK = WORK / "aer"
AER_RUNS = AER_WORK / "runs"
AER_EVAL = AER_WORK / "eval_aer"
AE_RUNS = WORK / "quality"  # the quality benchmark's trained autoencoders (read only)
MODELS = {"autoencoder": AE_RUNS, "aer": AER_RUNS}
SCORE_MODES = ["row"]  # the per-row localized score (issue 10, 8a), next to the window score that ships
COMPARED = ("float", "auto", "float@row", "auto@row", "float_rows", "isolation_forest")


def train_series(name: str, epochs: int | None, quantize: str, reuse: bool = False) -> dict[str, Any]:
    """Train and convert AER for one series (inside a worker process); the record of what happened.

    ``reuse``: a run already trained there is converted, not trained again.
    """
    from benchmarks.reference import train_config
    from converter.convert import ConvertConfig, run_convert
    from trainer.fit import run_train
    from trainer.rundir import read_run

    series = {s.name: s for s in all_series(every_nab=True)}[name]
    base = AER_RUNS / name
    run_dir, bundle_path = base / "run", base / "auto.vigil"
    started = time.perf_counter()
    extra = {} if epochs is None else {"epochs": epochs}
    cfg = train_config(series.path, run_dir, columns=series.columns, train_rows=series.train_rows,
                       timestamp_column=series.timestamp_column, model="aer", echo=lambda _m: None, **extra)
    stamp = base / "trained.json"  # training seconds, kept for a reused run
    if not (reuse and (run_dir / "run.json").is_file() and stamp.is_file()):
        run_train(cfg)
        stamp.write_text(json.dumps({"train_seconds": time.perf_counter() - started, "epochs_cap": epochs}) + "\n")
    trained = time.perf_counter()
    train_seconds = json.loads(stamp.read_text())["train_seconds"]  # null: trained before stamps were kept
    record = base / "train.json"
    previous = json.loads(record.read_text()) if reuse and record.is_file() and bundle_path.is_file() else {}
    if "mode" in previous and "error" not in previous:
        return dict(previous)  # trained and converted before
    result = run_convert(ConvertConfig(run=run_dir, out=bundle_path, quantize=quantize, quiet=True))
    if result.bundle_path is None:
        raise RuntimeError(f"no mode survived conversion: {result.table}")
    training = read_run(run_dir).training
    return {"name": name, "mode": result.mode, "epochs_run": training.get("epochs_run"),
            "skill_ratio": training.get("skill_ratio"),
            "seconds": {"train": train_seconds, "convert": time.perf_counter() - trained}}


def train_worker(name: str, epochs: int | None, quantize: str, reuse: bool) -> None:
    path = AER_RUNS / name / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        record = train_series(name, epochs, quantize, reuse)
    except Exception as exc:  # a series the defaults cannot handle is a result
        record = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    if "error" not in record:  # scored right away, so that every finished series is a complete result
        quality.worker(name, None, True, False, AER_EVAL, AER_RUNS, **_score_modes(quality.worker))


def train_all(names: list[str], epochs: int | None, jobs: int, quantize: str, reuse: bool,
              deadline: float | None = None) -> dict[str, Any]:
    """Train, convert and score AER, ``jobs`` worker processes at a time.

    ``reuse``: a series already scored is kept. ``deadline`` (epoch seconds): no series starts after it;
    the ones left are recorded as not run.
    """
    todo = [n for n in names if not (reuse and _done(n))]
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    skipped: list[str] = []
    while todo or running:
        if deadline is not None and time.time() > deadline and todo:
            skipped, todo = todo, []
            log(f"deadline: {len(skipped)} series not started")
        while todo and len(running) < jobs:
            name = todo.pop(0)
            log(f"train {name}")
            cmd = [sys.executable, "-m", "benchmarks.aer", "--train-worker", name, "--quantize", quantize]
            cmd += [] if epochs is None else ["--epochs", str(epochs)]
            cmd += ["--reuse"] if reuse else []
            running.append((name, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)))
        time.sleep(1.0)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                log(f"trained {item[0]} (exit {item[1].returncode})")
    records = {}
    for name in names:
        path = AER_RUNS / name / "train.json"
        if name in skipped:
            records[name] = {"name": name, "error": "not run (deadline)"}
        else:
            records[name] = json.loads(path.read_text()) if path.is_file() else {"name": name, "error": "worker died"}
    return records


def _score_modes(function: Any) -> dict[str, Any]:
    """``score_modes=SCORE_MODES`` when the quality benchmark has per-row replays (added while this was written)."""
    import inspect

    return {"score_modes": SCORE_MODES} if "score_modes" in inspect.signature(function).parameters else {}


def _done(name: str) -> bool:
    train, result = AER_RUNS / name / "train.json", AER_EVAL / name / "result.json"
    return (train.is_file() and "error" not in json.loads(train.read_text()) and result.is_file()
            and "models" in json.loads(result.read_text()))


def evaluate_all(names: list[str], jobs: int, trained: dict[str, Any],
                 ae_from: str) -> dict[str, list[dict[str, Any]]]:
    """Both models' quality results, through ``quality.run_all`` over their stored runs.

    ``ae_from="cache"``: the autoencoder's results are the quality run's own ``result.json`` files
    (same machinery, no second scoring pass; its runs' ``@row`` replays are then absent).
    """
    out = {}
    for model, runs in MODELS.items():
        if model == "autoencoder" and ae_from == "cache":
            out[model] = [_cached_result(n) for n in names]
            continue
        if model == "aer":  # scored by each training worker
            out[model] = [_result(AER_EVAL, n) if "error" not in trained[n] else {"name": n, **trained[n]}
                          for n in names]
            continue
        log(f"evaluate {model} on {len(names)} series")
        work = AER_WORK / f"eval_{model}"
        quality.run_all(names, None, jobs, True, False, work, runs, **_score_modes(quality.run_all))
        out[model] = [_result(work, n) for n in names]
    return out


def _cached_result(name: str) -> dict[str, Any]:
    return _result(AE_RUNS, name)


def _result(work: Path, name: str) -> dict[str, Any]:
    path = work / name / "result.json"
    if not path.is_file():
        return {"name": name, "error": f"no result in {work.name}"}
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def comparison(names: list[str], results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Totals of each model over the series BOTH could be evaluated on (and over all of each)."""
    both = [n for n in names if all("models" in r for r in (_by_name(results[m])[n] for m in MODELS))]
    out: dict[str, Any] = {"series_both": both}
    for model in MODELS:
        rows = _by_name(results[model])
        out[model] = {"both": quality.totals([rows[n] for n in both]), "all": quality.totals(results[model])}
    return out


def _by_name(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in results}


def _missing(result: dict[str, Any]) -> str:
    error = str(result.get("error", ""))
    return "not run" if error.startswith("not run") else "failed"


def _seconds_per_epoch(name: str) -> float:
    """The autoencoder's training seconds per epoch in its quality run (unknown: last)."""
    r = _cached_result(name)
    epochs = r.get("epochs_run") or 0
    return float(r["seconds"]["train"]) / epochs if "seconds" in r and epochs else float("inf")


def _deadline(text: str | None) -> float | None:
    if text is None:
        return None
    import datetime as dt

    hour, minute = (int(v) for v in text.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def render(data: dict[str, Any]) -> str:
    comp = data["comparison"]
    rows = []
    for key in COMPARED:
        for model in MODELS:
            t = comp[model]["both"].get(key)
            if t is None:
                continue
            rows.append((key, model, t["series"], t["tp"], t["fp"], t["fn"], t["precision"], t["recall"], t["f1"],
                         t["macro_f1"]))
    total = md_table(["scores", "model", "series", "tp", "fp", "fn", "precision", "recall", "F1 (micro)",
                      "F1 (macro)"], rows)
    per = []
    ae, aer = _by_name(data["results"]["autoencoder"]), _by_name(data["results"]["aer"])
    keys = [k for k in ("float", "auto", "float@row")
            if any(k in r.get("models", {}) for m in MODELS for r in data["results"][m])]
    for name in data["names"]:
        cells: list[Any] = [name, aer[name].get("window"), data["trained"][name].get("epochs_run"),
                            ae[name].get("skill_ratio"), aer[name].get("skill_ratio")]
        for key in keys:
            for r in (ae[name], aer[name]):
                m = r.get("models", {}).get(key)
                cells.append(_missing(r) if m is None else f"{m['f1']:.2f} ({m['tp']}, {m['fp']}, {m['fn']})")
        per.append(cells)
    head = ["series", "window", "AER epochs", "AE skill", "AER skill"] + [
        f"{k} {m} F1 (tp, fp, fn)" for k in keys for m in ("AE", "AER")]
    epochs = "trainer default" if data["epochs"] is None else f"capped at {data['epochs']}"
    not_run = [n for n in data["names"] if str(data["trained"][n].get("error", "")).startswith("not run")]
    ae_results = "read from its cached result.json" if data["ae_from"] == "cache" else "scored again in this run"
    notes = " ".join([
        f"AER: `TrainConfig` defaults with `model=\"aer\"` (epochs {epochs}), converted with `--quantize",
        f"{data['quantize']}`; autoencoder: the quality benchmark's cached runs and `auto` bundles",
        f"(`.work/quality`, trainer defaults; results {ae_results}).",
        "`float` / `auto` = published events (window score, the bundle's recommended policy);",
        "`@row` = the same replayed with per-row scores; `float_rows` = row-level score > static threshold.",
        f"Totals over the {len(comp['series_both'])} series both models could be evaluated on.",
        f"Wall time {data['seconds'] / 60:.1f} min ({data['jobs']} jobs).",
        *([f"Not run: {', '.join(not_run)}."] if not_run else []),
        *([f"Load average during the run: {data['load_during_run']}."] if data.get("load_during_run") else [])])
    return "\n\n".join([total, md_table(head, per), notes]) + "\n"


def main(names: list[str], epochs: int | None, jobs: int, quantize: str, reuse: bool, ae_from: str,
         deadline: float | None = None, results_name: str = "aer") -> None:
    started = time.perf_counter()
    trained = train_all(names, epochs, jobs, quantize, reuse, deadline)
    results = evaluate_all(names, jobs, trained, ae_from)
    data = {"epochs": epochs, "jobs": jobs, "quantize": quantize, "ae_from": ae_from, "names": names,
            "trained": trained,
            "results": results, "comparison": comparison(names, results),
            "seconds": time.perf_counter() - started}
    data["complete"] = all("models" in r for r in results["aer"]) and len(names) == len(all_series())
    write_results(results_name, data, render(data), COMMAND)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="cap AER's epochs (default: the trainer's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--quantize", default="float32", help="AER bundle's converter --quantize (default float32)")
    parser.add_argument("--reuse", action="store_true", help="keep AER runs already trained in .work/aer/runs")
    parser.add_argument("--ae-from", choices=("cache", "eval"), default="cache",
                        help="autoencoder results: the quality run's cached result.json (default) or scored again here")
    parser.add_argument("--order", choices=("biggest", "cheapest"), default="biggest",
                        help="biggest training first (default), or cheapest first (autoencoder seconds per epoch)")
    parser.add_argument("--deadline", help="HH:MM (UTC): start no series after it; the rest is reported as not run")
    parser.add_argument("--results", default="aer", help="name of benchmarks/results/<NAME>.json and .md")
    parser.add_argument("--render", action="store_true", help="rewrite results/<NAME>.md from <NAME>.json")
    parser.add_argument("--train-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        from benchmarks.common import RESULTS

        saved = json.loads((RESULTS / f"{args.results}.json").read_text())
        write_results(args.results, saved, render(saved), COMMAND)
    elif args.train_worker:
        train_worker(args.train_worker, args.epochs, args.quantize, args.reuse)
    else:
        series = all_series()
        chosen = [s for s in series if not args.only or s.name in args.only]
        # longest training first, so the last jobs to finish are short ones; or cheapest first, so that a
        # deadline leaves the most series done
        if args.order == "biggest":
            ordered = [s.name for s in sorted(chosen, key=lambda s: s.train_rows[0] - s.train_rows[1])]
        else:
            ordered = sorted((s.name for s in chosen), key=_seconds_per_epoch)
        main(ordered, args.epochs, args.jobs, args.quantize, args.reuse, args.ae_from, _deadline(args.deadline),
             args.results)
