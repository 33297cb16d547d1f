"""The device side stays light: no edge_agent module pulls in the training stack."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge_agent

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf_keras", "sklearn", "matplotlib")

CHECK = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"imported": len(names), "heavy": heavy}))
"""


def edge_modules(include_cli: bool = False) -> list[str]:
    # __main__ modules run the CLI when imported: not a library module.
    names = [m.name for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.")
             if not m.name.endswith("__main__")]
    return sorted(n for n in names if include_cli or not (n == "vigil.cli" or n.startswith("vigil.cli.")))


def run_check(names: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", CHECK, json.dumps(names), json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_edge_module_imports_without_the_training_stack() -> None:
    names = edge_modules()
    # The modules the device runs on must be among them.
    for expected in ("edge_agent.service", "edge_agent.config", "edge_agent.runtime", "edge_agent.systemd",
                     "edge_agent.health", "edge_agent.quality", "edge_agent.sources.factory"):
        assert expected in names
    report = run_check(names)
    assert report == {"imported": len(names), "heavy": []}


def test_the_cli_imports_without_the_training_stack() -> None:
    # Command modules import trainer/converter only inside command bodies.
    report = run_check(["vigil.cli"] + [n for n in edge_modules(include_cli=True) if n.startswith("vigil.cli.")])
    assert report["heavy"] == []


# --- what a configured agent loads (edge_agent.lean_imports, lazy add-ons / drivers / rollout) -----------

# Modules a plain agent (replay source, JSONL sink, no broker, no add-on) must not load: each is
# imported only where its feature is configured. Adding an eager import of one makes this fail.
NOT_FOR_A_PLAIN_AGENT = ("edge_agent.sources.i2c_base", "edge_agent.sources.i2c_adxl345",
                         "edge_agent.sources.i2c_mpu6050", "edge_agent.captures", "edge_agent.rollout",
                         "edge_agent.rollout.controller", "edge_agent.homeassistant", "edge_agent.metrics",
                         "edge_agent.addon_mqtt", "paho", "nacl", "jsonschema", "http.client", "email", "tempfile",
                         "edge_agent.mqtt.connection", "numpy.ma")
# Loaded or deferred, never run, on a plain-TCP agent (they would map OpenSSL).
NEVER_RUN_WITHOUT_TLS = ("ssl", "urllib.request")

AGENT_RUN = """
import json, sys
from edge_agent import launcher
code = launcher.main(["run", "--config", sys.argv[1]], prog="vigil agent")
from edge_agent.lean_imports import is_deferred
state = {name: "deferred" if is_deferred(name) else "absent" if module is None else "loaded"
         for name, module in list(sys.modules.items())}
with open("/proc/self/maps") as maps:
    libcrypto = "libcrypto" in maps.read()
print(json.dumps({"code": code, "modules": state, "libcrypto": libcrypto}))
"""


def write_replay_config(folder: Path, bundle: Path, sections: str = "") -> Path:
    """A fast replay of the tiny run's distribution with one disturbance (one event: open, close)."""
    from tests.models import normal_rows, with_anomalies

    rows = with_anomalies(normal_rows(500, 3, 0, start=720), [(300, 340)])
    np.savetxt(folder / "data.csv", rows, delimiter=",", header="f0,f1,f2", comments="", fmt="%.6f")
    path = folder / "agent.toml"
    path.write_text(f'[device]\nid = "lean"\n\n[bundle]\npath = "{bundle}"\n\n'
                    f'[source]\nkind = "replay"\npath = "data.csv"\npace = "fast"\n\n'
                    f'[spool]\npath = "{folder / "state" / "spool.db"}"\n\n[sinks]\njsonl = "alerts.jsonl"\n\n'
                    f'[health]\ninterval_s = 0\n\n[alerts]\nk = 2\nn = 3\nm = 3\n\n' + sections, encoding="utf-8")
    return path


def run_agent_process(config: Path) -> dict:
    """The real launcher in a fresh interpreter; which modules it left loaded, deferred or absent."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", AGENT_RUN, str(config)], capture_output=True, text=True,
                            timeout=120, env=env, cwd=config.parent)
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, result.stdout
    return report


def loaded(report: dict, prefix: str) -> list[str]:
    return sorted(name for name, state in report["modules"].items()
                  if state == "loaded" and (name == prefix or name.startswith(prefix + ".")))


@pytest.mark.slow  # uses the converted tiny bundle
def test_a_plain_agent_loads_no_optional_module_and_no_openssl(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    report = run_agent_process(write_replay_config(tmp_path, tiny_bundle_3f))
    assert "edge_agent.pipeline.stream" in report["modules"] and "ai_edge_litert.interpreter" in report["modules"]
    assert [m for prefix in NOT_FOR_A_PLAIN_AGENT for m in loaded(report, prefix)] == []
    assert [m for m in NEVER_RUN_WITHOUT_TLS if report["modules"].get(m) == "loaded"] == []
    assert report["modules"].get("_hashlib") == "absent"  # hashlib runs on CPython's built-in hashes
    assert report["libcrypto"] is False


@pytest.mark.slow
@pytest.mark.broker
def test_an_mqtt_agent_with_rollout_loads_paho_but_not_openssl(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from tests.broker import MosquittoBroker, require_mosquitto

    require_mosquitto()
    with MosquittoBroker(tmp_path / "broker") as broker:
        config = write_replay_config(tmp_path, tiny_bundle_3f,
                                     f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n\n[rollout]\nenabled = true\n')
        report = run_agent_process(config)
    # The positive control: the check sees what a configured feature loads.
    assert "paho.mqtt.client" in loaded(report, "paho") and loaded(report, "edge_agent.rollout.controller")
    assert [m for m in NEVER_RUN_WITHOUT_TLS if report["modules"].get(m) == "loaded"] == []
    assert report["libcrypto"] is False


@pytest.mark.slow
@pytest.mark.broker
def test_a_tls_agent_loads_ssl_when_it_connects(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from tests.broker import MosquittoBroker, require_mosquitto

    require_mosquitto()
    with MosquittoBroker(tmp_path / "broker", tls=True) as broker:
        assert broker.tls_files is not None
        config = write_replay_config(tmp_path, tiny_bundle_3f,
                                     f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.tls_port}\ndrain_timeout_s = 10\n\n'
                                     f'[mqtt.tls]\nca_file = "{broker.tls_files.ca_cert}"\n\n'
                                     '[rollout]\nenabled = false\n')
        report = run_agent_process(config)
        log = broker.log_tail(200)
    assert report["modules"]["ssl"] == "loaded" and report["libcrypto"] is True
    # The event's alerts went to the broker over TLS (the stop waits for their acknowledgement).
    assert "New client connected" in log and "Received PUBLISH" in log, log


DEFERRED_MODULE = """
import time
FIRST = 1
time.sleep(0.3)  # a second thread arrives while this code runs
LAST = 2
"""


def test_a_deferred_module_runs_once_and_whole_when_two_threads_touch_it(tmp_path: Path) -> None:
    (tmp_path / "slow_module_for_test.py").write_text(DEFERRED_MODULE)
    script = """
import sys, threading
from edge_agent import lean_imports
assert lean_imports.defer("slow_module_for_test") and lean_imports.is_deferred("slow_module_for_test")
import slow_module_for_test as m  # an import of a deferred module does not run it
assert lean_imports.is_deferred("slow_module_for_test")
seen = []
threads = [threading.Thread(target=lambda: seen.append(m.LAST)) for _ in range(2)]
[t.start() for t in threads]; [t.join() for t in threads]
assert seen == [2, 2] and not lean_imports.is_deferred("slow_module_for_test"), seen
assert m.FIRST == 1 and type(m).__name__ == "module"
import hashlib, urllib.request
lean_imports.install()  # too late for hashlib and urllib.request: they stay as they are
assert not lean_imports.is_deferred("urllib.request")
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_lean_imports_keep_digests_and_ssl_working() -> None:
    script = """
import sys
from edge_agent import lean_imports
lean_imports.install()
import hashlib, hmac, ssl, urllib.request
assert "_hashlib" in sys.modules and sys.modules["_hashlib"] is None
assert lean_imports.is_deferred("ssl") and lean_imports.is_deferred("urllib.request")
print(hashlib.sha256(b"vigil").hexdigest(), hmac.new(b"k", b"m", "sha256").hexdigest())
context = ssl.create_default_context()  # the first real use runs the module
assert not lean_imports.is_deferred("ssl") and context.verify_mode == ssl.CERT_REQUIRED
assert isinstance(urllib.request.getproxies(), dict)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    import hashlib
    import hmac

    assert result.stdout.split() == [hashlib.sha256(b"vigil").hexdigest(),
                                     hmac.new(b"k", b"m", "sha256").hexdigest()]


RESET_BY_PEER = """
import json, socket, struct, sys, threading, time
from edge_agent import lean_imports
lean_imports.install()
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# A "broker" that accepts and resets the connection (RST): paho's recv raises ConnectionResetError
# and its except clauses name ssl.SSLWantReadError / ssl.SSLWantWriteError on the way.
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
def reset_each():
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.05)
        conn.close()
threading.Thread(target=reset_each, daemon=True).start()
seen = []
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reset-test")
client.on_disconnect = lambda *a: seen.append("disconnect")
client.connect("127.0.0.1", server.getsockname()[1])
for _ in range(40):
    client.loop(timeout=0.05)
ssl_mod = sys.modules["ssl"]
deferred_after_reset = lean_imports.is_deferred("ssl")
with open("/proc/self/maps") as maps:
    libcrypto = "libcrypto" in maps.read()
# paho's look-ups got stand-ins; anyone else gets the real classes, and ssl then works as ever.
real = ssl_mod.SSLWantReadError
print(json.dumps({"disconnects": len(seen), "deferred_after_reset": deferred_after_reset, "libcrypto": libcrypto,
                  "real_module": real.__module__, "loaded_now": not lean_imports.is_deferred("ssl"),
                  "context": type(ssl_mod.create_default_context()).__name__}))
"""


def test_a_reset_plain_connection_does_not_load_openssl() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", RESET_BY_PEER], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["disconnects"] >= 1  # the reset reached paho's socket code
    assert report["deferred_after_reset"] is True and report["libcrypto"] is False
    assert report["real_module"] == "ssl" and report["loaded_now"] and report["context"] == "SSLContext"
