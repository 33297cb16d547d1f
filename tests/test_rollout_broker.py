"""Signed rollout and remote policy against a real mosquitto with the shipped ACL and two real agents.

Two agents replay normal data in a loop. ``vigil deploy`` pushes a signed
bundle to both (both end ``active``); device B then gets an unsigned bundle
(``refused``) and a signed one whose threshold is far too low for this machine
(``rolled_back`` by its probation) and keeps scoring with the good one; a
policy change reaches A, is acknowledged and, like B's bundle, survives a
restart. The ACL part checks that a device cannot command itself or another.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge_agent.bundle import load_bundle, pack_bundle, sign_bundle
from edge_agent.rollout import protocol as P
from edge_agent.signing import new_signing_key
from tests.broker import MosquittoBroker, require_mosquitto
from tests.models import normal_rows
from tests.test_agent_broker import start_agent, stop
from tests.test_agent_service import vigil

pytestmark = [pytest.mark.broker, pytest.mark.slow]  # slow: uses the converted tiny bundle
ACL = (Path(__file__).resolve().parents[1] / "firmware_configs" / "mosquitto" / "acl").read_text()
USERS = {"dev-a": "pw-a", "dev-b": "pw-b", "vigil-admin": "pw-op"}


def variant(source: Path, key: object, model_id: str, threshold_factor: float = 1.0, sign: bool = True) -> bytes:
    """The tiny bundle with another model id (and threshold), packed again, optionally signed."""
    bundle = load_bundle(source)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["model_id"] = model_id
    manifest["threshold"]["value"] = float(manifest["threshold"]["value"]) * threshold_factor
    data = pack_bundle(manifest, bundle.model_bytes)
    return sign_bundle(data, key) if sign else data  # type: ignore[arg-type]


class Operator:
    """The operator account watching replies and retained rollout states."""

    def __init__(self, port: int, user: str = "vigil-admin", password: str = "pw-op") -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.subacks: list[list[int]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"op-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.append([c.value for c in codes])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"raw": bytes(msg.payload)}
        with self._lock:
            self.messages.append((msg.topic, payload))

    def subscribe(self, topic: str) -> None:
        n = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        assert wait(lambda: len(self.subacks) > n, 10)

    def on(self, suffix: str) -> list[tuple[str, dict]]:
        with self._lock:
            return [(t, p) for t, p in self.messages if t.endswith(suffix)]

    def state(self, device: str, after: float = 0.0) -> dict | None:
        found = [p for t, p in self.on(f"{device}/rollout") if p.get("time", 0) > after]
        return found[-1] if found else None

    def replies(self, command_id: str) -> list[dict]:
        return [p for _, p in self.on("/reply") if p.get("id") == command_id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def agent_config(folder: Path, device: str, bundle: Path, public_key: str, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "normal.csv", normal_rows(1200, 3, 0, start=720), delimiter=",", header="f0,f1,f2",
               comments="", fmt="%.6f")
    text = f"""
[device]
id = "{device}"
[bundle]
path = "{bundle}"
trusted_keys = ["{public_key}"]
[source]
kind = "replay"
path = "normal.csv"
rate_hz = 100.0
speed = 4.0
loop = true
[mqtt]
host = "127.0.0.1"
port = {port}
username = "{device}"
password = "{USERS[device]}"
reconnect_min_s = 0.05
reconnect_max_s = 0.5
[spool]
path = "state/spool.db"
[health]
interval_s = 0
[rollout]
probation_windows = 300
probation_timeout_s = 30
"""
    path = folder / "agent.toml"
    path.write_text(text)
    return path


def deploy(bundle: Path, port: int, *devices: str, targets: tuple[str, ...] = (),
           timeout: float = 40) -> subprocess.CompletedProcess[str]:
    targets = (*targets, *(arg for d in devices for arg in ("--device", d)))
    return vigil("deploy", str(bundle), *targets, "--host", "127.0.0.1", "--port", str(port),
                 "--user", "vigil-admin", "--password", "pw-op", "--timeout", str(timeout))


def policy(port: int, device: str, *values: str) -> subprocess.CompletedProcess[str]:
    return vigil("policy", "set", *values, "--device", device, "--host", "127.0.0.1", "--port", str(port),
                 "--user", "vigil-admin", "--password", "pw-op", "--timeout", "20")


def test_deploy_rollback_and_policy_on_two_agents(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    require_mosquitto()
    key = new_signing_key()
    base = tmp_path / "base.vigil"
    base.write_bytes(variant(tiny_bundle_3f, key, "tiny-base"))
    good, hot, unsigned = tmp_path / "good.vigil", tmp_path / "hot.vigil", tmp_path / "unsigned.vigil"
    good.write_bytes(variant(tiny_bundle_3f, key, "tiny-v2"))
    hot.write_bytes(variant(tiny_bundle_3f, key, "tiny-hot", threshold_factor=1e-6))
    unsigned.write_bytes(variant(tiny_bundle_3f, key, "tiny-unsigned", sign=False))

    with MosquittoBroker(tmp_path / "mosquitto", users=USERS, acl=ACL) as broker:
        op = Operator(broker.port)
        op.subscribe("vigil/+/reply")
        op.subscribe("vigil/+/rollout")
        op.subscribe("vigil/dev-b/alert")
        groups = tmp_path / "groups.toml"
        groups.write_text('[groups]\nline-a = ["dev-a", "dev-b"]\n')
        configs = {d: agent_config(tmp_path / d, d, base, key.public_key, broker.port) for d in ("dev-a", "dev-b")}
        procs = {d: start_agent(c, tmp_path / f"{d}.log") for d, c in configs.items()}
        logs = lambda: "\n".join((tmp_path / f"{d}.log").read_text()[-3000:] for d in procs)  # noqa: E731
        try:
            assert wait(lambda: all(op.state(d) for d in procs), 40), logs()
            assert all(op.state(d)["bundle"]["model_id"] == "tiny-base" for d in procs)

            # 1. A signed bundle to both (a group): every step reported, both end active.
            run = deploy(good, broker.port, targets=("--group", "line-a", "--groups", str(groups)))
            assert run.returncode == 0, run.stdout + run.stderr + logs()
            for d in procs:
                steps = [line.split()[1].rstrip(":") for line in run.stdout.splitlines() if line.startswith(d)]
                assert steps == ["sent", "received", "verified", "staged", "probation", "active"], run.stdout
            assert wait(lambda: all(op.state(d)["bundle"]["model_id"] == "tiny-v2" for d in procs), 10)

            # 2. Unsigned: the CLI refuses it, and so does the device when it gets it anyway.
            local = deploy(unsigned, broker.port, "dev-b")
            assert local.returncode == 2 and "not signed" in local.stderr
            op.client.publish("vigil/dev-b/cmd/deploy", P.encode_command(P.DEPLOY, "raw-unsigned", "dev-b",
                                                                         unsigned.read_bytes()), qos=1)
            assert wait(lambda: any(r["state"] == "refused" for r in op.replies("raw-unsigned")), 20), logs()
            refused = [r for r in op.replies("raw-unsigned") if r["state"] == "refused"][0]
            assert "not signed" in refused["reason"]

            # 3. Signed but wrong for this machine: probation fails, B rolls back to tiny-v2.
            run = deploy(hot, broker.port, "dev-b")
            assert run.returncode == 1, run.stdout + run.stderr
            assert "dev-b  rolled_back: alarm rate" in run.stdout, run.stdout
            assert wait(lambda: op.state("dev-b")["bundle"]["model_id"] == "tiny-v2", 10)
            # Its threshold opened an event at once; the swap back closed it as model_changed.
            assert wait(lambda: any(p.get("close_reason") == "model_changed" for _, p in op.on("dev-b/alert")), 10)
            hot_events = [p for _, p in op.on("dev-b/alert") if p.get("model_id") == "tiny-hot"]
            assert hot_events and hot_events[0]["phase"] == "open"

            # A device that never answers: timed out, exit 1 (the command stays queued at the broker).
            late = deploy(good, broker.port, "dev-c", timeout=1.5)
            assert late.returncode == 1 and "dev-c  timed_out" in late.stdout, late.stdout + late.stderr
            assert "never seen on this broker" in late.stdout

            # 4. Policy for A: acknowledged with the effective values.
            run = policy(broker.port, "dev-a", "sensitivity=0.8", "k=3", "n=5")
            assert run.returncode == 0, run.stdout + run.stderr + logs()
            assert "dev-a  applied" in run.stdout and '"sensitivity":0.8' in run.stdout
            bad = policy(broker.port, "dev-a", "k=0")
            assert bad.returncode == 2 and "alerts.k" in bad.stderr
            op.client.publish("vigil/dev-a/cmd/policy", P.encode_command(P.POLICY, "raw-k7", "dev-a",
                                                                         set={"k": 7}), qos=1)
            assert wait(lambda: any(r["state"] == "refused" for r in op.replies("raw-k7")), 20)
            assert "must not exceed n = 5" in op.replies("raw-k7")[-1]["reason"]

            # 5. Both survive a restart: B keeps tiny-v2, A keeps tiny-v2 and its policy.
            for d in procs:
                assert stop(procs[d], signal.SIGTERM) == 0, logs()
                restarted = time.time()
                procs[d] = start_agent(configs[d], tmp_path / f"{d}.log")
                assert wait(lambda d=d, t=restarted: op.state(d, after=t) is not None, 40), logs()
                assert op.state(d, after=restarted)["bundle"]["model_id"] == "tiny-v2"
            assert op.state("dev-a", after=0)["policy"] == {"sensitivity": 0.8, "k": 3, "n": 5}
            assert op.state("dev-b", after=0)["policy"] == {}
        finally:
            for proc in procs.values():
                stop(proc, signal.SIGTERM)
            op.close()


def test_shipped_acl_lets_only_the_operator_command_a_device(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker(tmp_path / "mosquitto", users=USERS, acl=ACL) as broker:
        op = Operator(broker.port)
        op.subscribe("vigil/+/cmd/#")
        device_a = Operator(broker.port, "dev-a", "pw-a")
        device_a.subscribe("vigil/dev-a/cmd/+")  # its own
        device_a.subscribe("vigil/dev-b/cmd/+")  # someone else's: mosquitto grants it but delivers nothing
        for topic in ("vigil/dev-a/cmd/policy", "vigil/dev-b/cmd/deploy"):  # a device commanding: dropped
            device_a.client.publish(topic, b"forged", qos=1).wait_for_publish(10)
        for device in ("dev-b", "dev-a"):
            op.client.publish(f"vigil/{device}/cmd/policy", device.encode(), qos=1).wait_for_publish(10)
        assert wait(lambda: len(op.on("/cmd/policy")) >= 2 and device_a.messages, 10)
        time.sleep(0.3)
        assert [(t, p) for t, p in op.messages] == [("vigil/dev-b/cmd/policy", {"raw": b"dev-b"}),
                                                   ("vigil/dev-a/cmd/policy", {"raw": b"dev-a"})]
        assert device_a.messages == [("vigil/dev-a/cmd/policy", {"raw": b"dev-a"})]  # only the operator's, its own
        device_a.client.publish("vigil/dev-a/reply", b"{}", qos=1).wait_for_publish(10)  # one level: allowed
        op.subscribe("vigil/dev-a/reply")
        device_a.client.publish("vigil/dev-a/reply", b"{}", qos=1).wait_for_publish(10)
        assert wait(lambda: len(op.on("dev-a/reply")) == 1, 10)
        op.close()
        device_a.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_killed_during_probation_restarts_on_the_old_bundle_and_gets_queued_commands(
        tmp_path: Path, tiny_bundle_3f: Path, protocol: str) -> None:
    """kill -9 mid-probation: the next start runs the bundle from before and reports rolled_back; a command
    published while the agent was dead waits in its persistent session (MQTT 5 session expiry, 3.1.1 clean
    session off) and is carried out after the restart."""
    require_mosquitto()
    key = new_signing_key()
    base = tmp_path / "base.vigil"
    base.write_bytes(variant(tiny_bundle_3f, key, "tiny-base"))
    with MosquittoBroker(tmp_path / "mosquitto", users=USERS, acl=ACL) as broker:
        op = Operator(broker.port)
        op.subscribe("vigil/+/reply")
        op.subscribe("vigil/+/rollout")
        config = agent_config(tmp_path / "dev-b", "dev-b", base, key.public_key, broker.port)
        config.write_text(config.read_text().replace("probation_windows = 300", "probation_windows = 10000000")
                          .replace("probation_timeout_s = 30", "probation_timeout_s = 3600")
                          .replace("[mqtt]\n", f'[mqtt]\nprotocol = "{protocol}"\n'))
        log = tmp_path / "dev-b.log"
        proc = start_agent(config, log)
        try:
            assert wait(lambda: op.state("dev-b") is not None, 40), log.read_text()
            damaged = variant(tiny_bundle_3f, key, "tiny-damaged")
            damaged = damaged[: len(damaged) // 2]
            op.client.publish("vigil/dev-b/cmd/deploy", P.encode_command(P.DEPLOY, "damaged", "dev-b", damaged),
                              qos=1)
            op.client.publish("vigil/dev-b/cmd/deploy", P.encode_command(
                P.DEPLOY, "long-probation", "dev-b", variant(tiny_bundle_3f, key, "tiny-v2")), qos=1)
            assert wait(lambda: any(r["state"] == "probation" for r in op.replies("long-probation")), 30)
            assert "truncated or damaged" in op.replies("damaged")[-1]["reason"]
            proc.kill()  # kill -9 while the new bundle is on probation
            proc.wait(10)
            op.client.publish("vigil/dev-b/cmd/policy", P.encode_command(P.POLICY, "while-down", "dev-b",
                                                                         set={"sensitivity": 0.9}), qos=1)
            restarted = time.time()
            proc = start_agent(config, log)
            assert wait(lambda: any(r["state"] == "rolled_back" for r in op.replies("long-probation")), 40), \
                log.read_text()[-3000:]
            back = [r for r in op.replies("long-probation") if r["state"] == "rolled_back"][0]
            assert "restarted during the probation" in back["reason"]
            assert wait(lambda: any(r["state"] == "applied" for r in op.replies("while-down")), 20)
            assert wait(lambda: (op.state("dev-b", after=restarted) or {}).get("policy") == {"sensitivity": 0.9})
            assert op.state("dev-b", after=restarted)["bundle"]["model_id"] == "tiny-base"
        finally:
            stop(proc, signal.SIGTERM)
            op.close()
