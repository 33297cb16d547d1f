"""The agent loop end to end: replay/stdin source -> real TFLite scoring -> JSONL sink."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.service import AgentService
from tests.models import normal_rows, with_anomalies

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "edge_agent" / "schemas" / "alert.schema.json").read_text())
ANOMALIES = [(300, 340), (800, 830)]
POLICY = {"k": 2, "n": 3, "m": 3}


def write_anomalous_csv(path: Path, n_rows: int = 1200, ranges: list[tuple[int, int]] | None = None) -> Path:
    """Data from the tiny run's distribution (continuing after its training rows) with disturbances."""
    rows = with_anomalies(normal_rows(n_rows, 3, 0, start=720), ANOMALIES if ranges is None else ranges)
    np.savetxt(path, rows, delimiter=",", header="f0,f1,f2", comments="", fmt="%.6f")
    return path


def agent_toml(folder: Path, bundle: Path, *, source: str, sections: str = "") -> Path:
    """An agent config in ``folder`` with the given ``[source]`` body and extra sections."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(f"""
        [device]
        id = "test-dev"

        [bundle]
        path = "{bundle}"

        [source]
        """) + textwrap.dedent(source).strip() + "\n\n" + textwrap.dedent(f"""
        [alerts]
        k = {POLICY['k']}
        n = {POLICY['n']}
        m = {POLICY['m']}
        """) + textwrap.dedent(sections)
    path = folder / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def vigil_argv(*args: str) -> list[str]:
    """``vigil ARGS`` through this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-c", "import sys; from vigil.cli import main; sys.argv[0] = 'vigil'; main()", *args]


def vigil(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(vigil_argv(*args), capture_output=True, text=True, timeout=120, **kwargs)


def write_stamped_csv(path: Path, n_rows: int = 1200, nan_rows: tuple[int, ...] = ()) -> Path:
    """Like :func:`write_anomalous_csv` with a 100 Hz timestamp column and optional NaN rows."""
    rows = with_anomalies(normal_rows(n_rows, 3, 0, start=720), ANOMALIES)
    rows[list(nan_rows), 1] = np.nan
    stamps = 1_790_000_000.0 + np.arange(n_rows) / 100.0
    lines = ["timestamp,f0,f1,f2"] + [f"{t:.2f},{a:.6f},{b:.6f},{c:.6f}"
                                      for t, (a, b, c) in zip(stamps, rows, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


SCORE_CONFIGS = {
    "bundle-policy": ("", ()),
    "custom-alerts-hold": ("[alerts]\nk = 2\nn = 3\nm = 4\ncooldown = 3\nsmoothing = 0.5\nsensitivity = 0.9\n"
                           "[quality]\npolicy = \"hold\"\n", (100, 101, 500)),
    "skip-with-range": ("[alerts]\nk = 1\nn = 2\nm = 2\n[quality]\npolicy = \"skip\"\n"
                        "valid_range = [-1000.0, 1000.0]\n",
                        (200, 640, 641, 642)),
    # The other score mode than the bundle's (tiny bundles are trained with the trainer's default).
    "score-window": ("[alerts]\nscore = \"window\"\nk = 1\nn = 2\nm = 2\n", ()),
    "score-row": ("[alerts]\nscore = \"row\"\nk = 1\nn = 2\nm = 2\n", ()),
}


@pytest.mark.slow  # uses the converted tiny bundle
@pytest.mark.parametrize("case", list(SCORE_CONFIGS))
def test_agent_and_vigil_score_config_publish_the_same_events(tmp_path: Path, tiny_bundle_3f: Path,
                                                              case: str) -> None:
    from typer.testing import CliRunner

    from vigil.cli import app

    sections, nan_rows = SCORE_CONFIGS[case]
    data = write_stamped_csv(tmp_path / "data.csv", nan_rows=nan_rows)
    config = tmp_path / "agent.toml"
    config.write_text(textwrap.dedent(f"""
        [device]
        id = "test-dev"
        [bundle]
        path = "{tiny_bundle_3f}"
        [source]
        kind = "replay"
        path = "data.csv"
        pace = "fast"
        block_rows = 37
        [sinks]
        jsonl = "out/alerts.jsonl"
        """) + sections, encoding="utf-8")
    assert AgentService(load_config(config)).run() == 0
    published = read_jsonl(tmp_path / "out" / "alerts.jsonl")

    events = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["score", str(tiny_bundle_3f), str(data), "--config", str(config),
                                      "--out", str(tmp_path / "scores.csv"), "--events", str(events)])
    assert result.exit_code == 0, result.output
    scored = read_jsonl(events)

    assert len(published) >= 2 * len(ANOMALIES) and len(scored) == len(published)
    for ours, theirs in zip(published, scored, strict=True):
        jsonschema.validate(ours, SCHEMA)
        assert {k: v for k, v in ours.items() if k != "event_id"} == {k: v for k, v in theirs.items()
                                                                       if k != "event_id"}
    closes = [a for a in published if a["phase"] == "close"]
    assert closes[-1]["close_reason"] in ("normal", "end_of_stream")


@pytest.mark.slow  # uses the converted tiny bundle
def test_replay_agent_reports_every_disturbance_and_health(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    write_anomalous_csv(tmp_path / "data.csv")
    config = agent_toml(tmp_path, tiny_bundle_3f, source="""
        kind = "replay"
        path = "data.csv"
        pace = "fast"
        block_rows = 100
        """, sections='[sinks]\njsonl = "out/alerts.jsonl"\nhealth_jsonl = true\n[health]\ninterval_s = 0.2\n')
    service = AgentService(load_config(config))
    assert service.run() == 0

    alerts = read_jsonl(tmp_path / "out" / "alerts.jsonl")
    for payload in alerts:
        jsonschema.validate(payload, SCHEMA)
    opens = [a for a in alerts if a["phase"] == "open"]
    closes = [a for a in alerts if a["phase"] == "close"]
    assert [a["event_id"] for a in opens] == [a["event_id"] for a in closes]  # every open is closed
    assert len(closes) >= len(ANOMALIES)
    # Each injected disturbance is inside one reported event.
    for start, end in ANOMALIES:
        assert any(c["start_sample"] <= end + 16 and c["end_sample"] >= start for c in closes)

    health = json.loads((tmp_path / "out" / "alerts.health.json").read_text())
    assert health["samples"] == 1200 and health["windows_scored"] == 1200 - 16 + 1
    assert health["scoring_latency_ms"]["p50"] > 0 and health["bad_samples"] == 0
    assert health["alerts_published"] == len(alerts) and health["model_id"] == closes[0]["model_id"]


@pytest.mark.slow  # uses the converted tiny bundle
def test_cli_run_replay_exits_zero_and_logs_one_line_per_event(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    write_anomalous_csv(tmp_path / "data.csv", n_rows=500, ranges=[(300, 340)])
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                        sections="[sinks]\nstdout = true\n")
    result = vigil("agent", "run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    alerts = [json.loads(line) for line in lines if line.startswith("{")]
    assert [a["phase"] for a in alerts] == ["open", "close"]
    log_lines = [line for line in lines if "vigil.agent: alert" in line]
    assert len(log_lines) == 2 and alerts[0]["event_id"] in log_lines[0]
    assert any("ready" in line for line in lines) and any("stopping (end of source)" in line for line in lines)


@pytest.mark.slow  # uses the converted tiny bundle
def test_bad_samples_from_stdin_are_counted_not_fatal(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    rows = normal_rows(300, 3, 0, start=720)
    lines = [",".join(f"{v:.5f}" for v in row) for row in rows]
    lines[50] = "nan,0.1,0.2"           # NaN
    lines[100] = "garbage line"         # unparsable
    lines[150] = "1e9,0.0,0.0"          # outside valid_range
    lines[200] = "0.1,0.2"              # wrong field count
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "stdin"\nrate_hz = 100.0\n',
                        sections='[quality]\nvalid_range = [-100.0, 100.0]\n'
                                 '[sinks]\njsonl = "alerts.jsonl"\nhealth_jsonl = true\n')
    result = vigil("agent", "run", "--config", str(config), input="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr + result.stdout
    health = json.loads((tmp_path / "alerts.health.json").read_text())
    assert health["bad_samples"] == 4
    assert health["samples"] >= 296
    # Lone bad samples are skipped inside the window (policy skip): every window of the 296 good rows is scored.
    assert health["windows_scored"] == 296 - 16 + 1


@pytest.mark.slow  # uses the converted tiny bundle
def test_sigterm_stops_cleanly_and_closes_the_open_event(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    # An endless anomaly: the event opens and stays open until the agent is told to stop.
    rows = with_anomalies(normal_rows(400, 3, 0, start=720), [(0, 399)])
    np.savetxt(tmp_path / "loud.csv", rows, delimiter=",", header="f0,f1,f2", comments="", fmt="%.6f")
    config = agent_toml(tmp_path, tiny_bundle_3f, source="""
        kind = "replay"
        path = "loud.csv"
        pace = "realtime"
        rate_hz = 100.0
        speed = 4.0
        loop = true
        """, sections='[sinks]\njsonl = "alerts.jsonl"\n')
    proc = subprocess.Popen(vigil_argv("agent", "run", "--config", str(config)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not read_jsonl(tmp_path / "alerts.jsonl") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert read_jsonl(tmp_path / "alerts.jsonl"), "no alert opened"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    assert [a["phase"] for a in alerts] == ["open", "close"]
    assert alerts[0]["event_id"] == alerts[1]["event_id"]
    assert "stopping (SIGTERM)" in out and "(agent_stopped)" in out
    assert alerts[1]["close_reason"] == "agent_stopped"


BLOCKER = """
import sys
BLOCKED = {"tensorflow", "keras", "tf_keras", "sklearn", "matplotlib"}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked in this edge-only test: {name}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
sys.argv = ["vigil", *sys.argv[1:]]
from vigil.cli import main
try:
    main()
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LEAKED", leaked, file=sys.stderr)
"""


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_runs_without_the_train_stack(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    write_anomalous_csv(tmp_path / "data.csv", n_rows=500, ranges=[(300, 340)])
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                        sections='[sinks]\njsonl = "alerts.jsonl"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", BLOCKER, "agent", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "LEAKED []" in result.stderr
    assert [a["phase"] for a in read_jsonl(tmp_path / "alerts.jsonl")] == ["open", "close"]


@pytest.mark.slow  # uses the converted tiny bundle
def test_missing_sensor_is_retried_until_it_appears(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    # A serial sensor (a pty standing in for a USB-UART) that is not plugged in when the agent starts.
    port = tmp_path / "ttyVIGIL"
    config = agent_toml(tmp_path, tiny_bundle_3f, source=f'kind = "serial"\nport = "{port}"\nrate_hz = 100.0\n',
                        sections='[sinks]\njsonl = "alerts.jsonl"\nhealth_jsonl = true\n[health]\ninterval_s = 0.2\n')
    log = tmp_path / "agent.log"
    health_file = tmp_path / "alerts.health.json"

    def wait_for(condition, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    with log.open("w") as out:
        proc = subprocess.Popen(vigil_argv("agent", "run", "--config", str(config)),
                                stdout=out, stderr=subprocess.STDOUT)
    master, slave = os.openpty()
    try:
        assert wait_for(lambda: "source unavailable" in log.read_text()), log.read_text()
        os.symlink(os.ttyname(slave), port)  # the sensor appears
        assert wait_for(lambda: "source serial open" in log.read_text()), log.read_text()
        rows = normal_rows(300, 3, 0, start=720)
        os.write(master, "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in rows).encode())

        def scored() -> bool:
            try:
                return json.loads(health_file.read_text())["windows_scored"] >= 300 - 16 + 1
            except (OSError, ValueError):
                return False

        assert wait_for(scored), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
    health = json.loads(health_file.read_text())
    assert health["source"]["open_failures"] >= 1 and health["sensor_errors"] >= 1
    assert health["samples"] == 300 and health["bad_samples"] == 0


@pytest.mark.slow  # uses the converted tiny bundle
def test_event_left_open_by_a_killed_agent_is_closed_at_restart_with_agent_restarted(
    tmp_path: Path, tiny_bundle_3f: Path
) -> None:
    from edge_agent.event_state import STATE_FILE

    write_anomalous_csv(tmp_path / "data.csv", n_rows=300, ranges=[])
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                        sections='[sinks]\njsonl = "alerts.jsonl"\n[spool]\npath = "state/spool.db"\n')
    # What a kill -9 leaves behind while an event is open: its open payload in the state file.
    left_open = {"schema": "vigil.alert/1", "kind": "anomaly", "event_id": "e" * 32, "phase": "open",
                 "device_id": "test-dev", "model_id": "old", "start": None, "end": None, "start_sample": 5,
                 "end_sample": 5, "peak_score": 1.0, "mean_score": 1.0, "threshold": 0.5, "window_count": 1,
                 "top_features": []}
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / STATE_FILE).write_text(json.dumps({left_open["event_id"]: left_open}))
    assert AgentService(load_config(config)).run() == 0
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    assert alerts[0]["event_id"] == left_open["event_id"] and alerts[0]["phase"] == "close"
    assert alerts[0]["close_reason"] == "agent_restarted"
    jsonschema.validate(alerts[0], SCHEMA)
    assert not (tmp_path / "state" / STATE_FILE).exists()  # nothing open any more after a clean stop
