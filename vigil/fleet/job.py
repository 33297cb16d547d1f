"""One asset of a fleet: train -> evaluate (with labels) -> convert, through the trainer's and
converter's own entry points (``trainer.fit.run_train``, ``trainer.evaluate.run_evaluate``,
``converter.convert.run_convert``).

Runs in a process of its own (a local child process, or a Ray worker used for one task), so a
crash, a leak or TensorFlow's global state costs that asset only. Its output, one folder per
asset::

    <out>/<name>/run/            the run directory (vigil train)
    <out>/<name>/eval/           metrics.json + report.html (vigil evaluate), with labels only
    <out>/<name>/<name>.vigil    the bundle (vigil convert), + <name>.conversion.json
    <out>/<name>/log.txt         everything the three steps printed
    <out>/<name>/result.json     status, fingerprint, threshold, metrics, bundle mode/size, times

``result.json`` is written last and atomically: a finished asset has one with ``status = "ok"``
and the fingerprint of its current spec (that is what a resumed run skips).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError
from edge_agent.readers import parse_rows
from vigil.fleet.spec import Asset

RESULT_NAME = "result.json"
FORMAT = "vigil-fleet-asset/1"


def asset_dir(out: Path, name: str) -> Path:
    return out / name


def read_result(out: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((asset_dir(out, name) / RESULT_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(asset: Asset, out: Path) -> bool:
    """Done before with this very spec and data, and its bundle is still there."""
    result = read_result(out, asset.name)
    return bool(result and result.get("status") == "ok" and result.get("fingerprint") == asset.fingerprint()
                and Path(result.get("bundle", {}).get("path", "")).is_file())


def run_asset(asset: Asset, out: Path, threads: int) -> dict[str, Any]:
    """Train, evaluate and convert one asset; never raises: a failure is the result's ``error`` line."""
    folder = asset_dir(out, asset.name)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {"format": FORMAT, "asset": asset.name, "fingerprint": asset.fingerprint(),
                              "data": str(asset.data), "status": "failed", "stage": "train", "times_s": {},
                              "pid": os.getpid(), "host": os.uname().nodename}
    with open(folder / "log.txt", "w", encoding="utf-8") as log:
        def echo(line: str) -> None:
            log.write(line.rstrip("\n") + "\n")
            log.flush()

        try:
            _limit_threads(threads)
            _stages(asset, folder, result, echo)
            result["status"] = "ok"
            result.pop("stage")
        except VigilInputError as exc:
            result["error"] = str(exc)
        except Exception as exc:  # an asset's bug or crash must not stop the fleet: report it in one line
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            echo(traceback.format_exc())
    result["time_s"] = round(time.time() - started, 3)
    write_result(folder, result)
    return result


def write_result(folder: Path, result: dict[str, Any]) -> None:
    tmp = folder / f".{RESULT_NAME}.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, folder / RESULT_NAME)


def _stages(asset: Asset, folder: Path, result: dict[str, Any], echo: Any) -> None:
    from converter.convert import ConvertConfig, run_convert
    from trainer.fit import TrainConfig, run_train

    t0 = time.time()
    train = dict(asset.train)
    if "units" in train:
        train["units"] = tuple(train["units"])
    run = run_train(TrainConfig(data=asset.data, out=folder / "run", columns=asset.columns,
                                train_rows=parse_rows(asset.rows), echo=echo, **train))
    result["times_s"]["train"] = round(time.time() - t0, 3)
    result["threshold"] = run.threshold
    result["training"] = _training_summary(run.meta)
    if asset.labels is not None:
        result["stage"] = "evaluate"
        from trainer.evaluate import run_evaluate

        t0 = time.time()
        metrics = run_evaluate(run.path, asset.data, asset.labels, rows=parse_rows(asset.eval_rows),
                               out=folder / "eval", channel=asset.channel, series=asset.series)
        result["times_s"]["evaluate"] = round(time.time() - t0, 3)
        result["metrics"] = metrics_summary(metrics)
        result["report"] = str(folder / "eval" / "report.html")
    result["stage"] = "convert"
    t0 = time.time()
    bundle = folder / f"{asset.name}.vigil"
    converted = run_convert(ConvertConfig(run=run.path, out=bundle, quiet=True, **asset.convert))
    result["times_s"]["convert"] = round(time.time() - t0, 3)
    result["bundle"] = {"path": str(bundle), "mode": converted.mode, "bytes": bundle.stat().st_size}


def _training_summary(meta: dict[str, Any]) -> dict[str, Any]:
    training = meta.get("training", {})
    return {"window": meta.get("window"), "hop": meta.get("hop"), "features": meta.get("features"),
            "epochs_run": training.get("epochs_run"), "best_epoch": training.get("best_epoch"),
            "skill_ratio": training.get("skill_ratio"),
            "threshold_strategy": meta.get("threshold", {}).get("strategy")}


def metrics_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures a fleet table shows, from ``vigil evaluate``'s metrics.json."""
    ae = metrics.get("models", {}).get("lstm_autoencoder", {})
    published = metrics.get("published", {})
    return {"roc_auc": ae.get("roc_auc"), "pr_auc": ae.get("pr_auc"),
            "row_f1": ae.get("point", {}).get("f1"), "window_event_f1": ae.get("event", {}).get("f1"),
            "published_event_f1": published.get("event", {}).get("f1"), "published_events": published.get("n_events"),
            "label_ranges": len(metrics.get("label_ranges", []))}


def _limit_threads(threads: int) -> None:
    """Give TensorFlow this asset's share of the cores (several assets train side by side).

    TensorFlow reads these when it starts, which is later (an asset whose data is bad never pays for
    the import); the converter's worker processes inherit them.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
