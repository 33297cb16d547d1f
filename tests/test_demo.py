"""`vigil demo` end to end on a shortened recording: train -> evaluate -> convert -> agent."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import vigil.demo as demo

SCHEMA = json.loads((Path(demo.__file__).parents[1] / "edge_agent" / "schemas" / "alert.schema.json").read_text())


@pytest.mark.slow
def test_demo_runs_every_step_and_the_agent_alerts_on_the_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same pipeline as `make demo`, on a shorter recording and fewer epochs to fit the suite's budget.
    monkeypatch.setattr(demo, "N_ROWS", 6000)
    monkeypatch.setattr(demo, "DEMO_EPOCHS", 3)
    lines: list[str] = []
    summary = demo.run_demo(tmp_path / "demo", seed=0, echo=lines.append)

    out = tmp_path / "demo"
    assert (out / "run" / "run.json").is_file()
    report = (out / "run" / "eval" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 6
    assert summary["convert"]["mode"] in {"float32", "float16", "dynamic", "int8", "int8-weights"}
    assert (out / "demo.vigil").stat().st_size > 1000
    assert summary["agent"]["exit_code"] == 0
    assert summary["agent"]["faults_caught"], "the agent caught none of the injected faults"

    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert alerts, "the faulty part produced no alert"
    for alert in alerts:
        jsonschema.validate(alert, SCHEMA)
    opened = [a for a in alerts if a["phase"] == "open"]
    # Every event that opens also closes (close_on_shutdown covers one still open at the end).
    assert sorted(a["event_id"] for a in opened) == sorted(a["event_id"] for a in alerts if a["phase"] == "close")
    # Alerts start inside the faulty part: rows after the training head.
    train_end = int(demo.TRAIN_SHARE * demo.N_ROWS)
    assert all(a["start_sample"] >= train_end for a in opened)
    assert any("vigil demo summary" in line for line in lines)


def test_match_events_counts_caught_faults_and_false_events() -> None:
    faults = [(100, 199), (300, 399), (500, 599)]
    events = [(150, 160), (180, 320), (420, 430), (700, 800)]
    # (150,160) and (180,320) overlap fault 0; (180,320) also fault 1; the last two overlap nothing.
    assert demo.match_events(events, faults) == {"faults_caught": [0, 1], "false_events": 2}
