"""Rollout pieces without a broker: command envelope, probation bounds and verdicts, remote policy, state file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from edge_agent.bundle import Bundle, load_bundle, pack_bundle, parse_bundle
from edge_agent.config import load_config
from edge_agent.errors import VigilInputError
from edge_agent.rollout import protocol as P
from edge_agent.rollout.policy import effective_alerts, validate_changes, with_policy
from edge_agent.rollout.probation import ProbationBounds, ProbationMonitor, bounds_for
from edge_agent.rollout.store import RolloutStore, atomic_write
from vigil.cli.deploy_cmds import read_group


@pytest.mark.parametrize(("payload", "word"), [
    (b"not json\n", "not JSON"),
    (b'{"format": "other"}', "format is not"),
    (json.dumps({"format": P.COMMAND_FORMAT, "command": "reboot", "id": "x", "device": "d"}).encode(), "unknown"),
    (json.dumps({"format": P.COMMAND_FORMAT, "command": "deploy", "id": "", "device": "d"}).encode(), "id must"),
    (json.dumps({"format": P.COMMAND_FORMAT, "command": "deploy", "id": "x"}).encode(), "device must"),
    (b"[" * 100_000, "larger than"),
])
def test_commands_that_cannot_be_read_are_refused_with_a_reason(payload: bytes, word: str) -> None:
    with pytest.raises(P.CommandError, match=word):
        P.decode_command(payload)


def test_command_round_trip_keeps_the_raw_bundle_bytes() -> None:
    body = bytes(range(256)) * 4  # newlines and zero bytes inside the body
    command = P.decode_command(P.encode_command(P.DEPLOY, "d-1", "pump-1", body, note="x"))
    assert (command.command, command.id, command.device, command.body) == (P.DEPLOY, "d-1", "pump-1", body)
    assert command.header["note"] == "x"
    assert P.command_topic("vigil/pump-1", P.DEPLOY) == "vigil/pump-1/cmd/deploy"


def _with_threshold(bundle_path: Path, strategy: str, params: dict) -> Bundle:
    bundle = load_bundle(bundle_path)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["threshold"].update(strategy=strategy, params=params)
    return parse_bundle(pack_bundle(manifest, bundle.model_bytes))


@pytest.mark.slow  # uses the converted tiny bundle
def test_alarm_bounds_come_from_the_bundles_threshold_statistics(tiny_bundle_3f: Path) -> None:
    cantelli = bounds_for(_with_threshold(tiny_bundle_3f, "mean+k*std", {"k": 3.0}), 100, 60.0)
    assert math.isclose(cantelli.max_alarm_fraction, 0.1) and "Cantelli" in cantelli.basis
    pot = bounds_for(_with_threshold(tiny_bundle_3f, "pot", {"heldout_exceedance": 0.02, "q_risk": 0.001}), 100, 60)
    assert math.isclose(pot.max_alarm_fraction, 0.2)  # 10 x the larger expected exceedance
    tight = bounds_for(_with_threshold(tiny_bundle_3f, "pot", {"q_risk": 1e-5}), 100, 60)
    assert tight.max_alarm_fraction == 0.05  # never below the floor
    loose = bounds_for(_with_threshold(tiny_bundle_3f, "mean+k*std", {"k": 0.5}), 100, 60)
    assert loose.max_alarm_fraction == 0.5  # never above the ceiling
    override = bounds_for(_with_threshold(tiny_bundle_3f, "pot", {"q_risk": 0.01}), 100, 60, 0.3)
    assert override.max_alarm_fraction == 0.3 and override.basis == "rollout.max_alarm_fraction"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _monitor(windows: int = 10, max_alarm: float = 0.2) -> tuple[ProbationMonitor, Clock]:
    clock = Clock()
    return ProbationMonitor(ProbationBounds(windows, 60.0, 1.0, max_alarm, "test"), clock=clock), clock


def test_probation_passes_normal_scores_and_fails_each_rule() -> None:
    ok, _ = _monitor()
    for i in range(10):
        assert ok.verdict() == (False, None)
        ok.add(0.1 + 0.01 * i)
    assert ok.verdict() == (True, None)
    assert ok.summary()["windows"] == 10

    hot, _ = _monitor()
    for _ in range(3):
        hot.add(5.0)  # 3 alarms > 20 % of 10 windows: fails before the probation's end
    done, reason = hot.verdict()
    assert done and reason is not None and reason.startswith("alarm rate: 3 of 3")

    flat, _ = _monitor()
    for _ in range(10):
        flat.add(0.3)
    assert "do not vary" in str(flat.verdict()[1])

    high, _ = _monitor(max_alarm=1.0)
    for i in range(10):
        high.add(2.0 + i)
    assert "median" in str(high.verdict()[1])

    nan, _ = _monitor()
    nan.add(float("nan"))
    assert "not finite" in str(nan.verdict()[1])

    broken, _ = _monitor()
    broken.scoring_failed(RuntimeError("tensor shape"))
    assert "RuntimeError: tensor shape" in str(broken.verdict()[1])

    slow, clock = _monitor()
    slow.add(0.1)
    clock.now = 61.0
    assert "only 1 of 10 windows scored in 60 s" == slow.verdict()[1]


def _config(tmp_path: Path, alerts: str = "") -> object:
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "d"\n[bundle]\npath = "x.vigil"\n[source]\nkind = "synthetic"\n'
                    f"[alerts]\n{alerts}\n")
    return load_config(path, check_bundle=False, check_source=False, check_files=False)


def test_remote_policy_is_checked_by_the_config_schema(tmp_path: Path) -> None:
    config = _config(tmp_path, "k = 2\nn = 4\n")
    with pytest.raises(VigilInputError, match="alerts.k"):
        validate_changes({"k": 0})
    with pytest.raises(VigilInputError, match="unknown key"):
        validate_changes({"threshold": 1.0})
    with pytest.raises(VigilInputError, match="must be true or false"):
        validate_changes({"dynamic_threshold": "yes"})
    with pytest.raises(VigilInputError, match="must not exceed n = 4"):
        effective_alerts(config, {"k": 7})  # type: ignore[arg-type]
    with pytest.raises(VigilInputError, match="set k and n together"):
        effective_alerts(config, {"k": None})  # type: ignore[arg-type]
    changed = with_policy(config, {"sensitivity": 0.8, "k": 3, "n": 5, "smoothing": None})  # type: ignore[arg-type]
    assert (changed.alerts.sensitivity, changed.alerts.k, changed.alerts.n, changed.alerts.smoothing) == (0.8, 3, 5,
                                                                                                         None)
    assert changed.values["alerts"]["k"] == 3 and config.alerts.k == 2  # type: ignore[attr-defined]


def test_state_file_survives_a_torn_write_and_a_corrupt_file_means_the_configured_bundle(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "rollout")
    store.save(policy={"k": 3, "n": 5})
    store.path.with_name(store.path.name + ".tmp").write_text('{"format": "vigil.rollout/1", "poli')  # died here
    assert RolloutStore(tmp_path / "rollout").policy == {"k": 3, "n": 5}
    atomic_write(store.path, b"\x00garbage")
    fresh = RolloutStore(tmp_path / "rollout")
    assert fresh.policy == {} and fresh.entry("active") is None


def test_prune_keeps_the_bundles_the_state_names(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "rollout")
    paths = [store.stage(bytes([i]) * 10, f"{i:02x}" * 32) for i in range(4)]
    store.save(active=store.entry_for(paths[1], "s", "m1", "a"), previous=store.entry_for(paths[0], "s", "m0", None),
               probation=store.entry_for(paths[3], "s", "m3", "c"))
    store.prune()
    assert sorted(p.name for p in store.bundles.glob("*.vigil")) == sorted(paths[i].name for i in (0, 1, 3))
    handled = {}
    for i in range(40):
        store.state["handled"] = handled = store.remember(f"id-{i}", {"state": "active", "x": 1})
    assert len(handled) == 32 and "id-39" in handled and "id-0" not in handled and handled["id-39"] == {
        "state": "active"}


def test_groups_file_names_its_members_or_says_what_is_wrong(tmp_path: Path) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nline-a = ["pump-1", "pump-2", "pump-1"]\nempty = []\n')
    assert read_group(groups, "line-a") == ["pump-1", "pump-2"]
    with pytest.raises(VigilInputError, match="no group 'line-b'.*known: line-a, empty"):
        read_group(groups, "line-b")
    with pytest.raises(VigilInputError, match="non-empty list"):
        read_group(groups, "empty")
    with pytest.raises(VigilInputError, match="cannot read"):
        read_group(tmp_path / "missing.toml", "line-a")


def _signed_variant(source: Path, key: object, model_id: str) -> bytes:
    from edge_agent.bundle import sign_bundle

    bundle = load_bundle(source)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["model_id"] = model_id
    return sign_bundle(pack_bundle(manifest, bundle.model_bytes), key)  # type: ignore[arg-type]


@pytest.mark.slow  # uses the converted tiny bundle
def test_start_picks_a_bundle_that_loads_whatever_the_state_file_says(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from edge_agent.bundle import sha256_hex
    from edge_agent.rollout.controller import RolloutController
    from edge_agent.signing import new_signing_key

    key = new_signing_key()
    base = tmp_path / "base.vigil"
    base.write_bytes(_signed_variant(tiny_bundle_3f, key, "tiny-base"))
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "d"\n[bundle]\npath = "base.vigil"\ntrusted_keys = ["{key.public_key}"]\n'
                    '[source]\nkind = "synthetic"\nrate_hz = 100.0\n[spool]\npath = "state/spool.db"\n')
    config = load_config(path, check_source=False)

    def start() -> tuple[RolloutController, str]:
        store = RolloutStore(tmp_path / "state" / "rollout")
        controller = RolloutController(config, store, None)
        return controller, controller.startup_bundle(config.bundle).model_id  # type: ignore[arg-type]

    controller, _ = start()
    store = controller.store
    v2, v3 = (_signed_variant(tiny_bundle_3f, key, m) for m in ("tiny-v2", "tiny-v3"))
    e2 = store.entry_for(store.stage(v2, sha256_hex(v2)), sha256_hex(v2), "tiny-v2", "d-2")
    e3 = store.entry_for(store.stage(v3, sha256_hex(v3)), sha256_hex(v3), "tiny-v3", "d-3")
    configured = store.entry_for(base, sha256_hex(base.read_bytes()), "tiny-base", None)
    store.save(active=e2, previous=None, probation=e3, configured=configured)

    controller, model = start()  # died during v3's probation: v2, and a rolled_back answer for d-3
    assert model == "tiny-v2" and controller.store.entry("probation") is None
    assert [(r["id"], r["state"]) for r in controller._startup_replies] == [("d-3", "rolled_back")]
    assert not (store.bundles / Path(e3["path"]).name).exists()  # pruned

    controller.store.save(active=e3, previous=e2)
    atomic_write(store.bundles / "v3-missing.vigil", b"")  # unrelated junk is pruned too
    controller, model = start()  # the active file is gone: the previous one, which becomes active
    assert model == "tiny-v2" and controller.store.entry("active") == e2

    atomic_write(store.bundle_path(e2), b"PK\x03\x04 damaged")
    assert start()[1] == "tiny-base"  # nothing deployed loads: the configured bundle

    controller.store.save(active=e2, previous=None)
    atomic_write(store.bundle_path(e2), v2)
    base.write_bytes(_signed_variant(tiny_bundle_3f, key, "tiny-base-2"))  # the operator installed a new one
    config = load_config(path, check_source=False)
    controller, model = start()
    assert model == "tiny-base-2" and controller.store.entry("active") is None  # the config file wins
