"""The agent's side of ``vigil deploy`` and ``vigil policy``: verify, stage, swap, watch, keep or roll back.

Runs on the agent's one work thread (:meth:`RolloutController.poll` is called
from the service loop between blocks), so swapping the bundle never races the
pipeline. A deploy goes ``received`` -> ``verified`` (signature by one of
``[bundle] trusted_keys``, manifest and hashes, features and rate fit this
source) -> ``staged`` (written atomically beside the spool and read back) ->
``probation`` (swapped in: new Scorer and pipeline, an open event closes with
``model_changed``; :mod:`edge_agent.rollout.probation` watches it) -> ``active``
or ``rolled_back`` (the bundle that ran before is swapped back in, from
memory: no reload that could fail). Anything that fails before the swap is
``refused`` with the reason and changes nothing. The state on disk is written
before each step takes effect (:mod:`edge_agent.rollout.store`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_agent.bundle import Bundle, load_bundle, parse_bundle, sha256_hex, verify_bundle_signature
from edge_agent.config import AgentConfig, compare_features, compare_rate, mqtt_settings
from edge_agent.errors import VigilInputError
from edge_agent.rollout import protocol as P
from edge_agent.rollout.channel import CommandChannel
from edge_agent.rollout.policy import effective_alerts, merged_overrides, validate_changes, with_policy
from edge_agent.rollout.probation import ObservedScorer, ProbationMonitor, bounds_for
from edge_agent.rollout.store import ROLLOUT_DIR, RolloutStore
from edge_agent.signing import key_id

log = logging.getLogger("vigil.rollout")


class RolloutHost(Protocol):
    """What the controller needs from the agent (:class:`edge_agent.service.AgentService`)."""

    config: AgentConfig
    bundle: Bundle
    scorer: Any
    source: Any

    def install(self, bundle: Bundle, scorer: Any, config: AgentConfig | None = None) -> None: ...


class Refused(Exception):
    """A command that is not carried out; the message is the reason in the reply."""


@dataclass
class _Probation:
    command: P.Command
    bundle: Bundle
    scorer: Any  # the bare Scorer (kept when the bundle becomes active)
    observed: ObservedScorer
    monitor: ProbationMonitor
    entry: dict[str, Any]
    fallback: tuple[Bundle, Any]  # what ran before, swapped back in on failure


class RolloutController:
    """Built by :meth:`create` (None when ``[rollout]`` is off or there is no broker)."""

    def __init__(self, config: AgentConfig, store: RolloutStore, channel: CommandChannel | None) -> None:
        self.base_config = config  # the config file's values, without the remote policy
        self.store = store
        self.channel = channel
        self.device_id = config.device_id
        self.prefix = config.topic_prefix
        self._host: RolloutHost | None = None
        self._raw_scorer: Any = None
        self._probation: _Probation | None = None
        self._startup_replies: list[dict[str, Any]] = []

    @classmethod
    def create(cls, config: AgentConfig) -> RolloutController | None:
        settings = mqtt_settings(config)
        if not config.rollout.enabled or settings is None:
            return None
        try:
            store = RolloutStore(config.spool.path.parent / ROLLOUT_DIR)
        except OSError as exc:  # unwritable state directory: keep scoring (the spool runs memory-only too)
            log.error("rollout: cannot use %s (%s); deploys and remote policy are off until a restart",
                      config.spool.path.parent / ROLLOUT_DIR, exc.strerror or exc)
            return None
        return cls(config, store, CommandChannel(settings, config.device_id, config.rollout.session_expiry_s))

    # -- start and stop ----------------------------------------------------------------

    def startup_config(self) -> AgentConfig:
        """The config with the remote policy stored on the device (ignored, loudly, if it no longer fits)."""
        try:
            return with_policy(self.base_config, self.store.policy)
        except VigilInputError as exc:
            log.error("rollout: stored remote policy ignored: %s", exc)
            return self.base_config

    def startup_bundle(self, configured: Bundle) -> Bundle:
        """The bundle to start with: the deployed active one, else the previous, else the configured one."""
        probation = self.store.entry("probation")
        if probation is not None:
            # The process died during a probation (maybe because of that bundle): not proven, not kept.
            why = "the agent restarted during the probation"
            final = self._reply_payload(P.DEPLOY, str(probation.get("id")), P.ROLLED_BACK, reason=why,
                                        model_id=probation.get("model_id"))
            self._startup_replies.append(final)
            self.store.save(probation=None, handled=self.store.remember(str(probation.get("id")), final))
        configured_entry = self._configured_entry(configured)
        recorded = self.store.state.get("configured")
        if isinstance(recorded, dict) and configured_entry is not None and (
                recorded.get("path"), recorded.get("sha256")) != (configured_entry["path"], configured_entry["sha256"]):
            # Someone changed [bundle] path (or the file) since the last deploy: the config file wins.
            log.warning("rollout: the configured bundle changed since the last deploy; using %s, not the deployed one",
                        configured.path)
            self.store.save(active=None, previous=None, configured=None)
        trusted = list(self.base_config.bundle_section.public_keys())
        for name in ("active", "previous"):
            entry = self.store.entry(name)
            if entry is None:
                continue
            try:
                bundle = load_bundle(self.store.bundle_path(entry), trusted_keys=trusted)
                self._check_fits(bundle, None)
            except VigilInputError as exc:
                log.error("rollout: %s bundle unusable (%s); trying the one before", name, exc)
                continue
            if name == "previous":
                self.store.save(active=entry, previous=None)
            log.info("rollout: starting with deployed bundle %s (%s)", bundle.model_id, entry["path"])
            self.store.prune()
            return bundle
        self.store.prune()
        return configured

    def start(self, host: RolloutHost) -> None:
        self._host = host
        self._raw_scorer = host.scorer
        if self.channel is not None:
            self.channel.start()
            for payload in self._startup_replies:
                self.channel.reply(payload)
        self._startup_replies = []
        self._publish_state()

    def stop(self) -> None:
        # A probation still running stays in the state file: the next start rolls it back.
        if self.channel is not None:
            self.channel.stop()

    # -- the loop's hooks ----------------------------------------------------------------

    def poll(self) -> None:
        """Handle waiting commands and finish a probation that has its verdict."""
        if self.channel is not None:
            self.channel.flush()
            item = self.channel.take()
            if item is not None:
                self.handle(*item)
        if self._probation is not None:
            done, failure = self._probation.monitor.verdict()
            if done:
                self._roll_back(failure) if failure else self._accept()

    def scoring_failed(self, exc: Exception) -> bool:
        """The pipeline raised: roll back if a probation runs (True), else let the service handle it."""
        if self._probation is None:
            return False
        self._probation.monitor.scoring_failed(exc)
        self._roll_back(self._probation.monitor.failure or str(exc))
        return True

    # -- commands ----------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        if topic.rsplit("/", 1)[-1] not in P.COMMANDS:
            return  # another add-on's command topic (e.g. cmd/captures): not ours to answer
        try:
            command = P.decode_command(payload)
        except P.CommandError as exc:
            self._send(self._reply_payload("?", "?", P.REFUSED, reason=str(exc)))
            return
        try:
            if topic != P.command_topic(self.prefix, command.command) or command.device != self.device_id:
                raise Refused(f"not this device's {command.command} topic ({topic}, device {command.device!r}); "
                              f"commands are accepted only on {P.command_topic(self.prefix, command.command)}")
            done = self.store.handled(command.id)
            if done is not None:  # a QoS 1 duplicate: say again how it ended, do nothing
                self._reply(command, str(done.get("state")), reason=done.get("reason"), duplicate=True)
                return
            if command.command == P.DEPLOY:
                self._deploy(command)
            else:
                self._policy(command)
        except Refused as exc:
            self._finish(command, P.REFUSED, reason=str(exc))

    def _deploy(self, command: P.Command) -> None:
        host = self._need_host()
        self._reply(command, P.RECEIVED, bytes=len(command.body))
        if self._probation is not None:
            raise Refused(f"bundle {self._probation.bundle.model_id} is on probation; deploy again after its result")
        trusted = list(self.base_config.bundle_section.public_keys())
        if not trusted:
            raise Refused("this device has no bundle.trusted_keys, so it accepts no deployed bundle")
        try:
            bundle = parse_bundle(command.body, f"deploy {command.id}")
            signer = verify_bundle_signature(bundle, trusted)
            self._check_fits(bundle, host)
        except VigilInputError as exc:
            raise Refused(exc.detail) from None
        sha = sha256_hex(command.body)
        self._reply(command, P.VERIFIED, model_id=bundle.model_id, sha256=sha, signer=key_id(str(signer)))
        try:
            path = self.store.stage(command.body, sha)
            bundle = load_bundle(path, trusted_keys=trusted)  # what is on disk is what runs
        except (OSError, VigilInputError) as exc:
            raise Refused(f"cannot stage the bundle: {exc}") from None
        self._reply(command, P.STAGED, model_id=bundle.model_id, path=str(path))
        scorer = self._make_scorer(bundle)
        rollout = self.base_config.rollout
        monitor = ProbationMonitor(bounds_for(bundle, rollout.probation_windows, rollout.probation_timeout_s,
                                              rollout.max_alarm_fraction))
        entry = self.store.entry_for(path, sha, bundle.model_id, command.id)
        configured = self.base_config.bundle
        self.store.save(probation=entry,  # before the swap: a crash from here on rolls back at the next start
                        configured=self.store.state.get("configured") or (
                            self._configured_entry(configured) if configured is not None else None))
        observed = ObservedScorer(scorer, monitor)
        self._probation = _Probation(command, bundle, scorer, observed, monitor, entry,
                                     (host.bundle, self._raw_scorer))
        try:
            host.install(bundle, observed)
        except Exception as exc:  # e.g. its detection settings do not build a pipeline: back to what ran
            self._roll_back(f"cannot start scoring with it: {type(exc).__name__}: {exc}"[:300])
            return
        self._reply(command, P.PROBATION, model_id=bundle.model_id, bounds=monitor.bounds.to_dict())
        self._publish_state()

    def _make_scorer(self, bundle: Bundle) -> Any:
        from edge_agent.runtime import Scorer

        try:
            return Scorer(bundle, num_threads=self.base_config.bundle_section.num_threads)
        except (VigilInputError, ValueError, RuntimeError) as exc:
            raise Refused(f"the interpreter cannot load the model: {exc}") from None

    def _check_fits(self, bundle: Bundle, host: RolloutHost | None) -> None:
        """The new bundle must read what this source delivers: same features (in order) and rate."""
        current = self.base_config.bundle if host is None else host.bundle
        features = list(getattr(host.source, "features", None) or []) if host is not None else []
        if not features and current is not None:
            features = list(current.features)
        if features:
            compare_features(features, bundle, self.base_config.path, "bundle.features")
        rate = getattr(host.source, "sampling_rate_hz", None) if host is not None else None
        compare_rate(rate or (current.sampling_rate_hz if current is not None else None), bundle,
                     self.base_config.path)

    def _accept(self) -> None:
        p = self._take_probation()
        previous = self.store.entry("active") or self._configured_entry(p.fallback[0])
        final = self._reply_payload(P.DEPLOY, p.command.id, P.ACTIVE, model_id=p.bundle.model_id,
                                    probation=p.monitor.summary())
        self.store.save(active=p.entry, previous=previous, handled=self.store.remember(p.command.id, final))
        p.observed.monitor = None  # stays in the pipeline, only forwarding now
        self._raw_scorer = p.scorer
        self.store.prune()
        self._send(final)
        self._publish_state()

    def _roll_back(self, reason: str) -> None:
        p = self._take_probation()
        log.error("rollout: bundle %s failed its probation (%s); rolling back to %s", p.bundle.model_id, reason,
                  p.fallback[0].model_id)
        self._need_host().install(*p.fallback)
        final = self._reply_payload(P.DEPLOY, p.command.id, P.ROLLED_BACK, reason=reason,
                                    model_id=p.bundle.model_id, running=p.fallback[0].model_id,
                                    probation=p.monitor.summary())
        self.store.save(probation=None, handled=self.store.remember(p.command.id, final))
        self.store.prune()
        self._send(final)
        self._publish_state()

    def _take_probation(self) -> _Probation:
        assert self._probation is not None
        p, self._probation = self._probation, None
        return p

    def _configured_entry(self, bundle: Bundle) -> dict[str, Any] | None:
        path = Path(bundle.path)
        try:
            sha = sha256_hex(path.read_bytes())
        except OSError:
            return None
        return self.store.entry_for(path, sha, bundle.model_id, None)

    def _policy(self, command: P.Command) -> None:
        host = self._need_host()
        header = command.header
        reset = header.get("reset") is True
        try:
            changes = validate_changes(header.get("set")) if header.get("set") or not reset else {}
            overrides = merged_overrides(self.store.policy, changes, reset)
            config = with_policy(self.base_config, overrides)
            effective = effective_alerts(self.base_config, overrides)
        except VigilInputError as exc:
            raise Refused(str(exc)) from None
        previous = host.config
        try:
            host.install(host.bundle, host.scorer, config)
        except Exception as exc:  # the pipeline refused the values: keep the ones that worked
            host.install(host.bundle, host.scorer, previous)
            raise Refused(f"the pipeline cannot use these values: {type(exc).__name__}: {exc}"[:300]) from None
        final = self._reply_payload(P.POLICY, command.id, P.APPLIED, alerts=effective, remote=overrides)
        self.store.save(policy=overrides, handled=self.store.remember(command.id, final))
        self._send(final)
        self._publish_state()

    # -- replies and state ----------------------------------------------------------------

    def _need_host(self) -> RolloutHost:
        if self._host is None:
            raise Refused("the agent is not running yet")
        return self._host

    def _reply_payload(self, command: str, command_id: str, state: str, **fields: Any) -> dict[str, Any]:
        return P.reply(self.device_id, command, command_id, state, **fields)

    def _reply(self, command: P.Command, state: str, **fields: Any) -> None:
        self._send(self._reply_payload(command.command, command.id, state, **fields))

    def _finish(self, command: P.Command, state: str, **fields: Any) -> None:
        final = self._reply_payload(command.command, command.id, state, **fields)
        self.store.save(handled=self.store.remember(command.id, final))
        self._send(final)

    def _send(self, payload: dict[str, Any]) -> None:
        if self.channel is not None:
            self.channel.reply(payload)

    def _publish_state(self) -> None:
        if self.channel is None or self._host is None:
            return
        bundle = self._host.bundle
        p = self._probation
        self.channel.publish_state({
            "format": P.STATE_FORMAT, "device": self.device_id, "time": round(time.time(), 3),
            "bundle": {"model_id": bundle.model_id, "path": bundle.path},
            "probation": None if p is None else {"id": p.command.id, "model_id": p.bundle.model_id},
            "policy": self.store.policy,
        })
