"""Benchmark: the published events under variants of the detection defaults, over the quality run's scores.

Reuses what ``benchmarks.quality`` left in ``benchmarks/.work/quality/<series>/``
(the trained run and the float model's window scores, ``float_windows.npz``),
so no model is trained or run: each variant replays the same window scores
through the device's pipeline with one part of the defaults changed, and the
published events are judged against the labels (the event rule of
``trainer.metrics``). It answers "which part of the default is doing the work"
and shows what was tried; labels are only used to judge, never to choose per
series.

Run: ``.venv/bin/python -m benchmarks.detection_variants`` (after ``benchmarks.quality``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from benchmarks.common import log, md_table, write_results
from benchmarks.datasets import all_series
from benchmarks.quality import CachedScorer
from benchmarks.reference import WORK

COMMAND = ".venv/bin/python -m benchmarks.detection_variants"


def variants() -> dict[str, dict[str, Any]]:
    """name -> changes to the pipeline settings (``policy`` fields, ``smoothing``, ``dynamic``)."""
    return {
        "defaults (bundle policy + dynamic threshold)": {},
        "static threshold only": {"dynamic": False},
        "no alert policy (k = n = m = 1, no smoothing)": {"k": 1, "n": 1, "m": 1, "cooldown": 0, "smoothing": None},
        "no alert policy, static threshold (the old default)": {"k": 1, "n": 1, "m": 1, "cooldown": 0,
                                                                 "smoothing": None, "dynamic": False},
        "open at a quarter of n (k = n / 4)": {"k_fraction": 0.25},
        "open at a quarter of n, static threshold only": {"k_fraction": 0.25, "dynamic": False},
        "close after one window length (m / 2)": {"m_fraction": 0.5},
        "sensitivity 0.8": {"sensitivity": 0.8},
        "sensitivity 1.25": {"sensitivity": 1.25},
    }


def settings_for(bundle: Any, change: dict[str, Any]) -> Any:
    from edge_agent.alerts import AlertPolicy
    from edge_agent.pipeline import PipelineSettings

    base = PipelineSettings.for_bundle(bundle)
    p = base.policy
    fields = {"sensitivity": p.sensitivity, "k": p.k, "n": p.n, "m": p.m, "cooldown": p.cooldown}
    fields.update({k: v for k, v in change.items() if k in fields})
    if "k_fraction" in change:
        fields["k"] = max(1, round(change["k_fraction"] * p.n))
    if "m_fraction" in change:
        fields["m"] = max(1, round(change["m_fraction"] * p.m))
    out = dataclasses.replace(base, policy=AlertPolicy(**fields), dynamic_threshold=change.get("dynamic", True))
    if "smoothing" in change:
        out = dataclasses.replace(out, smoothing_alpha=change["smoothing"])
    return out


def main() -> None:
    from trainer.pipeline_view import bundle_view
    from trainer.published import published_events
    from trainer.rundir import read_run

    rows: list[dict[str, Any]] = []
    for series in all_series():
        base = WORK / "quality" / series.name
        cache = base / "float_windows.npz"
        if not cache.is_file() or not (base / "run" / "run.json").is_file():
            log(f"skip {series.name}: no cached scores (run benchmarks.quality first)")
            continue
        run = read_run(base / "run")
        bundle = bundle_view(run)
        ranges = series.label_ranges(series.load_test())
        for name, change in variants().items():
            pub = published_events(bundle, series.path, ranges, rows=series.test_rows, columns=run.features,
                                   scorer=CachedScorer.load(cache), settings=settings_for(bundle, change))
            e = pub["event"]
            rows.append({"series": series.name, "group": series.group, "variant": name,
                         "tp": e["tp"], "fp": e["fp"], "fn": e["fn"]})
        log(f"{series.name}: done")
    totals = []
    for name in variants():
        mine = [r for r in rows if r["variant"] == name]
        tp, fp, fn = (sum(r[k] for r in mine) for k in ("tp", "fp", "fn"))
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        totals.append({"variant": name, "series": len(mine), "tp": tp, "fp": fp, "fn": fn, "precision": p,
                       "recall": rc, "f1": 2 * p * rc / (p + rc) if p + rc else 0.0})
    table = md_table(["variant", "series", "tp", "fp", "fn", "precision", "recall", "F1 (micro)"],
                     [[t[k] for k in ("variant", "series", "tp", "fp", "fn", "precision", "recall", "f1")]
                      for t in totals])
    write_results("detection_variants", {"totals": totals, "series": rows}, table, COMMAND)
    print(json.dumps(totals, indent=1))


if __name__ == "__main__":
    main()
