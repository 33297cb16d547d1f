"""Benchmark 2: the agent's footprint, next to a process that scores with Keras.

The agent is the real thing: ``.venv/bin/vigil agent run --config X`` with the
reference bundle for a 3-axis 1 kHz stream (window 128, hop 32; the bundle
``--quantize auto`` picks, ``benchmarks/reference.py``), the synthetic
vibration source, and the deployed sink set: MQTT to a local mosquitto (with
its SQLite spool) plus the JSONL file sink. Measured from outside through /proc:

- cold start: process start to the first scored window, with the source
  unpaced (``pace = "fast"``, ``block_rows`` = one window) so the figure is the
  agent's own start-up, not the 128 ms a paced sensor needs to fill a window.
  Detected from the agent's debug ``health`` log line (health every 1 ms),
  whose ``windows_scored`` is >= 1 only after a window was scored. Median of
  ``--cold-runs`` starts; the first start (cold page cache) is reported too.
  "ready" = the agent's ``ready`` log line (model loaded, source open).
- CPU: utime+stime (all threads) over ``--seconds`` (default 60) of a paced
  1 kHz stream, after a 5 s warm-up, as a share of one core; the agent's
  health messages show it kept up (samples/s, windows scored).
- peak RSS: ``VmHWM`` of the process at the end of the sustained run.
- allocator: the shipped systemd unit sets ``MALLOC_ARENA_MAX`` (the agent here
  runs with the unit's value); ``--arena-pairs`` paced runs with and without it,
  interleaved, give the RSS and CPU it buys (medians and pairwise ratios).

The reference (``benchmarks/keras_agent.py``) does the same job with TensorFlow
and the run's ``.keras`` model (``model.predict(window[None])``), measured the same way.

Run: ``.venv/bin/python -m benchmarks.footprint``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log, md_table, write_results
from benchmarks.procstat import Child, sample_cpu, status_kb

COMMAND = ".venv/bin/python -m benchmarks.footprint"
VIGIL = ROOT / ".venv" / "bin" / "vigil"
PYTHON = ROOT / ".venv" / "bin" / "python"
WINDOW, HOP = 128, 32


UNIT = ROOT / "firmware_configs" / "systemd" / "vigil-agent.service"


def unit_environment() -> dict[str, str]:
    """The ``Environment=NAME=VALUE`` lines of the shipped unit that shape the process (the allocator's)."""
    out = {}
    for line in UNIT.read_text().splitlines():
        m = re.fullmatch(r"Environment=(MALLOC_\w+)=(\S+)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def agent_env(unit: bool = True) -> dict[str, str]:
    """The agent's environment: the unit's allocator setting (``unit``), byte-code caches on, as on a device.

    ``PYTHONDONTWRITEBYTECODE`` (set in some dev shells) would make every start compile the
    project's ~75 modules from source, a third of the start's CPU here; the caches go under
    ``benchmarks/.work/pycache`` instead of the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("MALLOC_")}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "benchmarks" / ".work" / "pycache")
    if unit:
        env.update(unit_environment())
    return env


def agent_config(folder: Path, bundle: str, pace: str, debug: bool, port: int, n_rows: int = 0) -> Path:
    block = f"block_rows = {WINDOW}\n" if pace == "fast" else ""
    block += f"n_rows = {n_rows}\n" if n_rows else ""
    text = f"""[device]
id = "bench"

[bundle]
path = "{bundle}"

[source]
kind = "synthetic"
rate_hz = 1000.0
seed = 3
pace = "{pace}"
{block}
[mqtt]
host = "127.0.0.1"
port = {port}

[spool]
path = "{folder / f'spool-{pace}.db'}"

[sinks]
jsonl = "{folder / 'alerts.jsonl'}"
health_jsonl = true

[health]
interval_s = {0.001 if debug else 5.0}

[log]
level = "{'debug' if debug else 'info'}"
"""
    path = folder / f"agent-{pace}{'-' + str(n_rows) if n_rows else ''}.toml"
    path.write_text(text)
    return path


def agent_cold_start(folder: Path, bundle: str, port: int) -> dict[str, Any]:
    cfg = agent_config(folder, bundle, "fast", debug=True, port=port)
    child = Child([str(VIGIL), "agent", "run", "--config", str(cfg)], ROOT, env=agent_env(),
                  stderr_path=folder / "agent-cold.err")
    try:
        ready = child.wait_line(r"agent .* ready", 60)
        first = child.wait_line(r"health .*'windows_scored': [1-9]", 60)
    finally:
        child.stop()
    if ready is None or first is None:
        raise RuntimeError(f"agent did not score a window:\n{child.text()[-2000:]}")
    return {"ready_s": ready[0], "first_window_s": first[0]}


def agent_one_window(folder: Path, bundle: str, port: int) -> dict[str, float]:
    """A whole agent run that scores one window and exits: wall and CPU seconds (rusage of the child).

    The CPU figure is the cold start's own work (imports, bundle, interpreter, the first window, a
    clean stop); unlike the wall time it does not grow when a loaded host makes the process wait.
    """
    cfg = agent_config(folder, bundle, "fast", debug=False, port=port, n_rows=WINDOW)
    started = time.perf_counter()
    proc = subprocess.Popen([str(VIGIL), "agent", "run", "--config", str(cfg)], cwd=ROOT, env=agent_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "exit_code": proc.returncode}


def keras_cold_start(folder: Path, run_dir: Path) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    child = Child([str(PYTHON), "-m", "benchmarks.keras_agent", str(run_dir), "fast"], ROOT, env=env,
                  stderr_path=folder / "keras-cold.err")
    try:
        ready = child.wait_line(r"^ready", 120)
        first = child.wait_line(r"^first window", 120)
    finally:
        child.stop()
    if ready is None or first is None:
        raise RuntimeError(f"keras reference did not score a window:\n{child.text()[-2000:]}")
    return {"ready_s": ready[0], "first_window_s": first[0]}


def sustained(child: Child, ready_pattern: str, stop_pattern: str, seconds: float) -> dict[str, Any]:
    ready = child.wait_line(ready_pattern, 120)
    if ready is None:
        child.stop()
        raise RuntimeError(f"process never got ready:\n{child.text()[-2000:]}")
    time.sleep(5.0)  # warm-up: first windows, allocator growth
    cpu = sample_cpu(child.pid, seconds)
    peak_kb, rss_kb = status_kb(child.pid, "VmHWM"), status_kb(child.pid, "VmRSS")
    threads = status_kb(child.pid, "Threads")
    streamed_s = time.perf_counter() - child.started - ready[0]
    code = child.stop()
    stopped = child.wait_line(stop_pattern, 10)
    counts = [int(x) for x in re.findall(r"(\d+) (?:samples|windows)", stopped[1].group(0))] if stopped else []
    return {**cpu, "peak_rss_mb": peak_kb / 1024 if peak_kb else None, "rss_mb": rss_kb / 1024 if rss_kb else None,
            "threads": threads, "exit_code": code, "samples": counts[0] if counts else None,
            "windows": counts[1] if len(counts) > 1 else None,
            "streamed_s": streamed_s,
            "kept_up": counts[0] / (streamed_s * 1000.0) if counts else None}


_FLOOR = """
import sys
{imports}
for line in open("/proc/self/status"):
    if line.startswith("VmHWM"):
        print(int(line.split()[1]) / 1024, len(sys.modules))
"""
# Cumulative, in the agent's order: the launcher's lean_imports.install() comes first (ssl and urllib.request
# deferred, built-in hashes), so paho-mqtt costs what it costs the agent; the last row is paho imported plainly.
_LEAN = "from edge_agent import lean_imports\nlean_imports.install()\n"
_LITERT = "import numpy\nfrom ai_edge_litert.interpreter import Interpreter\n"
FLOORS = {"python": "", "+ numpy": _LEAN + "import numpy",
          "+ numpy, ai_edge_litert": _LEAN + _LITERT,
          "+ numpy, ai_edge_litert, paho-mqtt": _LEAN + _LITERT + "import paho.mqtt.client",
          "+ the agent's modules (service, MQTT sink, `vigil agent` launcher)": _LEAN + _LITERT +
          "import paho.mqtt.client\nimport edge_agent.service\nimport edge_agent.mqtt.sink\nimport edge_agent.launcher",
          "for comparison: numpy, ai_edge_litert, paho-mqtt imported plainly (OpenSSL, urllib.request, email)":
          _LITERT + "import paho.mqtt.client"}


def rss_floors() -> dict[str, float]:
    """Peak RSS (MB) of a Python that only imports what the agent needs: where the agent's MB go."""
    out = {}
    for label, imports in FLOORS.items():
        done = subprocess.run([str(PYTHON), "-c", _FLOOR.format(imports=imports)], cwd=ROOT, env=agent_env(),
                              capture_output=True, text=True, check=True)
        out[label] = float(done.stdout.split()[0])
    return out


def last_health(path: Path) -> dict[str, Any] | None:
    """The JSONL sink's health snapshot (``<stem>.health.json``): the agent's last health message."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def arena_pairs(data: dict[str, Any], folder: Path, bundle: str, port: int, pairs: int, seconds: float) -> None:
    """Paced runs with the unit's MALLOC_* setting and without, interleaved (A B B A ...): RSS and CPU."""
    setting = unit_environment()
    if pairs <= 0 or not setting:
        return
    log(f"allocator: {pairs} interleaved pairs of {seconds:.0f} s paced runs, with {setting} and without")
    cfg = agent_config(folder, bundle, "realtime", debug=False, port=port)
    runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
    for i in range(pairs):
        for label in (("with", "without") if i % 2 == 0 else ("without", "with")):
            child = Child([str(VIGIL), "agent", "run", "--config", str(cfg)], ROOT, env=agent_env(label == "with"),
                          stderr_path=folder / f"agent-arena-{label}.err")
            runs[label].append(sustained(child, r"agent .* ready", r"stopped: \d+ samples, \d+ windows", seconds))
    out: dict[str, Any] = {"setting": setting, "pairs": pairs, "seconds": seconds, "runs": runs}
    for key in ("peak_rss_mb", "share_of_one_core"):
        out[key] = {label: statistics.median(r[key] for r in rs) for label, rs in runs.items()}
        out[key]["ratio_with_over_without"] = statistics.median(
            a[key] / b[key] for a, b in zip(runs["with"], runs["without"]))
    data["allocator"] = out


def main(seconds: float, cold_runs: int, arena: int = 3, arena_seconds: float = 20.0) -> dict[str, Any]:
    from benchmarks.reference import reference_bundles, reference_run

    run_dir = reference_run("ref_w128", window=WINDOW, hop=HOP, rows=60000, epochs=10)
    bundles = reference_bundles(run_dir)
    bundle = bundles["auto"]["path"]
    data: dict[str, Any] = {"bundle": bundle, "bundle_mode": bundles["auto"]["mode"], "run": str(run_dir),
                            "window": WINDOW, "hop": HOP, "rate_hz": 1000.0, "seconds": seconds,
                            "rss_floors_mb": rss_floors()}
    from tests.broker import MosquittoBroker

    with tempfile.TemporaryDirectory(prefix="vigil-footprint-") as tmp:
        folder = Path(tmp)
        broker = MosquittoBroker(folder / "mosquitto").start()
        try:
            agent_runs(data, folder, bundle, broker.port, seconds, cold_runs)
            arena_pairs(data, folder, bundle, broker.port, arena, arena_seconds)
        finally:
            broker.stop()
        keras_runs(data, folder, run_dir, seconds, cold_runs)
    write_results("footprint", data, render(data), COMMAND)
    return data


def agent_runs(data: dict[str, Any], folder: Path, bundle: str, port: int, seconds: float, cold_runs: int) -> None:
    log(f"agent cold starts x{cold_runs} (after one start that writes the byte-code caches)")
    cold = [agent_cold_start(folder, bundle, port) for _ in range(cold_runs + 1)][1:]
    data["agent_cold"] = summarize_cold(cold)
    log(f"agent one-window runs x{cold_runs}")
    one = [agent_one_window(folder, bundle, port) for _ in range(cold_runs)]
    data["agent_one_window"] = {"runs": one, "median_cpu_s": statistics.median(r["cpu_s"] for r in one),
                                "median_wall_s": statistics.median(r["wall_s"] for r in one)}
    log(f"agent sustained {seconds:.0f} s at 1 kHz")
    cfg = agent_config(folder, bundle, "realtime", debug=False, port=port)
    child = Child([str(VIGIL), "agent", "run", "--config", str(cfg)], ROOT, env=agent_env(),
                  stderr_path=folder / "agent.err")
    data["agent"] = sustained(child, r"agent .* ready", r"stopped: \d+ samples, \d+ windows", seconds)
    data["agent_env"] = unit_environment()
    data["agent_health_last"] = last_health(folder / "alerts.health.json")


def keras_runs(data: dict[str, Any], folder: Path, run_dir: Path, seconds: float, cold_runs: int) -> None:
    log(f"keras cold starts x{max(1, cold_runs // 2)}")
    kcold = [keras_cold_start(folder, run_dir) for _ in range(max(1, cold_runs // 2))]
    data["keras_cold"] = summarize_cold(kcold)
    log(f"keras sustained {seconds:.0f} s at 1 kHz")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    child = Child([str(PYTHON), "-m", "benchmarks.keras_agent", str(run_dir), "realtime"], ROOT, env=env,
                  stderr_path=folder / "keras.err")
    data["keras"] = sustained(child, r"^ready", r"stopped: \d+ samples, \d+ windows", seconds)


def summarize_cold(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runs": runs, "first_run_first_window_s": runs[0]["first_window_s"],
            "median_first_window_s": statistics.median(r["first_window_s"] for r in runs),
            "median_ready_s": statistics.median(r["ready_s"] for r in runs)}


def render(data: dict[str, Any]) -> str:
    expected = data["seconds"] * 1000.0
    rows = []
    for label, key, cold in (("vigil agent (`vigil agent run`, TFLite)", "agent", "agent_cold"),
                             ("Keras reference process", "keras", "keras_cold")):
        s, c = data[key], data[cold]
        kept = s.get("kept_up")  # samples scored / samples the paced source had made due
        rows.append((label, s["peak_rss_mb"], s["rss_mb"], c["median_ready_s"], c["median_first_window_s"],
                     c["first_run_first_window_s"], 100 * s["share_of_one_core"], s["threads"],
                     f"{kept:.3f}" if kept else "n/a"))
    table = md_table(["process", "peak RSS MB (VmHWM)", "RSS MB at end", "ready s (median)",
                      "cold start s to 1st window (median)", "1st start s (cold cache)",
                      "CPU % of one core (paced 1 kHz)", "threads", "samples processed / samples due"], rows)
    one = data.get("agent_one_window")
    if one:
        table += (f"\n\nCold start as CPU work (less load-dependent than wall time; still inflated by a busy "
                  f"host): a whole `vigil agent run` that scores one "
                  f"window and exits uses {one['median_cpu_s']:.3f} s of CPU (median of {len(one['runs'])}; "
                  f"wall {one['median_wall_s']:.2f} s at the load average above).")
    h = data.get("agent_health_last") or {}
    p50 = (h.get("scoring_latency_ms") or {}).get("p50")
    scoring = f"{100 * p50 / 1000 * 1000.0 / data['hop']:.2f}%" if p50 else "n/a"
    floors = ", ".join(f"{k} {v:.1f} MB" for k, v in data.get("rss_floors_mb", {}).items())
    return (table + f"\n\nStream: synthetic 3-axis 1 kHz, window {data['window']}, hop {data['hop']} "
            f"({1000.0 / data['hop']:.2f} windows/s); bundle mode `{data['bundle_mode']}`. CPU measured over "
            f"{data['seconds']:.0f} s after a 5 s warm-up (expected {expected:,.0f} samples). Agent's last "
            f"health: samples/s {h.get('samples_per_s')}, windows scored {h.get('windows_scored')}, scoring "
            f"latency p50/p99 {h.get('scoring_latency_ms')} ms, dropped samples {h.get('dropped_samples')}; "
            f"scoring alone "
            f"(windows/s x p50) is {scoring} of one core, the rest of the CPU is the per-sample loop, health and "
            f"sinks.\n\nWhere the agent's memory goes (peak RSS of a Python that only imports): {floors}.\n"
            + render_allocator(data.get("allocator")))


def render_allocator(a: dict[str, Any] | None) -> str:
    if not a:
        return ""
    setting = ", ".join(f"`{k}={v}`" for k, v in a["setting"].items())
    rss, cpu = a["peak_rss_mb"], a["share_of_one_core"]
    return (f"\nAllocator (the shipped unit's {setting}; the agent rows above run with it): {a['pairs']} "
            f"interleaved pairs of {a['seconds']:.0f} s paced runs, medians: peak RSS {rss['with']:.2f} MB with, "
            f"{rss['without']:.2f} MB without (pairwise ratio {rss['ratio_with_over_without']:.3f}); CPU "
            f"{100 * cpu['with']:.2f}% vs {100 * cpu['without']:.2f}% of one core (ratio "
            f"{cpu['ratio_with_over_without']:.3f}).\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--arena-pairs", type=int, default=3, help="paced runs with/without MALLOC_ARENA_MAX")
    parser.add_argument("--arena-seconds", type=float, default=20.0)
    args = parser.parse_args()
    main(args.seconds, args.cold_runs, args.arena_pairs, args.arena_seconds)
