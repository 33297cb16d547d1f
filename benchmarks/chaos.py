"""Benchmark: the chaos suite - no alert lost or uncounted under any fault, hostile input never a traceback.

One command, bounded in time and count, only on 127.0.0.1, real mosquitto and
real files (a small tmpfs for the full and read-only filesystems when run as
root; skipped with the reason otherwise)::

    .venv/bin/python -m benchmarks.chaos [--cycles 20] [--flaps 10] [--fuzz 300] [--budget-s 600]

Delivery scenarios (``benchmarks.chaos_delivery``, ``benchmarks.chaos_spool``):
a ``kill -9`` storm of a producer process (some kills during broker outages),
broker SIGTERM/SIGKILL flaps, a hung (SIGSTOPped) broker, disk full with the
broker down, a read-only and a corrupt spool at start, a truncated WAL, and an
ACL denial under MQTT 3.1.1 and 5. Fuzzing (``benchmarks.chaos_fuzz``):
``--fuzz`` mutated bundles, agent configs, sensor lines and MQTT payloads to a
running ``vigil alerts`` each (>= 1000 in all by default).

Targets: ``lost_uncounted`` 0 and ``tracebacks`` 0 everywhere; the command
exits 1 when a target is missed. Results: ``benchmarks/results/chaos.json``
and ``chaos.md``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import chaos_delivery as delivery
from benchmarks import chaos_spool as spool_faults
from benchmarks.chaos_fuzz import run_fuzz
from benchmarks.common import log, md_table, write_results
from tests.broker import MosquittoBroker, mosquitto_available

COMMAND = ".venv/bin/python -m benchmarks.chaos"
COLUMNS = ("produced", "delivered", "counted_dropped", "counted_lost", "kept_in_spool", "lost_uncounted",
           "duplicates", "tracebacks", "crashes", "seconds")


def scenarios(args: argparse.Namespace, rng: random.Random) -> list[tuple[str, Callable[[Path], dict[str, Any]]]]:
    return [
        ("kill9_storm", lambda w: delivery.kill9_storm(w, args.cycles, rng)),
        ("broker_flaps", lambda w: delivery.broker_flaps(w, args.flaps)),
        ("hung_broker", lambda w: delivery.hung_broker(w, 3.0)),
        ("disk_full_broker_down", spool_faults.disk_full_broker_down),
        ("read_only_spool", spool_faults.read_only_spool_at_start),
        ("corrupt_spool", spool_faults.corrupt_spool_at_start),
        ("damaged_wal", spool_faults.damaged_wal),
        ("acl_mqtt311", lambda w: delivery.acl_denial(w, "3.1.1")),
        ("acl_mqtt5", lambda w: delivery.acl_denial(w, "5")),
    ]


def run_scenarios(args: argparse.Namespace, work: Path, deadline: float) -> list[dict[str, Any]]:
    rng = random.Random(args.seed)
    errors = delivery.ErrorCounter()
    logging.getLogger("vigil").addHandler(errors)
    results = []
    for key, scenario in scenarios(args, rng):
        if time.monotonic() > deadline:
            results.append({"scenario": key, "skipped": "time budget used up"})
            continue
        log(f"chaos: {key}")
        before = errors.count
        folder = work / key
        folder.mkdir()
        try:
            result = scenario(folder)
        except Exception as exc:  # a crash of the scenario is a finding, not the end of the suite
            result = {"scenario": key, "crashes": 1, "error": f"{type(exc).__name__}: {exc}"}
        result["tracebacks"] = result.get("tracebacks", 0) + errors.count - before
        results.append(result)
    return results


def fuzz(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.test_mqtt_sink import make_alert

    with MosquittoBroker(work / "fuzz-broker") as b:
        return run_fuzz(args.seed, b.port, args.fuzz, make_alert(1, device="fuzz"))


def render(data: dict[str, Any]) -> str:
    rows = []
    for r in data["scenarios"]:
        if "skipped" in r:
            rows.append([r["scenario"], *["-"] * len(COLUMNS), f"skipped: {r['skipped']}"])
            continue
        rows.append([r["scenario"], *[r.get(c, 0) for c in COLUMNS], _note(r)[:90]])
    parts = ["## Delivery under faults", md_table(["scenario", *COLUMNS, "notes"], rows)]
    f = data["fuzz"]
    fuzz_rows = [
        ["bundles", f["bundles"]["inputs"], f["bundles"]["refused"], f["bundles"]["accepted"],
         f["bundles"]["tracebacks"], f"accepted nonsense {f['bundles']['accepted_nonsense']}"],
        ["agent configs", f["configs"]["inputs"], f["configs"]["refused"], f["configs"]["accepted"],
         f["configs"]["tracebacks"], "; ".join(f["configs"]["examples"][:2])],
        ["sensor lines", f["sensor_lines"]["inputs"], f["sensor_lines"]["bad_samples"],
         f["sensor_lines"]["rows"] - f["sensor_lines"]["bad_samples"], f["sensor_lines"]["tracebacks"],
         f"lines counted twice {f['sensor_lines']['rows_beyond_lines']}"],
        ["MQTT payloads to vigil alerts", f["alert_payloads"]["inputs"], f["alert_payloads"]["skipped"], 0,
         f["alert_payloads"]["tracebacks"], f"exit {f['alert_payloads']['exit_code']}, "
         f"uncounted {f['alert_payloads']['uncounted']}"],
    ]
    parts += ["## Fuzzed inputs", md_table(["input", "count", "refused / skipped", "accepted", "tracebacks", "notes"],
                                           fuzz_rows)]
    t = data["totals"]
    parts.append(f"**Totals**: {t['fuzzed_inputs']} fuzzed inputs; lost and uncounted {t['lost_uncounted']} "
                 f"(target 0); tracebacks {t['tracebacks']} (target 0); crashes {t['crashes']}; "
                 f"{t['seconds']:.0f} s.")
    return "\n\n".join(parts)


def _note(r: dict[str, Any]) -> str:
    """What the scenario did and what the agent said about it."""
    if "kill_cycles" in r:
        return f"{r['kill_cycles']} kills, {r.get('broker_outages', 0)} during broker outages"
    if "flaps" in r:
        return f"{r['flaps']} broker flaps"
    if r.get("quarantined"):
        return f"{r['quarantined']} corrupt file moved aside"
    return str(r.get("error") or r.get("diagnosis") or r.get("reported") or r.get("degraded_while_full")
               or r.get("spool_degraded") or "")


def totals(data: dict[str, Any], seconds: float) -> dict[str, Any]:
    ran = [r for r in data["scenarios"] if "skipped" not in r]
    f = data["fuzz"]
    kinds = ("bundles", "configs", "sensor_lines", "alert_payloads")
    return {
        "lost_uncounted": sum(r.get("lost_uncounted", 0) for r in ran) + f["alert_payloads"]["uncounted"],
        "tracebacks": sum(r.get("tracebacks", 0) for r in ran) + sum(f[k]["tracebacks"] for k in kinds),
        "crashes": sum(r.get("crashes", 0) for r in ran) + f["alert_payloads"]["crashes"],
        "fuzzed_inputs": sum(f[k]["inputs"] for k in kinds),
        "skipped": [r["scenario"] for r in data["scenarios"] if "skipped" in r],
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="kill -9 cycles of the producer")
    parser.add_argument("--flaps", type=int, default=10, help="broker SIGTERM/SIGKILL flaps")
    parser.add_argument("--fuzz", type=int, default=300, help="fuzzed inputs of each of the four kinds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-s", type=float, default=600.0, help="no new scenario starts after this")
    args = parser.parse_args(argv)
    if not mosquitto_available():
        print("benchmarks.chaos: mosquitto not found: apt-get install mosquitto", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-chaos-") as folder:
        work = Path(folder)
        data: dict[str, Any] = {"parameters": vars(args)}
        data["scenarios"] = run_scenarios(args, work, started + args.budget_s)
        log("chaos: fuzzing")
        data["fuzz"] = fuzz(args, work)
    data["totals"] = totals(data, time.monotonic() - started)
    write_results("chaos", data, render(data), COMMAND)
    t = data["totals"]
    return 0 if t["lost_uncounted"] == 0 and t["tracebacks"] == 0 and t["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
