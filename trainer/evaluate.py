"""``vigil evaluate``: score labeled data with a run, write metrics, plots and a report.

Streaming semantics, exactly what the device does: a row's score is the score of
the window ending at (or last before) it; rows before the first complete window
have no score (NaN). Those rows count as "not anomalous" for the point and event
metrics (the device would not have alerted) and are left out of the AUCs (there
is no score to rank). A row is predicted anomalous when its score is *above* the
threshold, as in :class:`edge_agent.alerts.EventDetector`.

The same metrics are computed for the LSTM autoencoder and for the
IsolationForest baseline refitted from the run (``trainer.baseline``).

``metrics.json`` (format ``vigil-eval/1``): ``run``, ``data``, ``labels``,
``channel``, ``series``, ``rows`` ([start, end) file data rows evaluated),
``n_rows``, ``n_scored_rows``, ``features``, ``window``, ``hop``,
``label_ranges`` (inclusive file rows), ``n_label_rows``, ``decision``,
``notes`` and ``models.{lstm_autoencoder,isolation_forest}`` each with
``title``, ``threshold``, ``point`` (tp fp fn tn precision recall f1),
``event`` (tp fp fn precision recall f1), ``confusion_matrix``
(``matrix`` = [[tn, fp], [fn, tp]]), ``roc_auc``, ``pr_auc`` (None when
undefined), ``predicted_events`` (inclusive file rows), ``n_anomalous_rows``,
``score_stats``; then ``plots`` (name -> PNG file in the output directory)
and ``report``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core import row_scores_from_windows, sliding_windows
from edge_agent.errors import VigilInputError
from edge_agent.readers import Table, load_table, parse_rows
from trainer import metrics as M
from trainer import plots
from trainer.labels import ranges_to_mask, read_labels
from trainer.report import summarize, write_report
from trainer.rundir import RunInfo, read_run

EVAL_FORMAT = "vigil-eval/1"
AE, IF = "lstm_autoencoder", "isolation_forest"
TITLES = {AE: "LSTM autoencoder", IF: "IsolationForest"}
MAX_LATENT_WINDOWS = 3000  # enough points for the map; keeps the encoder pass short

__all__ = ["run_evaluate", "summarize", "EVAL_FORMAT"]


@dataclass
class ModelScores:
    """Per-row scores of one model plus the threshold it is judged with."""

    key: str
    row_scores: np.ndarray
    threshold: float
    note: str = ""


def run_evaluate(run_dir: str | Path, data: str | Path, labels: str | Path,
                 rows: str | tuple[int | None, int | None] | None = None, out: str | Path | None = None,
                 channel: str | None = None, series: str | None = None) -> dict[str, Any]:
    """Evaluate ``run_dir`` on ``data`` against ``labels``; returns (and writes) metrics.json."""
    run = read_run(run_dir)
    out_dir = Path(out) if out is not None else run.path / "eval"
    table = _load_data(run, data, parse_rows(rows) if isinstance(rows, str) else rows)
    ranges, notes = _load_ranges(labels, table, channel, series)
    label_mask = ranges_to_mask(ranges, table.n_rows, table.row_offset)
    local = [(s - table.row_offset, e - table.row_offset) for s, e in ranges]

    model = run.load_model()
    ae = _ae_scores(run, model, table)
    models = [ae]
    baseline = _baseline_scores(run, table)
    if baseline.row_scores.size:
        models.append(baseline)
    if baseline.note:
        notes.append(baseline.note)

    published = _published(run, model, data, table, ranges)

    result: dict[str, Any] = {
        "format": EVAL_FORMAT,
        "run": str(run.path),
        "data": str(table.source),
        "labels": str(labels),
        "channel": channel,
        "series": series,
        "rows": [table.row_offset, table.row_offset + table.n_rows],
        "n_rows": table.n_rows,
        "n_scored_rows": int(np.isfinite(ae.row_scores).sum()),
        "features": list(table.names),
        "window": run.spec.window,
        "hop": run.spec.hop,
        "label_ranges": [[int(s), int(e)] for s, e in ranges],
        "n_label_rows": int(label_mask.sum()),
        "decision": "score > threshold; rows before the first window are not anomalous and not in the AUCs",
        "models": {m.key: _model_metrics(m, label_mask, local, table.row_offset) for m in models},
        "published": {k: v for k, v in published.items() if k != "result"},
        "notes": notes,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _make_plots(out_dir, run, model, table, models, label_mask, local, result)
    figures["published"] = _published_plot(out_dir / "published.png", published, result)
    result["plots"] = {name: p.name for name, p in figures.items()}  # all inside out_dir
    result["report"] = "report.html"
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(out_dir / "report.html", result, run.meta, figures)
    return result


# --------------------------------------------------------------------------- inputs


def _load_data(run: RunInfo, data: str | Path, rows: tuple[int | None, int | None] | None) -> Table:
    return load_table(data, columns=run.features, rows=rows,
                      timestamp_column=run.meta.get("timestamp_column"), min_rows=run.spec.window)


def _load_ranges(labels: str | Path, table: Table, channel: str | None,
                 series: str | None) -> tuple[list[tuple[int, int]], list[str]]:
    """Label ranges inside the loaded rows; none at all there is an input error."""
    kwargs = dict(n_rows=table.n_rows, timestamps=table.timestamps, row_offset=table.row_offset, channel=channel)
    try:
        label_set = read_labels(labels, series=series, **kwargs)
    except VigilInputError:
        if series is not None:
            raise
        # A label file with several series (NAB, discords): the data path usually names its key.
        label_set = read_labels(labels, series=table.source, **kwargs)
    first, end = table.row_offset, table.row_offset + table.n_rows
    if not label_set.ranges and label_set.dropped:
        raise VigilInputError(f"all {label_set.dropped} label range(s) lie outside the evaluated data rows "
                              f"[{first}, {end}); check --rows", file=str(labels), key="rows")
    notes = []
    summary = label_set.summary(str(labels), table.n_rows, table.row_offset)
    if summary:
        notes.append(summary)
    if not label_set.ranges:
        notes.append("no labeled anomalies in the evaluated rows: recall and AUCs are undefined")
    return label_set.ranges, notes


# --------------------------------------------------------------------------- scoring


def _ae_scores(run: RunInfo, model: Any, table: Table) -> ModelScores:
    from trainer.keras_scoring import score_rows

    scored = score_rows(model, table.values, run.scaler, run.spec, run.score_function, run.score_weights,
                        run.smoothing_alpha)
    return ModelScores(AE, scored.row_scores, run.threshold)


def _baseline_scores(run: RunInfo, table: Table) -> ModelScores:
    """IsolationForest row scores; an empty result (with a note) if it cannot be rebuilt."""
    try:
        from trainer.baseline import baseline_from_run

        baseline = baseline_from_run(run)
    except ImportError as exc:  # a checkout without the baseline (or scikit-learn)
        return ModelScores(IF, np.empty(0), float("nan"), f"IsolationForest baseline unavailable ({exc})")
    window_scores = np.asarray(baseline.window_scores(table.values), dtype=np.float64)
    rows = row_scores_from_windows(window_scores, table.n_rows, run.spec)
    if baseline.threshold is not None:
        return ModelScores(IF, rows, float(baseline.threshold))
    # Runs written without a baseline threshold: mean + 3 std on the held-out normal tail.
    _, tail = run.split_train_rows()  # the held-out rows exactly as the trainer split them
    held_out = np.asarray(baseline.window_scores(tail), dtype=np.float64)
    if held_out.size == 0:
        return ModelScores(IF, np.empty(0), float("nan"), "IsolationForest baseline has no threshold")
    return ModelScores(IF, rows, float(held_out.mean() + 3.0 * held_out.std()),
                       "IsolationForest threshold not in run.json; used mean+3*std of held-out windows")


def _published(run: RunInfo, model: Any, data: str | Path, table: Table,
               ranges: list[tuple[int, int]]) -> dict[str, Any]:
    """The events the device would publish for these rows (bundle's recommended policy), judged."""
    from trainer.pipeline_view import KerasWindowScorer, bundle_view
    from trainer.published import published_events

    rows = (table.row_offset, table.row_offset + table.n_rows)
    out = published_events(bundle_view(run), data, ranges, rows=rows, columns=run.features,
                           scorer=KerasWindowScorer(run, model))
    out["policy"] = _policy_of(run)
    return out


def _policy_of(run: RunInfo) -> dict[str, Any]:
    from edge_agent.pipeline.settings import recommended_policy
    from trainer.pipeline_view import bundle_view

    return recommended_policy(bundle_view(run))


# --------------------------------------------------------------------------- metrics


def _model_metrics(m: ModelScores, label_mask: np.ndarray, local: list[tuple[int, int]],
                   row_offset: int) -> dict[str, Any]:
    pred = np.nan_to_num(m.row_scores, nan=-np.inf) > m.threshold
    point = M.point_counts(pred, label_mask)
    event = M.event_counts(pred, local)
    scored = np.isfinite(m.row_scores)
    return {
        "title": TITLES[m.key],
        "threshold": float(m.threshold),
        "point": point.to_dict(),
        "event": event.to_dict(),
        "confusion_matrix": {"labels": ["normal", "anomalous"],
                             "matrix": [[point.tn, point.fp], [point.fn, point.tp]],
                             "rows_are": "actual", "columns_are": "predicted"},
        "roc_auc": M.roc_auc(m.row_scores, label_mask),
        "pr_auc": M.pr_auc(m.row_scores, label_mask),
        "predicted_events": [[s + row_offset, e + row_offset] for s, e in M.predicted_events(pred)],
        "n_anomalous_rows": int(pred.sum()),
        "score_stats": _stats(m.row_scores[scored]),
    }


def _stats(s: np.ndarray) -> dict[str, float | None]:
    if s.size == 0:
        return {"min": None, "median": None, "max": None}
    return {"min": float(s.min()), "median": float(np.median(s)), "max": float(s.max())}


# --------------------------------------------------------------------------- figures


def _make_plots(out_dir: Path, run: RunInfo, model: Any, table: Table, models: list[ModelScores],
                label_mask: np.ndarray, local: list[tuple[int, int]], result: dict[str, Any]) -> dict[str, Path]:
    rows = np.arange(table.n_rows) + table.row_offset
    file_ranges = [tuple(r) for r in result["label_ranges"]]
    ae = models[0]
    metrics = result["models"]
    curves = {TITLES[m.key]: (m.row_scores, label_mask) for m in models}
    figs = {
        "timeline": plots.timeline(out_dir / "timeline.png", rows, table.values, table.names, file_ranges,
                                   {TITLES[m.key]: (m.row_scores, m.threshold) for m in models}),
        "roc": plots.roc(out_dir / "roc.png", curves, {TITLES[k]: v["roc_auc"] for k, v in metrics.items()}),
        "pr": plots.pr(out_dir / "pr.png", curves, {TITLES[k]: v["pr_auc"] for k, v in metrics.items()}),
        "threshold": plots.threshold_curves(out_dir / "threshold.png", ae.row_scores, local, ae.threshold,
                                            TITLES[AE]),
        "histogram": plots.error_histogram(out_dir / "histogram.png", ae.row_scores, label_mask, ae.threshold,
                                           TITLES[AE]),
        "latent": _latent_plot(out_dir / "latent.png", run, model, table, label_mask),
    }
    loss = run.path / "loss.png"
    if loss.is_file():  # copied so the eval directory stands on its own
        figs["loss"] = Path(shutil.copyfile(loss, out_dir / "loss.png"))
    return figs


def _published_plot(path: Path, published: dict[str, Any], result: dict[str, Any]) -> Path:
    replay = published["result"]
    faults = [((f["start_sample"], f["end_sample"]), str(f["fault"])) for f in published["sensor_faults"]]
    return plots.published_timeline(path, replay.rows, replay.scores, replay.thresholds,
                                    [tuple(r) for r in result["label_ranges"]],
                                    [tuple(e) for e in published["events"]], faults, TITLES[AE])


def _latent_plot(path: Path, run: RunInfo, model: Any, table: Table, label_mask: np.ndarray) -> Path:
    from trainer.keras_scoring import predict_windows
    from trainer.model import latent_model

    spec = run.spec
    windows = sliding_windows(run.scaler.transform(table.values), spec)
    starts = np.arange(len(windows)) * spec.hop
    # A window is anomalous when it overlaps a labeled row.
    cum = np.concatenate(([0], np.cumsum(label_mask)))
    anomalous = cum[starts + spec.window] - cum[starts] > 0
    pick = _subsample(len(windows), np.flatnonzero(anomalous), MAX_LATENT_WINDOWS)
    codes = predict_windows(latent_model(model), np.asarray(windows[pick]))
    return plots.latent_map(path, codes, anomalous[pick], TITLES[AE])


def _subsample(n: int, keep: np.ndarray, limit: int) -> np.ndarray:
    """About ``limit`` evenly spaced indices plus (up to half as many) of ``keep``: rare anomalous
    windows must not vanish from the map when the test data is long."""
    even = np.linspace(0, n - 1, min(n, limit)).astype(int) if n else np.empty(0, dtype=int)
    if len(keep) > limit // 2:
        keep = keep[np.linspace(0, len(keep) - 1, limit // 2).astype(int)]
    return np.unique(np.concatenate((even, keep)))
