"""Shared helpers: machine description, result writers, timing statistics.

Kept free of tensorflow imports so that benchmarks measuring the agent's own
footprint can use it without dragging TF into the measured process.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The team's real data: ../shared/data beside the checkout (as in CI), or $VIGIL_SHARED_DATA (as the tests).
DATA = Path(os.environ.get("VIGIL_SHARED_DATA") or ROOT.parent / "shared" / "data")
PACKAGES = ("numpy", "tensorflow", "tf_keras", "ai-edge-litert", "scikit-learn", "paho-mqtt")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def mem_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (no tensorflow import needed)."""
    flags = cpu_flags()
    return {
        "cpu_model": cpu_model(),
        "cpu_mhz": cpu_mhz(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "simd": sorted(f for f in flags if f in {"sse4_2", "avx", "avx2", "fma", "avx512f", "neon", "asimd"}),
        "mem_total_mb": mem_total_mb(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "when_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def machine_line(info: dict[str, Any]) -> str:
    p = info["packages"]
    return (f"{info['cpu_model']} ({info['usable_cpus']} usable CPUs, {', '.join(info['simd'])}), "
            f"{info['mem_total_mb']:.0f} MB RAM, Linux {info['kernel']}, Python {info['python']}, "
            f"numpy {p['numpy']}, tensorflow {p['tensorflow']}, tf_keras {p['tf_keras']}, "
            f"ai-edge-litert {p['ai-edge-litert']}, scikit-learn {p['scikit-learn']}, "
            f"paho-mqtt {p['paho-mqtt']}; {info['when_utc']}, load average {info.get('loadavg_1_5_15')}")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 1:
                return f"{v:.2f}"
            return f"{v:.3g}"
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10000:
            return f"{v:,}"
        return "n/a" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, data: dict[str, Any], markdown: str, command: str) -> Path:
    """``results/<name>.json`` (data + machine) and ``results/<name>.md`` (tables)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = data.setdefault("machine", machine_info())
    data.setdefault("command", command)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    header = f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine_line(info)}\n\n"
    (RESULTS / f"{name}.md").write_text(header + markdown.rstrip() + "\n")
    print(header + markdown)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    t = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)),
            "mean_ms": float(t.mean()), "samples": int(t.size)}


def time_calls(fn: Any, args: Sequence[Any], warmup: int = 5) -> list[float]:
    """Wall time of ``fn(a)`` for each ``a`` in ``args`` (after ``warmup`` untimed calls)."""
    for a in args[:warmup]:
        fn(a)
    clock = time.perf_counter
    out = []
    for a in args:
        start = clock()
        fn(a)
        out.append(clock() - start)
    return out


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
