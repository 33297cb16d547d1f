"""Remote ``[alerts]`` policy: validated by the config schema, stored beside the spool, laid over the config.

``vigil policy set --device ID sensitivity=0.8 k=3 n=5`` sends ``{"set":
{...}}``; every value goes through :func:`edge_agent.config_values.check_value`
with the ``[alerts]`` key of :data:`edge_agent.config_schema.SCHEMA` and the
merged section through the config file's own cross checks (k and n together,
k <= n), so a value the TOML would refuse is refused here with the same message.
``null`` puts a key back to its schema default (for k/n/m/cooldown/smoothing:
the bundle's recommended policy); ``"reset": true`` drops every remote value
first, so the config file's values apply again.

Remote values win over the config file's until they are reset; they survive
restarts and deploys (they are the device's policy, not the bundle's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from edge_agent.config import AgentConfig, _cross_checks
from edge_agent.config_schema import SCHEMA
from edge_agent.config_sections import build_section
from edge_agent.config_values import check_value
from edge_agent.errors import VigilInputError

SECTION = "alerts"


def validate_changes(changes: Any) -> dict[str, Any]:
    """``{key: value}`` checked against the ``[alerts]`` schema (None = the key's default)."""
    if not isinstance(changes, dict) or not changes:
        raise VigilInputError("set must be a table of [alerts] keys and values", key="set")
    keys = SCHEMA[SECTION]
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in keys:
            raise VigilInputError(f"unknown key; allowed: {', '.join(keys)}", key=f"{SECTION}.{key}")
        out[key] = None if value is None else check_value(keys[key], value, f"{SECTION}.{key}")
    return out


def merged_overrides(current: Mapping[str, Any], changes: Mapping[str, Any], reset: bool = False) -> dict[str, Any]:
    """The remote values after a command: ``None`` means "the schema default" and is kept as such."""
    base = {} if reset else dict(current)
    base.update(changes)
    return base


def effective_alerts(config: AgentConfig, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[alerts]`` values the agent uses: the config file's, remote values on top (cross-checked)."""
    keys = SCHEMA[SECTION]
    values = dict(config.values[SECTION])
    for key, value in overrides.items():
        if key not in keys:
            raise VigilInputError(f"unknown key; allowed: {', '.join(keys)}", key=f"{SECTION}.{key}")
        values[key] = keys[key].default if value is None else check_value(keys[key], value, f"{SECTION}.{key}")
    tables = {name: dict(config.values[name]) for name in ("mqtt", "mqtt.tls")}
    _cross_checks({SECTION: values, **tables})
    return values


def with_policy(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    """``config`` with the remote ``[alerts]`` values applied (a one-line VigilInputError if they do not fit)."""
    if not overrides:
        return config
    values = effective_alerts(config, overrides)
    view = MappingProxyType({**config.values, SECTION: MappingProxyType(dict(values))})
    return replace(config, alerts=build_section(SECTION, values), _values=view)
