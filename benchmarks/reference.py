"""Reference models for the speed/size/footprint benchmarks, trained on synthetic vibration.

The reference is the product's default architecture (LSTM autoencoder, units
32/16) on 3 features. It is trained quickly (few epochs: speed and size do not
depend on how well it is trained) through the trainer's own ``run_train`` and
converted through ``run_convert``, so the benchmark measures exactly what a
user ships. Results are cached in ``benchmarks/.work/`` (delete it to retrain).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import log

WORK = Path(__file__).resolve().parent / ".work"
FEATURES = ("x", "y", "z")  # the synthetic source's feature names


def vibration(n_rows: int, seed: int = 0, faults: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """3-axis 1 kHz vibration from the project's generator (sines if it is not there yet)."""
    try:
        from edge_agent.sources.synthetic import generate_vibration
    except ImportError:
        rng = np.random.default_rng(seed)
        t = np.arange(n_rows)[:, None] / 1000.0
        f = np.array([[29.0, 58.0, 87.0]])
        return np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal((n_rows, 3)), []
    values, faults_at = generate_vibration(n_rows, rate_hz=1000.0, seed=seed, faults=faults)
    return np.asarray(values, dtype=np.float64), list(faults_at)


def write_csv(path: Path, values: np.ndarray, rate_hz: float = 1000.0) -> Path:
    """CSV with a timestamp column (seconds) and ax, ay, az."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("timestamp",) + FEATURES)
        for i, row in enumerate(values):
            out.writerow([f"{i / rate_hz:.3f}"] + [f"{v:.6f}" for v in row])
    return path


def train_config(data: Path, out: Path, **options: Any) -> Any:
    """A ``TrainConfig`` with only the fields the caller sets; the trainer's defaults for the rest."""
    from trainer.fit import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    wanted = {"data": data, "out": out, **options}
    unknown = sorted(set(wanted) - names)
    if unknown:
        raise RuntimeError(f"TrainConfig has no field(s) {unknown}; has {sorted(names)}")
    return TrainConfig(**wanted)


def reference_run(name: str, window: int, hop: int, rows: int = 20000, epochs: int = 3,
                  units: tuple[int, ...] = (32, 16)) -> Path:
    """Train (or reuse) the reference run ``.work/<name>/run``."""
    from trainer.fit import run_train

    base = WORK / name
    run_dir = base / "run"
    if (run_dir / "run.json").is_file():
        return run_dir
    values, _ = vibration(rows, seed=1)
    data = write_csv(base / "train.csv", values)
    log(f"training reference {name}: window {window}, hop {hop}, units {units}, {epochs} epochs")
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = train_config(data, run_dir, window=window, hop=hop, units=tuple(units), epochs=epochs,
                       columns=list(FEATURES))
    run_train(cfg)
    return run_dir


def convert(run_dir: Path, out: Path, quantize: str) -> dict[str, Any]:
    """``run_convert`` one mode (``force`` so a failing parity still yields a timed bundle)."""
    from converter.convert import ConvertConfig, run_convert

    out.parent.mkdir(parents=True, exist_ok=True)
    force = quantize != "auto"
    result = run_convert(ConvertConfig(run=run_dir, out=out, quantize=quantize, force=force))
    return {"path": str(result.bundle_path), "mode": result.mode, "table": _plain(result.table)}


def reference_bundles(run_dir: Path) -> dict[str, Any]:
    """Every quantization mode plus ``auto``; cached next to the run."""
    cache = run_dir.parent / "bundles.json"
    if cache.is_file():
        done = json.loads(cache.read_text())
        from converter.quantize import MODES

        fresh = set(done) == set(MODES) | {"auto"}
        if fresh and all(v.get("path") is None or Path(v["path"]).is_file() for v in done.values()):
            return done
    from converter.quantize import MODES

    out: dict[str, Any] = {}
    for mode in tuple(MODES) + ("auto",):
        log(f"converting {run_dir} -> {mode}")
        try:
            out[mode] = convert(run_dir, run_dir.parent / "bundles" / f"{mode}.vigil", mode)
        except Exception as exc:  # a mode the converter cannot make is a result, not a crash
            out[mode] = {"path": None, "error": f"{type(exc).__name__}: {exc}"}
    cache.write_text(json.dumps(out, indent=2, default=str))
    return out


def parity_by_mode(bundles: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Parity of every mode from the ``auto`` conversion's table (the converter's own check)."""
    table = bundles.get("auto", {}).get("table") or {}
    out = {}
    for m in table.get("modes", []):
        p = m.get("parity") or {}
        worst = p.get("worst") or {}
        out[m["mode"]] = {"passed": p.get("passed"), "spearman": worst.get("spearman"),
                          "flipped_share": worst.get("flipped_share"), "status": m.get("status"),
                          "reason": m.get("reason")}
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
