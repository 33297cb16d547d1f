"""The fleet summary: ``fleet.json`` (every asset's result) and ``fleet.html`` (one table)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

FORMAT = "vigil-fleet/1"
COLUMNS = ("asset", "status", "threshold", "ROC AUC", "PR AUC", "published event F1", "bundle mode", "bundle size",
           "train s", "evaluate s", "convert s", "total s", "note")


def counts(results: list[dict[str, Any]]) -> dict[str, int]:
    ok = sum(r.get("status") == "ok" for r in results)
    return {"assets": len(results), "ok": ok, "failed": len(results) - ok,
            "skipped": sum(bool(r.get("skipped")) for r in results)}


def write_summary(out: Path, header: dict[str, Any], results: list[dict[str, Any]]) -> tuple[Path, Path]:
    doc = {"format": FORMAT, **header, "counts": counts(results), "assets": results}
    json_path, html_path = out / "fleet.json", out / "fleet.html"
    _atomic(json_path, json.dumps(doc, indent=2) + "\n")
    _atomic(html_path, render_html(doc, out))
    return json_path, html_path


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _size(n: Any) -> str:
    return "" if n is None else f"{n / 1024:.1f} KiB"


def row_cells(result: dict[str, Any]) -> list[str]:
    metrics = result.get("metrics") or {}
    bundle = result.get("bundle") or {}
    times = result.get("times_s") or {}
    note = result.get("error", "")
    if result.get("skipped"):
        note = "finished earlier (skipped)"
    return [result.get("asset", "?"), result.get("status", "?"), _num(result.get("threshold"), 4),
            _num(metrics.get("roc_auc")), _num(metrics.get("pr_auc")), _num(metrics.get("published_event_f1")),
            bundle.get("mode") or "", _size(bundle.get("bytes")), _num(times.get("train")),
            _num(times.get("evaluate")), _num(times.get("convert")), _num(result.get("time_s")), note]


def render_html(doc: dict[str, Any], out: Path) -> str:
    rows = []
    for result in doc["assets"]:
        cells = [html.escape(c) for c in row_cells(result)]
        report = result.get("report")
        if report and Path(report).is_file():
            cells[0] = f'<a href="{html.escape(os.path.relpath(report, out))}">{cells[0]}</a>'
        css = "ok" if result.get("status") == "ok" else "failed"
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    c = doc["counts"]
    engine = html.escape(str(doc.get("engine", "")))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>vigil fleet: {html.escape(str(doc.get("fleet", "")))}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2),td:last-child
{{text-align:left}}tr.failed td{{background:#fde8e8}}</style></head><body>
<h1>Fleet {html.escape(str(doc.get("fleet", "")))}</h1>
<p>{c["assets"]} assets: {c["ok"]} ok, {c["failed"]} failed, {c["skipped"]} finished earlier and skipped.
Engine: {engine}, wall time {_num(doc.get("wall_s"))} s. Metrics are those of <code>vigil evaluate</code>
(assets with labels only; the labels never train); the asset name links to its report.</p>
<table><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in COLUMNS)}</tr>
{chr(10).join(rows)}
</table></body></html>
"""
