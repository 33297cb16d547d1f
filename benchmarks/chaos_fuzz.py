"""Chaos part 2: fuzzed inputs - bundles, agent configs, sensor lines, MQTT payloads to ``vigil alerts``.

Every input is mutated from a valid one with a seeded RNG (reproducible).
An input is *refused* (one-line ``VigilInputError``, or counted and skipped),
*accepted*, or a *traceback* (any other exception, or a traceback on a
child's stderr): the target is 0 tracebacks.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from edge_agent.bundle import (
    FORMAT_ENTRY,
    MANIFEST_ENTRY,
    MANIFEST_HASH_ENTRY,
    MODEL_ENTRY,
    pack_bundle,
    parse_bundle,
    sha256_hex,
)
from edge_agent.errors import VigilInputError

ROOT = Path(__file__).resolve().parent.parent
MODEL = bytes(range(256)) * 16
HOSTILE: list[Any] = [float("nan"), float("inf"), -1, 0, 1e308, 10**30, "x" * 70000, [], {}, [1], None, True,
                      "8", -0.0, 2**63, [[[[[[[[1]]]]]]]], {"a": {"b": {"c": 1}}}, 1e-320]
FIELDS = ["window", "hop", "threshold.value", "scaler.offset", "scaler.scale", "scaler.kind", "score.function",
          "score.weights", "smoothing", "smoothing.alpha", "features", "model_id", "io.input.shape",
          "io.output", "quantization.mode", "model.bytes", "model.sha256", "sampling_rate_hz", "format", "detection"]


def base_manifest(model: bytes = MODEL) -> dict[str, Any]:
    return {
        "format": "vigil-bundle/1", "model_id": "fuzz-0123456789ab", "created": "2026-12-01T00:00:00Z",
        "features": ["a", "b"], "timestamp_column": None, "sampling_rate_hz": 50.0, "window": 8, "hop": 2,
        "scaler": {"kind": "minmax", "offset": [0.0, 1.0], "scale": [2.0, 4.0]},
        "score": {"function": "mae", "weights": None}, "threshold": {"value": 0.25, "strategy": "max"},
        "smoothing": {"alpha": None}, "quantization": {"mode": "float32", "details": {}},
        "io": {side: {"shape": [1, 8, 2], "dtype": "float32"} for side in ("input", "output")},
        "model": {"file": MODEL_ENTRY, "sha256": sha256_hex(model), "bytes": len(model)},
    }


def _set(manifest: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = manifest
    for name in parents:
        node = node.setdefault(name, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node[last] = value


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def _text_bundle(text: str) -> bytes:
    raw = text.encode()
    return _zip([(FORMAT_ENTRY, b"vigil-bundle/1\n"), (MANIFEST_ENTRY, raw),
                 (MANIFEST_HASH_ENTRY, sha256_hex(raw).encode()), (MODEL_ENTRY, MODEL)])


def mutated_bundle(rng: random.Random) -> bytes:
    kind = rng.choice(["field", "field", "field", "flip", "truncate", "text", "zip"])
    good = pack_bundle(base_manifest(), MODEL)
    if kind == "field":
        manifest = base_manifest()
        for _ in range(rng.randint(1, 3)):
            _set(manifest, rng.choice(FIELDS), rng.choice(HOSTILE))
        return pack_bundle(manifest, MODEL)  # hashes recomputed: only the checks can refuse it
    if kind == "flip":
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "truncate":
        return good[: rng.randrange(len(good))]
    if kind == "text":
        text = json.dumps(base_manifest())
        hostile = rng.choice(["9" * 5000, "[" * 50000 + "]" * 50000, "Infinity", "-Infinity", "NaN", '"\\ud800"'])
        return _text_bundle(text.replace('"window": 8', f'"window": {hostile}', 1))
    method = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
    entries = [(FORMAT_ENTRY, b"vigil-bundle/1\n"),
               (MANIFEST_ENTRY, json.dumps(base_manifest()).encode() + b" " * 10**6),
               (MANIFEST_HASH_ENTRY, b"0" * 64), (MODEL_ENTRY, MODEL)]
    if rng.random() < 0.5:
        entries.append(("extra", b"x"))
    return _zip(entries, method)


def _accepted_is_sane(bundle: Any) -> bool:
    return (0 < bundle.threshold < 1e7 and 1 <= bundle.spec.hop <= bundle.spec.window
            and all(abs(v) < 1e31 for v in bundle.scaler.offset))


def fuzz_bundles(rng: random.Random, count: int) -> dict[str, Any]:
    outcome = {"inputs": count, "refused": 0, "accepted": 0, "accepted_nonsense": 0, "tracebacks": 0,
               "multi_line_errors": 0, "examples": []}
    for _ in range(count):
        data = mutated_bundle(rng)
        try:
            bundle = parse_bundle(data, "fuzz.vigil")
        except VigilInputError as exc:
            outcome["refused"] += 1
            outcome["multi_line_errors"] += "\n" in str(exc)
            continue
        except Exception as exc:  # the defect this suite hunts
            outcome["tracebacks"] += 1
            outcome["examples"].append(f"{type(exc).__name__}: {str(exc)[:120]}")
            continue
        outcome["accepted"] += 1
        outcome["accepted_nonsense"] += not _accepted_is_sane(bundle)
    return outcome


BASE_CONFIG = """[device]
id = "fuzz-1"

[bundle]
path = "model.vigil"

[source]
kind = "stdin"
features = ["a", "b"]

[alerts]
k = 3
n = 5
m = 25

[mqtt]
host = "127.0.0.1"
port = 1883
topic_prefix = "vigil/{device_id}"

[spool]
max_messages = 1000

[health]
interval_s = 5.0
"""
TOML_HOSTILE = ["inf", "nan", "-1", "0", "1e400", '"' + "x" * 70000 + '"', "[" * 5000 + "1" + "]" * 5000,
                "{a = 1}", "true", "9" * 5000, '""', "[]", '"\\u0000"', "-0.0", "1979-05-27T07:32:00Z"]


def mutated_config(rng: random.Random) -> str:
    lines = BASE_CONFIG.splitlines()
    kind = rng.choice(["value", "value", "value", "drop", "dup", "garbage", "truncate"])
    values = [i for i, line in enumerate(lines) if " = " in line]
    if kind == "value":
        for _ in range(rng.randint(1, 2)):
            i = rng.choice(values)
            lines[i] = lines[i].split(" = ")[0] + " = " + rng.choice(TOML_HOSTILE)
    elif kind == "drop":
        del lines[rng.randrange(len(lines))]
    elif kind == "dup":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == "garbage":
        garbage = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randint(1, 40)))
        lines.insert(rng.randrange(len(lines)), garbage)
    else:
        return BASE_CONFIG[: rng.randrange(len(BASE_CONFIG))]
    return "\n".join(lines) + "\n"


def fuzz_configs(rng: random.Random, count: int) -> dict[str, Any]:
    from edge_agent.config import load_config

    outcome = {"inputs": count, "refused": 0, "accepted": 0, "tracebacks": 0, "multi_line_errors": 0, "examples": []}
    with tempfile.TemporaryDirectory(prefix="vigil-chaos-config-") as folder:
        path = Path(folder) / "agent.toml"
        for _ in range(count):
            path.write_text(mutated_config(rng), encoding="utf-8", errors="surrogatepass")
            try:
                load_config(path, check_bundle=False, check_source=False, check_files=False)
                outcome["accepted"] += 1
            except VigilInputError as exc:
                outcome["refused"] += 1
                outcome["multi_line_errors"] += "\n" in str(exc)
            except Exception as exc:
                outcome["tracebacks"] += 1
                if len(outcome["examples"]) < 5:
                    outcome["examples"].append(f"{type(exc).__name__}: {str(exc)[:120]}")
    return outcome


def _sensor_line(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind < 3:
        return f"{rng.uniform(-10, 10)},{rng.uniform(-10, 10)}".encode()
    options = [b"nan,1", b"1e999,2", b"1,2,3", b"", b"# comment", b"a,b",
               bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
               b"7" * rng.choice([5000, 70000, 300000]), "\u00e9,\u2603".encode()]
    return rng.choice(options)


def fuzz_sensor_lines(rng: random.Random, count: int) -> dict[str, Any]:
    """``count`` hostile lines through the stdin/serial line parser, in random chunk sizes."""
    from edge_agent.sources.stdin import LineParser

    outcome = {"inputs": count, "rows": 0, "bad_samples": 0, "tracebacks": 0, "rows_beyond_lines": 0, "examples": []}
    parser = LineParser(["a", "b"])
    stream = b"\n".join(_sensor_line(rng) for _ in range(count)) + b"\n"
    at = 0
    try:
        while at < len(stream):
            size = rng.choice([1, 7, 512, 4096, 65536])
            values, _valid = parser.feed(stream[at:at + size], final=at + size >= len(stream))
            outcome["rows"] += len(values)
            at += size
    except Exception as exc:
        outcome["tracebacks"] += 1
        outcome["examples"].append(f"{type(exc).__name__}: {str(exc)[:120]}")
    outcome["bad_samples"] = parser.bad_lines
    outcome["rows_beyond_lines"] = max(0, outcome["rows"] - count)  # a line counted more than once
    return outcome


def bad_alert_payload(rng: random.Random, good: dict[str, Any]) -> bytes:
    """A payload that is certainly not a valid alert (so the expected skip count is exact)."""
    kind = rng.randrange(8)
    if kind == 0:
        return json.dumps(rng.choice(["text", 42, None, [1, 2], True])).encode()
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))) + b"\xff"
    if kind == 2:
        return b"[" * 100_000 + b"]" * 100_000
    if kind == 3:
        missing = rng.choice(["event_id", "phase", "device_id"])
        return json.dumps({k: v for k, v in good.items() if k != missing}).encode()
    if kind == 4:
        key, value = rng.choice(["event_id", "seq", "window_count"]), rng.choice([["x"], {"a": 1}, "7"])
        return json.dumps({**good, key: value}).encode()
    if kind == 5:
        return json.dumps({**good, "unexpected": 1}).encode()
    if kind == 6:
        return b'{"seq": ' + b"9" * 5000 + b"}"
    return json.dumps({**good, "pad": "x" * 100_000}).encode()


def fuzz_alert_payloads(rng: random.Random, count: int, port: int, good: dict[str, Any]) -> dict[str, Any]:
    """``count`` malformed payloads, then one valid alert, to a real ``vigil alerts`` process."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "alerts", "--host",
                             "127.0.0.1", "--port", str(port), "--count", "1", "--timeout", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for _ in range(count):
            client.publish("vigil/fuzz/alert", bad_alert_payload(rng, good), qos=1).wait_for_publish(10)
        client.publish("vigil/fuzz/alert", json.dumps({**good, "seq": 1}), qos=1).wait_for_publish(10)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        client.disconnect()
        client.loop_stop()
        if proc.poll() is None:
            proc.kill()
    stderr = first + stderr
    skipped = stderr.count("skipped a malformed message")
    return {"inputs": count, "skipped": skipped, "exit_code": proc.returncode,
            "tracebacks": stderr.count("Traceback"), "crashes": int(proc.returncode not in (0,)),
            "valid_alert_shown": " OPEN " in stdout, "uncounted": count - skipped}


def run_fuzz(seed: int, port: int, per_kind: int, good_alert: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.monotonic()
    parts = {
        "bundles": fuzz_bundles(rng, per_kind),
        "configs": fuzz_configs(rng, per_kind),
        "sensor_lines": fuzz_sensor_lines(rng, per_kind),
        "alert_payloads": fuzz_alert_payloads(rng, per_kind, port, good_alert),
    }
    parts["seconds"] = round(time.monotonic() - started, 1)  # type: ignore[assignment]
    return parts
