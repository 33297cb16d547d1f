"""``vigil demo``: the whole product on synthetic vibration data, offline, in a few minutes.

1. data      a 3-axis vibration recording of a rotating machine (250 Hz, 2 min):
             the first 40 % is normal and is the training part; the rest holds
             injected faults (bearing impacts, growing imbalance, spikes, a
             flat-lined axis) whose row ranges go into ``labels.csv``.
2. train     LSTM autoencoder on the normal part (``trainer.fit``).
3. evaluate  metrics, plots and the HTML report on the faulty part.
4. convert   TFLite bundle, every quantization mode checked for parity.
5. agent     the faulty part replayed through the device's own service loop
             (``edge_agent.service``) into ``alerts.jsonl``: no broker needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.sources.synthetic import AXES, generate_vibration

RATE_HZ = 250.0  # 3x shaft harmonics (<= 90 Hz) stay below Nyquist
N_ROWS = 30_000
TRAIN_SHARE = 0.4  # generate_vibration keeps the first 40 % free of faults
START_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the recording's first timestamp
# Demo training settings: the trainer's defaults with a coarser hop, fewer
# epochs and EWMA smoothing (vibration scores are noisy window to window), so
# that the whole demo stays within a few minutes on two cores. The training
# part (48 s) spans the slow load and temperature cycles of the signal.
DEMO_WINDOW = 64
DEMO_HOP = 4
DEMO_EPOCHS = 20
# Smoothing and the alert policy are the trainer's defaults for this geometry (written into the bundle):
# the demo shows what a user gets without tuning.
DEMO_SMOOTHING = None


@dataclass
class DemoPaths:
    root: Path
    data: Path = field(init=False)
    labels: Path = field(init=False)
    run: Path = field(init=False)
    evaluation: Path = field(init=False)
    bundle: Path = field(init=False)
    agent_config: Path = field(init=False)
    alerts: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.root / "vibration.csv"
        self.labels = self.root / "labels.csv"
        self.run = self.root / "run"
        self.evaluation = self.root / "run" / "eval"
        self.bundle = self.root / "demo.vigil"
        self.agent_config = self.root / "agent.toml"
        self.alerts = self.root / "alerts.jsonl"


def write_demo_data(paths: DemoPaths, seed: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """Write ``vibration.csv`` (timestamp,x,y,z) and ``labels.csv`` (start,end inclusive)."""
    values, faults = generate_vibration(N_ROWS, rate_hz=RATE_HZ, seed=seed, faults=True)
    stamps = START_EPOCH_S + np.arange(N_ROWS) / RATE_HZ
    paths.root.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([stamps, values])
    header = "timestamp," + ",".join(AXES)
    np.savetxt(paths.data, table, delimiter=",", header=header, comments="", fmt=["%.3f"] + ["%.6f"] * 3)
    lines = ["start,end"] + [f"{start},{end}" for start, end in faults]
    paths.labels.write_text("\n".join(lines) + "\n")
    return int(TRAIN_SHARE * N_ROWS), faults


def agent_config_text(paths: DemoPaths, train_end: int) -> str:
    """The agent's TOML for replaying the faulty part into a JSONL file."""
    return f"""# Written by `vigil demo`: replay the faulty part of the demo recording
# through the agent as fast as it can score, alerts into a JSONL file.
[device]
id = "demo-pump"

[bundle]
path = "{paths.bundle.name}"

[source]
kind = "replay"
path = "{paths.data.name}"
rows = "{train_end}:"
pace = "fast"

# [alerts] left out: the bundle's recommended policy (dynamic threshold, k of n, m to close) applies.

[sinks]
jsonl = "{paths.alerts.name}"
"""


def run_demo(out: str | Path = "demo_out", seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step; returns a summary dict (also written to ``out/summary.json``)."""
    paths = DemoPaths(Path(out))
    started = time.monotonic()
    summary: dict[str, Any] = {"out": str(paths.root)}

    echo(f"[1/5] data: {N_ROWS} rows of 3-axis vibration at {RATE_HZ:g} Hz -> {paths.data}")
    train_end, faults = write_demo_data(paths, seed)
    summary["faults"] = [list(f) for f in faults]

    echo(f"[2/5] train: LSTM autoencoder on rows 0:{train_end} (normal)")
    summary["train"] = _train(paths, train_end, seed, echo)

    echo(f"[3/5] evaluate on rows {train_end}:{N_ROWS} against {len(faults)} labeled faults")
    summary["evaluate"] = _evaluate(paths, train_end, echo)

    echo("[4/5] convert: TFLite bundle, every quantization mode parity-checked")
    summary["convert"] = _convert(paths, echo)

    echo("[5/5] agent: replay the faulty part through the device's service loop")
    summary["agent"] = _agent(paths, train_end, faults)

    summary["seconds"] = round(time.monotonic() - started, 1)
    (paths.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    echo(render_summary(summary, paths))
    return summary


def _train(paths: DemoPaths, train_end: int, seed: int, echo: Callable[[str], None]) -> dict[str, Any]:
    from trainer.fit import TrainConfig, run_train

    cfg = TrainConfig(
        data=paths.data, out=paths.run, train_rows=(0, train_end), window=DEMO_WINDOW, hop=DEMO_HOP,
        epochs=DEMO_EPOCHS, smoothing=DEMO_SMOOTHING, seed=seed, echo=echo,
    )
    run = run_train(cfg)
    threshold = run.meta["threshold"]
    return {"threshold": threshold["value"], "strategy": threshold["strategy"],
            "epochs": run.meta["training"].get("epochs_run")}


def _evaluate(paths: DemoPaths, train_end: int, echo: Callable[[str], None]) -> dict[str, Any]:
    from trainer.evaluate import run_evaluate

    metrics = run_evaluate(paths.run, paths.data, paths.labels, rows=(train_end, None), out=paths.evaluation)
    out: dict[str, Any] = {"report": str(paths.evaluation / "report.html")}
    for name, model in metrics.get("models", {}).items():
        event = model.get("event", {})
        out[name] = {"event_f1": event.get("f1"), "event_recall": event.get("recall"),
                     "false_events": event.get("fp"), "pr_auc": model.get("pr_auc")}
    published = (metrics.get("published") or {}).get("event")
    if published:  # what the device's pipeline publishes (anomaly events only; sensor faults apart)
        out["published events"] = {"event_f1": published.get("f1"), "event_recall": published.get("recall"),
                                   "false_events": published.get("fp"), "pr_auc": None}
    return out


def _convert(paths: DemoPaths, echo: Callable[[str], None]) -> dict[str, Any]:
    from converter.convert import ConvertConfig, run_convert

    result = run_convert(ConvertConfig(run=paths.run, out=paths.bundle), echo=echo)
    return {"bundle": str(result.bundle_path), "mode": result.mode}


def _agent(paths: DemoPaths, train_end: int, faults: list[tuple[int, int]]) -> dict[str, Any]:
    from edge_agent.config import load_config
    from edge_agent.service import AgentService

    paths.agent_config.write_text(agent_config_text(paths, train_end))
    paths.alerts.unlink(missing_ok=True)
    code = AgentService(load_config(paths.agent_config)).run()
    alerts = [json.loads(line) for line in paths.alerts.read_text().splitlines() if line.strip()]
    closes = [a for a in alerts if a.get("phase") == "close"]
    closed = [(a["start_sample"], a["end_sample"]) for a in closes]
    sensor = [f"{a.get('fault')}({a.get('feature')})" for a in closes if a.get("kind") == "sensor_fault"]
    return {"exit_code": code, "alerts": len(alerts), "events": len(closed), "sensor_faults": sensor,
            "file": str(paths.alerts), **match_events(closed, faults)}


def match_events(events: list[tuple[int, int]], faults: list[tuple[int, int]]) -> dict[str, Any]:
    """Which faults the agent's events overlap, and how many events overlap none (false alarms)."""
    def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] <= b[1] and b[0] <= a[1]

    caught = [i for i, fault in enumerate(faults) if any(overlaps(e, fault) for e in events)]
    false = sum(1 for e in events if not any(overlaps(e, fault) for fault in faults))
    return {"faults_caught": caught, "false_events": false}


def render_summary(summary: dict[str, Any], paths: DemoPaths) -> str:
    lines = ["", "vigil demo summary", "------------------"]
    for name, m in summary["evaluate"].items():
        if isinstance(m, dict):
            lines.append(f"{name:>18}: event F1 {_fmt(m['event_f1'])}, recall {_fmt(m['event_recall'])}, "
                         f"false events {m['false_events']}, PR-AUC {_fmt(m['pr_auc'])}")
    agent = summary["agent"]
    lines += [
        f"            bundle: {summary['convert']['bundle']} ({summary['convert']['mode']})",
        f"             agent: {agent['events']} events ({len(agent.get('sensor_faults', []))} sensor faults: "
        f"{', '.join(agent.get('sensor_faults', [])) or 'none'}); caught {len(agent['faults_caught'])} of "
        f"{len(summary['faults'])} injected faults ({_names(agent['faults_caught'])}), "
        f"{agent['false_events']} false -> {agent['file']}",
        f"            report: {summary['evaluate']['report']}",
        f"              time: {summary['seconds']} s",
    ]
    return "\n".join(lines)


FAULT_NAMES = ("bearing impacts", "imbalance", "spikes", "flat-lined y")


def _names(indices: list[int]) -> str:
    return ", ".join(FAULT_NAMES[i] for i in indices) or "none"


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"
