"""What changes the events a pipeline publishes, in one frozen object.

Built from the bundle alone (its recommended alert policy: what ``vigil score``
uses without ``--config``) or from an agent config on top of the bundle
(``[alerts]``, ``[quality]``, ``[device]``): the agent and ``vigil score
--config`` call the same :meth:`PipelineSettings.from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edge_agent.alerts import AlertPolicy
from edge_agent.bundle import Bundle
from edge_agent.detection.settings import ScoreSettings

OFFLINE_DEVICE_ID = "offline"


@dataclass(frozen=True)
class PipelineSettings:
    policy: AlertPolicy
    smoothing_alpha: float | None
    quality_policy: str = "skip"
    valid_range: tuple[float, float] | None = None
    top_features: int = 3
    dynamic_threshold: bool = True
    sensor_faults: bool = True
    close_on_shutdown: bool = True
    device_id: str = OFFLINE_DEVICE_ID
    #: Overrides the bundle's ``detection.score`` (window mean or per-row scores); None = the bundle's.
    score: ScoreSettings | None = None

    @classmethod
    def for_bundle(cls, bundle: Bundle, **overrides: Any) -> PipelineSettings:
        """The bundle's recommended alert policy (written by the trainer into the manifest)."""
        rec = recommended_policy(bundle)
        settings = cls(
            policy=AlertPolicy(1.0, rec["k"], rec["n"], rec["m"], rec["cooldown"]),
            smoothing_alpha=rec["smoothing"],
        )  # top_features stays the device's default (3), so vigil score lists what a default agent lists
        return replace(settings, **overrides) if overrides else settings

    @classmethod
    def from_config(cls, config: Any, bundle: Bundle) -> PipelineSettings:
        """``[alerts]`` / ``[quality]`` / ``[device]`` of an agent config; unset alert keys = the bundle's."""
        rec = recommended_policy(bundle)
        alerts, quality = config.alerts, config.quality

        def pick(key: str) -> Any:
            value = getattr(alerts, key)
            return rec[key] if value is None else value

        policy = AlertPolicy(float(alerts.sensitivity), int(pick("k")), int(pick("n")), int(pick("m")),
                             int(pick("cooldown")))
        return cls(
            policy=policy,
            smoothing_alpha=pick("smoothing"),
            quality_policy=quality.policy,
            valid_range=quality.valid_range,
            top_features=alerts.top_features,
            dynamic_threshold=alerts.dynamic_threshold,
            sensor_faults=alerts.sensor_faults,
            close_on_shutdown=alerts.close_on_shutdown,
            device_id=config.device_id,
            score=_score_override(alerts.score, bundle),
        )


def _score_override(mode: str | None, bundle: Bundle) -> ScoreSettings | None:
    """``[alerts] score``: None (unset, or the bundle's own mode) keeps the bundle's whole score section."""
    if mode is None:
        return None
    own = ((bundle.detection or {}).get("score") or {}).get("mode", "window")
    return None if mode == own else ScoreSettings(mode=mode)


def recommended_policy(bundle: Bundle) -> dict[str, Any]:
    """The manifest's ``detection.policy`` (k, n, m, cooldown, smoothing), else k = n = m = 1."""
    detection = bundle.detection or {}
    policy = detection.get("policy") or {}
    smoothing = policy.get("smoothing", bundle.smoothing_alpha)
    return {
        "k": int(policy.get("k", 1)),
        "n": int(policy.get("n", 1)),
        "m": int(policy.get("m", 1)),
        "cooldown": int(policy.get("cooldown", 0)),
        "smoothing": None if smoothing is None else float(smoothing),
    }
