"""One self-contained HTML evaluation report (images embedded as base64) and a text summary.

The report opens from a mail attachment or a USB stick: no external files,
scripts or fonts. :func:`summarize` is the few lines ``vigil evaluate`` and
``vigil demo`` print.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from trainer.skill import SKILL_WARN_LIMIT as SKILL_LIMIT

PLOT_TITLES = {
    "timeline": "Test data, scores and thresholds",
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "threshold": "Precision / recall / F1 against threshold",
    "histogram": "Score histogram: normal vs anomalous rows",
    "latent": "Latent code map (PCA) of normal vs anomalous windows",
    "loss": "Training loss",
    "published": "What the device publishes: score, threshold in force, events and sensor faults",
}

_ROWS = [  # (label, path into one model's metrics)
    ("threshold", ("threshold",)),
    ("event precision", ("event", "precision")),
    ("event recall", ("event", "recall")),
    ("event F1", ("event", "f1")),
    ("event TP / FP / FN", None),
    ("point precision", ("point", "precision")),
    ("point recall", ("point", "recall")),
    ("point F1", ("point", "f1")),
    ("ROC-AUC", ("roc_auc",)),
    ("PR-AUC (average precision)", ("pr_auc",)),
    ("confusion [[TN, FP], [FN, TP]]", None),
    ("predicted events", None),
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-weight:600;margin:.3em 0}
.note{color:#8a5a00}code{background:#f4f4f4;padding:1px 4px}
"""


def summarize(metrics: dict[str, Any]) -> str:
    """A few lines: per model the event and point scores, then the label count."""
    lines = [f"evaluated {metrics.get('n_rows', '?')} rows ({_span(metrics.get('rows'))}) of {metrics.get('data')}; "
             f"{len(metrics.get('label_ranges', []))} labeled range(s)"]
    for m in metrics.get("models", {}).values():
        e, p = m["event"], m["point"]
        lines.append(f"  {m['title']:<18} events tp={e['tp']} fp={e['fp']} fn={e['fn']} "
                     f"P={e['precision']:.2f} R={e['recall']:.2f} F1={e['f1']:.2f} | "
                     f"points F1={p['f1']:.2f} | ROC-AUC={_num(m['roc_auc'])} PR-AUC={_num(m['pr_auc'])} "
                     f"| threshold {m['threshold']:.4g}")
    pub = metrics.get("published")
    if pub:
        e = pub["event"]
        lines.append(f"  {'published events':<18} events tp={e['tp']} fp={e['fp']} fn={e['fn']} "
                     f"P={e['precision']:.2f} R={e['recall']:.2f} F1={e['f1']:.2f} | "
                     f"{len(pub['sensor_faults'])} sensor fault(s) | policy {_compact(pub.get('policy'))}")
    lines.extend(f"  note: {n}" for n in metrics.get("notes", []))
    return "\n".join(lines)


def write_report(path: Path, metrics: dict[str, Any], run_meta: dict[str, Any], figures: dict[str, Path]) -> Path:
    """Write the HTML report to ``path``; every figure is embedded, none linked."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vigil evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>vigil-edge evaluation report</h1>",
        f"<p>Run <code>{_e(metrics.get('run'))}</code> on <code>{_e(metrics.get('data'))}</code>, data rows "
        f"{_e(_span(metrics.get('rows')))} ({metrics.get('n_rows')} rows, {metrics.get('n_scored_rows')} scored), "
        f"labels <code>{_e(metrics.get('labels'))}</code>: {len(metrics.get('label_ranges', []))} range(s) "
        f"{_e(metrics.get('label_ranges'))}.</p>",
        f"<p>{_e(metrics.get('decision'))}.</p>",
        *[f"<p class='note'>{_e(n)}</p>" for n in metrics.get("notes", [])],
        "<h2>What the device publishes</h2>", _published_section(metrics.get("published")),
        "<h2>Row-level metrics</h2>", _metrics_table(metrics.get("models", {})),
        "<h2>Run settings</h2>", _settings_table(run_meta),
        "<h2>Figures</h2>",
        *[_figure(name, file) for name, file in figures.items()],
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _published_section(pub: dict[str, Any] | None) -> str:
    """Event metrics of the published events, then one row per event and per sensor fault."""
    if not pub:
        return "<p>(not computed)</p>"
    e = pub["event"]
    parts = [f"<p>The agent's own pipeline replayed on these rows with the bundle's recommended alert policy "
             f"<code>{_e(_compact(pub.get('policy')))}</code>: {pub['n_events']} event(s); "
             f"event precision {_num(e['precision'])}, recall {_num(e['recall'])}, F1 {_num(e['f1'])} "
             f"(TP {e['tp']}, FP {e['fp']}, FN {e['fn']}). Threshold at the end: "
             f"<code>{_e(_compact(pub.get('threshold')))}</code>.</p>"]
    details = pub.get("event_details") or [{"start_sample": s, "end_sample": t} for s, t in pub["events"]]
    rows = [f"<tr><td>{i + 1}</td><td>{d['start_sample']}</td><td>{d['end_sample']}</td>"
            f"<td>{_num(d.get('peak_score'))}</td><td style='text-align:left'>{_e(_shares(d))}</td></tr>"
            for i, d in enumerate(details)]
    if rows:
        parts.append("<table><tr><th>event</th><th>first row</th><th>last row</th><th>peak score</th>"
                     "<th>per-feature contribution</th></tr>" + "".join(rows) + "</table>")
    faults = [f"<tr><td>{_e(f['fault'])}</td><td>{_e(f['feature'])}</td><td>{f['start_sample']}</td>"
              f"<td>{f['end_sample']}</td></tr>" for f in pub["sensor_faults"]]
    if faults:
        parts.append("<table><tr><th>sensor fault</th><th>feature</th><th>first row</th><th>last row</th></tr>"
                     + "".join(faults) + "</table>")
    return "\n".join(parts)


def _shares(detail: dict[str, Any]) -> str:
    """``x 61%, y 25%, z 14%``: each feature's share of the event's reconstruction error."""
    return ", ".join(f"{t['feature']} {100 * float(t['share']):.0f}%" for t in detail.get("top_features", []))


def _metrics_table(models: dict[str, Any]) -> str:
    head = "".join(f"<th>{_e(m['title'])}</th>" for m in models.values())
    body = []
    for label, keys in _ROWS:
        cells = "".join(f"<td>{_e(_cell(m, label, keys))}</td>" for m in models.values())
        body.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def _cell(m: dict[str, Any], label: str, keys: tuple[str, ...] | None) -> str:
    if keys is not None:
        value: Any = m
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        return _num(value)
    if label.startswith("event TP"):
        return f"{m['event']['tp']} / {m['event']['fp']} / {m['event']['fn']}"
    if label.startswith("confusion"):
        return json.dumps(m["confusion_matrix"]["matrix"])
    events = m["predicted_events"]
    shown = ", ".join(f"{s}-{e}" for s, e in events[:12])
    return f"{len(events)}: {shown}" + (", ..." if len(events) > 12 else "")


def _skill_text(skill: float) -> str:
    verdict = ("below the warning limit: the model reconstructs more than each window's level"
               if skill <= SKILL_LIMIT else "ABOVE the warning limit: little skill beyond each window's mean")
    return f"{skill:.3f} (held-out error / error of repeating each window's mean; {verdict} {SKILL_LIMIT:g})"


def _settings_table(meta: dict[str, Any]) -> str:
    training = meta.get("training", {}) or {}
    skill = training.get("skill_ratio")
    rows = {
        "skill ratio": None if skill is None else _skill_text(float(skill)),
        "features": meta.get("features"),
        "window / hop": f"{meta.get('window')} / {meta.get('hop')}",
        "model": meta.get("model"),
        "scaler": (meta.get("scaler") or {}).get("kind"),
        "score": meta.get("score"),
        "smoothing": meta.get("smoothing"),
        "threshold": meta.get("threshold"),
        "baseline": meta.get("baseline"),
        "detection (device policy)": (meta.get("detection") or {}).get("policy"),
        "dynamic threshold": (meta.get("detection") or {}).get("dynamic_threshold"),
        "training": {k: v for k, v in training.items() if k not in ("history", "feature_stats")},
        "seed": meta.get("seed"),
        "created": meta.get("created"),
        "versions": meta.get("versions"),
    }
    body = "".join(f"<tr><td>{_e(k)}</td><td style='text-align:left'>{_e(_compact(v))}</td></tr>"
                   for k, v in rows.items() if v is not None)
    return f"<table>{body}</table>"


def _figure(name: str, file: Path) -> str:
    data = base64.b64encode(Path(file).read_bytes()).decode("ascii")
    title = PLOT_TITLES.get(name, name)
    return (f"<figure id='{_e(name)}'><figcaption>{_e(title)}</figcaption>"
            f"<img alt='{_e(title)}' src='data:image/png;base64,{data}'></figure>")


def _span(rows: Any) -> str:
    """``[start, end)`` as ``start:end`` (end exclusive, like ``--rows``)."""
    return f"{rows[0]}:{rows[1]}" if isinstance(rows, (list, tuple)) and len(rows) == 2 else str(rows)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
