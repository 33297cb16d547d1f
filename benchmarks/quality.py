"""Benchmark 4: detection quality on real labeled data with default settings.

Per series (``benchmarks/datasets.py``: 16 labeled discord series and the 7 NAB
``realKnownCause`` series), with NO per-series tuning:

1. ``trainer.fit.run_train`` with the trainer's defaults (``TrainConfig``: the
   values are recorded in the result) on the series' normal training rows; only
   the data, columns, row slice and timestamp column are given. ``--epochs N``
   caps the epochs to save time (the default keeps the trainer's own; early
   stopping with the default patience applies either way).
2. ``converter.convert.run_convert`` with ``--quantize auto`` (the default).
3. Score the test rows with streaming semantics (a row gets the score of the
   window ending at it; rows before the first window have none) and predict
   ``score > threshold``, the rule of ``vigil evaluate`` and the agent:
   - float: the Keras model (``trainer.keras_scoring.score_rows``);
   - auto: the chosen bundle through ``edge_agent.runtime.Scorer`` window by window;
   - isolation_forest: the trainer's baseline (``baseline_from_run``) and its threshold;
   - random: uniform random window scores; ``random_same`` applies the run's
     threshold strategy to random held-out scores (mean+3*std of U(0,1) > 1, so
     it never alarms); ``random_rate`` thresholds so that it flags as many test
     rows as the float model does (what chance achieves at the same alarm rate).
4. Event-wise precision/recall/F1 (Telemanom rule, ``trainer.metrics``) and PR-AUC.

Totals: summed tp/fp/fn (micro) and the mean of per-series F1 / PR-AUC (macro).
Series are run in worker processes (``--jobs``); results land in
``benchmarks/.work/quality/<series>/result.json`` (``--work DIR`` for another
directory; ``--runs DIR`` reuses the trained runs and bundles of another work
directory without writing there) and ``benchmarks/results/quality.{json,md}``
(``--results NAME``).

Run: ``.venv/bin/python -m benchmarks.quality`` (``--only NAME`` for one series).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, log, md_table, write_results
from benchmarks.datasets import Series, all_series
from benchmarks.quality_replay import (  # noqa: F401  (CachedScorer: detection_variants imports it here)
    SCORE_VARIANTS,
    CachedScorer,
    RecordingScorer,
    _published_entry,
    published_modes,
)
from benchmarks.reference import WORK

COMMAND = ".venv/bin/python -m benchmarks.quality"
DEFAULT_WORK = WORK / "quality"
# float / auto: the events the device publishes (the streaming pipeline with the bundle's recommended
# policy and dynamic threshold), for the Keras model and the chosen bundle; the *_rows entries and the
# others are row-level "score > static threshold" baselines without any event logic.
PUBLISHED = ("float", "auto")
MODELS = (*PUBLISHED, "float_rows", "auto_rows", "isolation_forest", "random_same", "random_rate")


def evaluate_series(series: Series, epochs: int | None, reuse: bool = False,
                    rejudge: bool = False, work: Path = DEFAULT_WORK, runs: Path | None = None,
                    score_modes: list[str] | None = None) -> dict[str, Any]:
    """Train, convert, score and measure one series (runs inside a worker process).

    ``runs``: read the trained run and bundle from ``runs/<series>/`` (never train or convert there).
    """
    from benchmarks.reference import train_config
    from converter.convert import ConvertConfig, run_convert
    from trainer.fit import run_train
    from trainer.rundir import read_run

    base = work / series.name
    source = base if runs is None else runs / series.name
    run_dir, bundle_path = source / "run", source / "auto.vigil"
    if runs is not None:  # read-only source: a bundle it lacks is converted into this work directory
        if not (run_dir / "run.json").is_file():
            raise FileNotFoundError(f"{source}: no trained run to reuse")
        if not bundle_path.is_file():
            bundle_path = base / "auto.vigil"
            base.mkdir(parents=True, exist_ok=True)
        reuse = True  # never train or convert into the source
    started = time.perf_counter()
    if not (reuse and (run_dir / "run.json").is_file()):
        extra = {} if epochs is None else {"epochs": epochs}
        cfg = train_config(series.path, run_dir, columns=series.columns, train_rows=series.train_rows,
                           timestamp_column=series.timestamp_column, echo=lambda _m: None, **extra)
        run_train(cfg)
    trained = time.perf_counter()
    if not (reuse and bundle_path.is_file()):
        result = run_convert(ConvertConfig(run=run_dir, out=bundle_path, quiet=True))
        mode = result.mode
    else:
        from edge_agent.bundle import load_bundle

        mode = load_bundle(bundle_path).quantization
    converted = time.perf_counter()
    run = read_run(run_dir)
    test = series.load_test()
    ranges = series.label_ranges(test)
    local = [(s - test.row_offset, e - test.row_offset) for s, e in ranges]
    base.mkdir(parents=True, exist_ok=True)
    pub = published(series, run, bundle_path, ranges, base, source, score_modes)
    models = pub
    if rejudge:  # keep the row-level baselines of the last full run; only the published events are replayed
        earlier = base / "result.json"
        kept = json.loads(earlier.read_text()).get("models", {}) if earlier.is_file() else {}
        models = {**{k: v for k, v in kept.items() if k not in pub}, **pub}
    else:
        scores = model_scores(run, bundle_path, test.values)
        models = {**pub,
                  **measure(scores, local, test.n_rows, run, seed=len(series.name))}
    training = run.meta["training"]
    out = {"name": series.name, "group": series.group, "features": test.names, "test_rows": test.n_rows,
           "events": len(ranges), "auto_mode": mode, "epochs_run": training.get("epochs_run",
           training.get("epochs")), "skill_ratio": training.get("skill_ratio"), "window": run.spec.window,
           "notes": series.notes, "models": models,
           "seconds": {"train": trained - started, "convert": converted - trained,
                       "score": time.perf_counter() - converted}}
    return out


def published(series: Series, run: Any, bundle_path: Path, ranges: list[tuple[int, int]],
              base: Path, source: Path | None = None, score_modes: list[str] | None = None) -> dict[str, Any]:
    """Event metrics of what the device publishes, for the float model and the chosen bundle.

    The float model's window scores are cached (``float_windows.npz``) so that ``--rejudge``
    can replay new detection settings over the same scores in seconds. With ``score_modes``
    each model is scored once and its windows replayed under every score mode (``<model>@<mode>``).
    """
    from edge_agent.bundle import load_bundle
    from trainer.pipeline_view import KerasWindowScorer, bundle_view
    from trainer.published import published_events

    if score_modes:
        return published_modes(series, run, bundle_path, ranges, base, source or base, score_modes)
    cache = base / "float_windows.npz"
    if not cache.is_file() and source is not None and (source / "float_windows.npz").is_file():
        cache = source / "float_windows.npz"  # the shared run's cache, read only
    scorer: Any = CachedScorer.load(cache) if cache.is_file() else RecordingScorer(KerasWindowScorer(run))
    out = {}
    pub = published_events(bundle_view(run), series.path, ranges, rows=series.test_rows, columns=run.features,
                           scorer=scorer)
    if isinstance(scorer, RecordingScorer):
        scorer.save(base / "float_windows.npz")
    out["float"] = _published_entry(pub)
    pub = published_events(load_bundle(bundle_path), series.path, ranges, rows=series.test_rows,
                           columns=run.features)
    out["auto"] = _published_entry(pub)
    return out


def model_scores(run: Any, bundle_path: Path, values: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """Row scores (NaN before the first window) and threshold of float, auto and IsolationForest."""
    from edge_agent.bundle import load_bundle
    from edge_agent.core import ewma, row_scores_from_windows, sliding_windows
    from edge_agent.runtime import Scorer
    from trainer.baseline import baseline_from_run
    from trainer.keras_scoring import score_rows

    n, spec = len(values), run.spec
    flt = score_rows(run.load_model(), values, run.scaler, spec, run.score_function, run.score_weights,
                     run.smoothing_alpha)
    bundle = load_bundle(bundle_path)
    scorer = Scorer(bundle)
    raw = np.array([scorer.score(w).score for w in sliding_windows(values, bundle.spec)], dtype=np.float64)
    edge = row_scores_from_windows(ewma(raw, bundle.smoothing_alpha), n, bundle.spec)
    base = baseline_from_run(run)
    iso = row_scores_from_windows(base.window_scores(values), n, spec)
    return {"float_rows": (flt.row_scores, run.threshold), "auto_rows": (edge, bundle.threshold),
            "isolation_forest": (iso, float(base.threshold))}


def measure(scores: dict[str, tuple[np.ndarray, float]], local: list[tuple[int, int]], n_rows: int,
            run: Any, seed: int) -> dict[str, Any]:
    from edge_agent.core import row_scores_from_windows
    from trainer import metrics as M
    from trainer.labels import ranges_to_mask
    from trainer.threshold import parse_strategy

    label_mask = ranges_to_mask(local, n_rows)
    rng = np.random.default_rng(seed)
    n_windows = run.spec.count(n_rows)
    rand = row_scores_from_windows(rng.uniform(size=n_windows), n_rows, run.spec)
    strategy = parse_strategy(run.meta["threshold"]["strategy"], run.meta["threshold"].get("k", 3.0))
    same = _random_same_threshold(run, strategy, rng)
    flt_rows, flt_thr = scores["float_rows"]
    flagged = float(np.mean(np.nan_to_num(flt_rows, nan=-np.inf) > flt_thr))
    valid = rand[~np.isnan(rand)]
    rate_thr = float(np.quantile(valid, 1.0 - flagged)) if flagged > 0 else float("inf")
    all_scores = dict(scores)
    all_scores["random_same"] = (rand, same)
    all_scores["random_rate"] = (rand, rate_thr)
    out = {}
    for key, (rows, thr) in all_scores.items():
        pred = np.nan_to_num(rows, nan=-np.inf) > thr
        ev = M.event_counts(pred, local)
        out[key] = {"tp": ev.tp, "fp": ev.fp, "fn": ev.fn, "precision": ev.precision, "recall": ev.recall,
                    "f1": ev.f1, "pr_auc": M.pr_auc(rows, label_mask), "threshold": float(thr),
                    "flagged_rows": int(pred.sum())}
    return out


def _random_same_threshold(run: Any, strategy: Any, rng: np.random.Generator) -> float:
    """The run's own threshold rule applied to random held-out scores (POT: the run's false-alarm budget)."""
    from trainer.threshold import normal_threshold

    held_out = rng.uniform(size=2000)
    if strategy.name != "pot":
        return float(normal_threshold(held_out, strategy))
    from trainer.calibrate import calibrate_threshold, parse_false_alarms

    params = run.meta["threshold"].get("params") or {}
    budget = parse_false_alarms(str(params.get("false_alarms", "auto")))
    value, _, _ = calibrate_threshold(held_out, budget, run.meta.get("sampling_rate_hz"), run.spec.hop)
    return float(value)


def worker(name: str, epochs: int | None, reuse: bool, rejudge: bool = False, work: Path = DEFAULT_WORK,
           runs: Path | None = None, score_modes: list[str] | None = None) -> None:
    series = {s.name: s for s in all_series(every_nab=True)}[name]  # a superset: any run's series
    path = work / name / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if rejudge and path.is_file() else {}
    try:
        result = evaluate_series(series, epochs, reuse or rejudge, rejudge, work, runs, score_modes)
        if rejudge and "models" in previous:  # keep the row-level baselines of the full run
            result["models"] = {**previous["models"], **result["models"]}
    except Exception as exc:  # a series the defaults cannot handle is a result
        result = {"name": name, "group": series.group, "error": f"{type(exc).__name__}: {exc}"}
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")


def run_all(names: list[str], epochs: int | None, jobs: int, reuse: bool,
            rejudge: bool = False, work: Path = DEFAULT_WORK, runs: Path | None = None,
            score_modes: list[str] | None = None) -> list[dict[str, Any]]:
    pending, running = list(names), []
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            log(f"start {name}")
            cmd = [sys.executable, "-m", "benchmarks.quality", "--worker", name]
            cmd += [] if epochs is None else ["--epochs", str(epochs)]
            cmd += ["--reuse"] if reuse else []
            cmd += ["--rejudge"] if rejudge else []
            cmd += ["--work", str(work)] + ([] if runs is None else ["--runs", str(runs)])
            cmd += ["--score-modes", ",".join(score_modes)] if score_modes else []
            running.append((name, subprocess.Popen(cmd, cwd=ROOT,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(1.0)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                log(f"done {item[0]} (exit {item[1].returncode})")
    out = []
    for name in names:
        path = work / name / "result.json"
        out.append(json.loads(path.read_text()) if path.is_file() else {"name": name, "error": "worker died"})
    return out


def model_keys(results: list[dict[str, Any]]) -> list[str]:
    """MODELS, then the ``<model>@<score mode>`` entries every evaluated series has."""
    ok = [r for r in results if "models" in r]
    extra = sorted({k for r in ok for k in r["models"] if "@" in k})
    # a series evaluated with --rejudge alone has no row-level baselines: totals over keys all series have
    return [k for k in (*MODELS, *extra) if all(k in r["models"] for r in ok)]


def totals(results: list[dict[str, Any]], group: str | None = None) -> dict[str, Any]:
    ok = [r for r in results if "models" in r and (group is None or r["group"].startswith(group))]
    out = {}
    for key in model_keys(results):
        tp = sum(r["models"][key]["tp"] for r in ok)
        fp = sum(r["models"][key]["fp"] for r in ok)
        fn = sum(r["models"][key]["fn"] for r in ok)
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        aucs = [r["models"][key]["pr_auc"] for r in ok if r["models"][key]["pr_auc"] is not None]
        out[key] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": rc,
                    "f1": 2 * p * rc / (p + rc) if p + rc else 0.0,
                    "macro_f1": float(np.mean([r["models"][key]["f1"] for r in ok])) if ok else None,
                    "macro_pr_auc": float(np.mean(aucs)) if aucs else None, "series": len(ok)}
    return out


def group_totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    """All series, the discords, the target's NAB realKnownCause, and every other NAB folder run."""
    out = {"all": totals(results), "discords": totals(results, "discords"),
           "NAB realKnownCause": totals(results, "NAB/realKnownCause")}
    nab = {r["group"] for r in results if str(r.get("group", "")).startswith("NAB/")}
    folders = sorted(nab - {"NAB/realKnownCause"})
    if folders:
        target = [r for r in results if not str(r.get("group", "")).startswith("NAB/") or
                  r.get("group") == "NAB/realKnownCause"]
        out["target set (discords + realKnownCause)"] = totals(target)
        out.update({folder: totals(results, folder) for folder in folders})
    return out


def render(data: dict[str, Any]) -> str:
    modes = tuple(k for k in model_keys(data["series"]) if "@" in k)
    f1_keys = (*PUBLISHED, *modes, "float_rows", "isolation_forest", "random_rate")
    head = ["series", "events", "window", "epochs", "skill ratio", "auto mode"] + [f"{k} F1" for k in f1_keys] + \
           [f"{k} PR-AUC" for k in ("float_rows", "isolation_forest", "random_rate")]
    rows = []
    for r in data["series"]:
        if "models" not in r:
            why = r["error"].split(".csv: ", 1)[-1].split(".txt: ", 1)[-1]
            rows.append([f"{r.get('group', '?')}/{r['name']}: **failed with the defaults**: {why}"]
                        + [None] * (len(head) - 1))
            continue
        m = r["models"]
        rows.append([f"{r['group']}/{r['name']}", r["events"], r.get("window"), r["epochs_run"], r.get("skill_ratio"),
                     r["auto_mode"]] + [m[k]["f1"] if k in m else None for k in f1_keys]
                    + [m[k]["pr_auc"] if k in m else None for k in ("float_rows", "isolation_forest", "random_rate")])
    sections = [md_table(head, rows), "Event-wise precision / recall (tp, fp, fn) per series:\n\n" + pr_table(data)]
    for label, tot in data["totals"].items():
        trows = [(k, t["series"], t["tp"], t["fp"], t["fn"], t["precision"], t["recall"], t["f1"], t["macro_f1"],
                  t["macro_pr_auc"]) for k, t in tot.items()]
        sections.append(f"Totals, {label}:\n\n" + md_table(
            ["scorer", "series", "tp", "fp", "fn", "precision", "recall", "F1 (micro)", "F1 (macro)",
             "PR-AUC (macro)"], trows))
    d = data["trainer_defaults"]
    wall = "not measured (totals of earlier worker results, --collect)" if data["seconds"] is None else \
        f"{data['seconds'] / 60:.1f} min"
    epochs = "trainer default" if data["epochs"] is None else f"capped at {data['epochs']}"
    return "\n\n".join(sections) + (
        f"\n\nTrainer settings (defaults of `TrainConfig`): window {d['window']}, hop {d['hop']}, model {d['model']} "
        f"{d['units']}, lr {d['learning_rate']}, epochs {d['epochs']} ({epochs}) with early stopping patience "
        f"{d['patience']}, validation fraction {d['validation_fraction']}, scaler {d['scaler']}, score {d['score']}, "
        f"threshold {d['threshold']} k={d['k']}, smoothing {d['smoothing']}. Converter: `--quantize auto`. "
        f"{data['jobs']} series at a time; wall time {wall}.\n")


def trainer_defaults() -> dict[str, Any]:

    from trainer.fit import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING and f.name != "echo"}


def pr_table(data: dict[str, Any]) -> str:
    modes = tuple(k for k in model_keys(data["series"]) if "@" in k)
    keys = (*PUBLISHED, *modes, "float_rows", "isolation_forest", "random_rate")
    rows = []
    for r in data["series"]:
        if "models" not in r:
            continue
        cells = []
        for k in keys:
            if k not in r["models"]:
                cells.append(None)
                continue
            m = r["models"][k]
            cells.append(f"{m['precision']:.2f} / {m['recall']:.2f} ({m['tp']}, {m['fp']}, {m['fn']})")
        rows.append([r["name"]] + cells)
    return md_table(["series"] + [f"{k} P / R (tp, fp, fn)" for k in keys], rows)


def main(epochs: int | None, jobs: int, only: list[str] | None, reuse: bool, rejudge: bool = False,
         every_nab: bool = False, work: Path = DEFAULT_WORK, runs: Path | None = None,
         results_name: str = "quality", score_modes: list[str] | None = None, collect: bool = False) -> None:
    series = [s for s in all_series(every_nab) if not only or s.name in only]
    names = [s.name for s in series]
    # longest training first, so the last jobs to finish are short ones
    biggest_first = [s.name for s in sorted(series, key=lambda s: s.train_rows[0] - s.train_rows[1])]
    started = time.perf_counter()
    if collect:  # the per-series results already in the work directory
        by_name = {n: json.loads((work / n / "result.json").read_text()) for n in names}
    else:
        by_name = {r["name"]: r for r in run_all(biggest_first, epochs, jobs, reuse, rejudge, work, runs, score_modes)}
    results = [by_name[n] for n in names]
    data = {"epochs": epochs, "jobs": jobs, "trainer_defaults": trainer_defaults(), "series": results,
            "score_modes": {m: SCORE_VARIANTS[m] for m in score_modes or []},
            "seconds": None if collect else time.perf_counter() - started,
            "totals": group_totals(results)}
    write_results(results_name, data, render(data), COMMAND)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="cap epochs (default: the trainer's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--reuse", action="store_true", help="reuse trained runs/bundles in .work/quality")
    parser.add_argument("--rejudge", action="store_true",
                        help="only replay the published events again over cached scores (after a detection change)")
    parser.add_argument("--every-nab", action="store_true", help="all 58 NAB series, with per-folder totals")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="per-series work directory (default benchmarks/.work/quality, shared: others reuse it)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="reuse the trained runs and bundles of this work directory (read only)")
    parser.add_argument("--results", default="quality", help="name of benchmarks/results/<NAME>.json and .md")
    parser.add_argument("--score-modes", type=lambda v: [m for m in v.split(",") if m], default=None,
                        help=f"also replay the published events under these score modes ({', '.join(SCORE_VARIANTS)})")
    parser.add_argument("--collect", action="store_true", help="only total the work directory's result.json files")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--render", action="store_true", help="rewrite results/quality.md from quality.json")
    args = parser.parse_args()
    if args.render:
        from benchmarks.common import RESULTS

        saved = json.loads((RESULTS / f"{args.results}.json").read_text())
        write_results(args.results, saved, render(saved), COMMAND)
    elif args.worker:
        worker(args.worker, args.epochs, args.reuse, args.rejudge, args.work.resolve(),
               None if args.runs is None else args.runs.resolve(), args.score_modes)
    else:
        unknown = set(args.score_modes or []) - set(SCORE_VARIANTS)
        if unknown:
            parser.error(f"unknown score modes {sorted(unknown)}; known: {', '.join(SCORE_VARIANTS)}")
        main(args.epochs, args.jobs, args.only, args.reuse, args.rejudge, args.every_nab, args.work.resolve(),
             None if args.runs is None else args.runs.resolve(), args.results, args.score_modes, args.collect)
