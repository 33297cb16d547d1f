"""Give the quality run's cached runs and bundles the trainer's *current* recommended score mode.

The trainer writes ``detection.score`` from ``edge_agent.detection.policy.recommended_score`` and
nothing else in the run or the model depends on it, so when only that default changes, retraining
would reproduce the same models with a new ``detection.score``. This rewrites that one field in
``run/run.json`` and in ``auto.vigil``'s manifest (re-packed through the one bundle writer), so that
``benchmarks.quality --rejudge`` reports the ``float`` / ``auto`` columns as a bundle built today
publishes them.

    .venv/bin/python -m benchmarks.refresh_score_mode benchmarks/.work/quality-v3
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_agent.bundle import load_bundle, pack_bundle
from edge_agent.detection.policy import recommended_score


def refresh(series_dir: Path) -> str | None:
    run_json, bundle_path = series_dir / "run" / "run.json", series_dir / "auto.vigil"
    if not (run_json.is_file() and bundle_path.is_file()):
        return None
    bundle = load_bundle(bundle_path)
    score = recommended_score(bundle.spec.window, bundle.spec.hop).to_dict()
    run = json.loads(run_json.read_text())
    if "detection" in run:
        run["detection"]["score"] = score
        run_json.write_text(json.dumps(run, indent=2) + "\n")
    manifest = json.loads(json.dumps(bundle.manifest))
    if "detection" in manifest:
        manifest["detection"]["score"] = score
        bundle_path.write_bytes(pack_bundle(manifest, bundle.model_bytes))
    return str(score["mode"])


if __name__ == "__main__":
    for path in sorted(Path(sys.argv[1]).iterdir()):
        mode = refresh(path) if path.is_dir() else None
        if mode is not None:
            print(f"{path.name}: {mode}")
