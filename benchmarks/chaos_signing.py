"""Benchmark: what signed bundles cost the device (issue 11, defect 6) - resident memory and verify time.

One command::

    .venv/bin/python -m benchmarks.chaos_signing [--rounds 7]

Each round starts one fresh Python per contender, interleaved (so a load burst
hits all of them alike). Every process first imports what the running agent
has loaded before it reads its bundle (numpy, paho-mqtt, the TFLite
interpreter module, ``edge_agent.service``), then loads the same signed
bundle:

- ``no keys``: ``load_bundle(path)`` - no ``trusted_keys``, PyNaCl never imported;
- ``PyNaCl``: ``load_bundle(path, trusted_keys=[key])`` - what the agent does
  with ``[bundle] trusted_keys`` (imports PyNaCl, verifies the ed25519 signature);
- ``cryptography``: the same check with the ``cryptography`` package instead
  (the alternative library), when it is installed.

Reported: median VmRSS after loading and its median difference to ``no keys``
within each round (MB), whether PyNaCl was loaded without keys, and the median
time of one signature check. Results: ``benchmarks/results/chaos_signing.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import log, md_table, write_results

COMMAND = ".venv/bin/python -m benchmarks.chaos_signing"
CONTENDERS = ("no keys", "PyNaCl", "cryptography")

CHILD = r"""
import json, sys, time
contender, path, public = sys.argv[1:4]
import numpy, paho.mqtt.client, ai_edge_litert.interpreter  # loaded by the agent before its bundle
import edge_agent.service
from edge_agent.bundle import load_bundle


def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


before = rss_kb()
nacl_before = "nacl" in sys.modules
verify_s = None
if contender == "no keys":
    load_bundle(path)
elif contender == "PyNaCl":
    load_bundle(path, trusted_keys=[public])
    from edge_agent.bundle import verify_bundle_signature
    bundle = load_bundle(path)
    t = time.perf_counter()
    for _ in range(200):
        verify_bundle_signature(bundle, [public])
    verify_s = (time.perf_counter() - t) / 200
else:
    import base64
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from edge_agent import signing
    bundle = load_bundle(path)
    record = json.loads(bundle.signature)
    message = signing.signed_message(bundle.format_bytes, bundle.manifest_bytes, bundle.model_bytes)
    key = Ed25519PublicKey.from_public_bytes(signing.parse_public_key(public))
    key.verify(base64.b64decode(record["signature"]), message)
print(json.dumps({"rss_before_kb": before, "rss_kb": rss_kb(), "nacl_loaded_before": nacl_before,
                  "verify_s": verify_s}))
"""


def _has_cryptography() -> bool:
    import importlib.util

    return importlib.util.find_spec("cryptography") is not None


def _signed_bundle(folder: Path) -> tuple[Path, str]:
    from benchmarks.chaos_fuzz import base_manifest
    from edge_agent.bundle import pack_bundle, sign_bundle
    from edge_agent.signing import new_signing_key

    key = new_signing_key()
    path = folder / "signed.vigil"
    path.write_bytes(sign_bundle(pack_bundle(base_manifest(), bytes(range(256)) * 16), key))
    return path, key.public_key


def _child(contender: str, path: Path, public: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CHILD, contender, str(path), public], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender}: {proc.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(rounds: int) -> dict[str, Any]:
    contenders = [c for c in CONTENDERS if c != "cryptography" or _has_cryptography()]
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    with tempfile.TemporaryDirectory(prefix="vigil-signing-") as folder:
        path, public = _signed_bundle(Path(folder))
        for i in range(rounds):
            log(f"chaos_signing: round {i + 1}/{rounds}")
            for contender in contenders:
                runs[contender].append(_child(contender, path, public))
    base = [r["rss_kb"] for r in runs["no keys"]]
    summary = {}
    for contender, rows in runs.items():
        rss = [r["rss_kb"] for r in rows]
        summary[contender] = {
            "rss_mb_median": float(np.median(rss)) / 1024,
            "extra_rss_mb_median": float(np.median(np.subtract(rss, base))) / 1024,
            "nacl_loaded_before_bundle": any(r["nacl_loaded_before"] for r in rows),
            "verify_ms_median": (float(np.median([r["verify_s"] for r in rows])) * 1e3
                                 if rows[0]["verify_s"] is not None else None),
        }
    return {"parameters": {"rounds": rounds}, "versions": _versions(), "contenders": summary, "runs": runs}


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("pynacl", "cryptography"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def render(data: dict[str, Any]) -> str:
    rows = [[c, f"{s['rss_mb_median']:.1f}", f"{s['extra_rss_mb_median']:+.2f}",
             "-" if s["verify_ms_median"] is None else f"{s['verify_ms_median']:.3f}",
             "yes" if s["nacl_loaded_before_bundle"] else "no"]
            for c, s in data["contenders"].items()]
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items() if v)
    return (f"Median of {data['parameters']['rounds']} interleaved rounds, one fresh Python per contender and "
            f"round ({versions}).\n\n" + md_table(["bundle check", "VmRSS after load (MB)", "extra vs no keys (MB)",
                                     "one verify (ms)", "PyNaCl loaded before the bundle"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    data = measure(args.rounds)
    write_results("chaos_signing", data, render(data), COMMAND)
    return 0


if __name__ == "__main__":
    sys.exit(main())
