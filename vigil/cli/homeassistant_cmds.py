"""``vigil homeassistant remove``: delete a device's entities from Home Assistant.

The agent publishes its discovery configs retained (``edge_agent.homeassistant``),
so they outlive the agent: turning ``[homeassistant]`` off leaves the entities in
HA, showing "unavailable". This command publishes the empty retained payloads
that make HA delete them, using the device's own config file for the broker, the
topic prefix, the discovery prefix and the node id.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import add_group, load_extra, one_line_errors


def register(app: typer.Typer) -> None:
    """Add ``vigil homeassistant`` to the ``vigil`` app."""
    add_group(app, "homeassistant", "Home Assistant MQTT discovery of a device.", {"remove": remove})


@one_line_errors("homeassistant remove")
def remove(
    config: Path = typer.Option(..., "--config", help="The device's agent config (its mqtt and homeassistant "
                                "sections)."),
) -> None:
    """Delete the device's entities from Home Assistant (empty retained discovery configs and state)."""
    load_extra("homeassistant remove", "edge", "paho.mqtt.client")
    from edge_agent.config import load_config, mqtt_settings
    from edge_agent.homeassistant import Discovery, node_id_for
    from vigil.cli.command_client import CommandClient

    cfg = load_config(config, check_bundle=False, check_source=False)
    settings = mqtt_settings(cfg)
    if settings is None:
        raise VigilInputError("[mqtt] is not configured: there is no broker to remove the entities from",
                              file=str(cfg.path), key="mqtt")
    ha = cfg.homeassistant
    node = node_id_for(cfg.device_id, ha.node_id)
    discovery = Discovery(ha.discovery_prefix.rstrip("/"), cfg.topic_prefix, cfg.device_id, node,
                          ha.device_name or cfg.device_id, model_id="")
    messages = discovery.removal_messages()
    client = CommandClient(settings)
    try:
        for topic, payload in messages:
            client.publish_retained(topic, payload)
    finally:
        client.close()
    typer.echo(f"vigil homeassistant: removed device {cfg.device_id} (node {node}) from "
               f"{discovery.discovery_prefix}/...: {len(messages) - 1} entities and the retained state")
    if ha.enabled:
        typer.echo("note: [homeassistant] enabled = true in this config: a running agent publishes the "
                   "entities again at its next connection; set enabled = false first")
