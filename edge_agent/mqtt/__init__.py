"""MQTT side of vigil-edge (paho-mqtt 2.x, callback API VERSION2).

Import from the submodules: ``settings`` and ``reason`` need no paho (config
validation works without the edge extra); ``connection``, ``sink`` and
``subscriber`` import paho.

* :class:`edge_agent.mqtt.settings.MqttSettings` / ``TlsSettings``
* :class:`edge_agent.mqtt.sink.MqttSink` (the AlertSink; spool in :mod:`edge_agent.spool`)
* :class:`edge_agent.mqtt.subscriber.AlertSubscriber` (``vigil alerts``)
* :func:`edge_agent.mqtt.connection.connect_check`
"""
