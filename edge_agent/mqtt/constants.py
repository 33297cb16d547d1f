"""MQTT names and defaults shared by the sink, the subscriber and the config.

Topic layout under a per-device prefix (default ``vigil/<device_id>``):

* ``<prefix>/alert``  QoS 1, JSON (``vigil.alert/1``), not retained; one message per
  event open and close, carrying the spool ``seq``.
* ``<prefix>/status`` QoS 1, retained, plain text ``online`` / ``offline`` (not JSON:
  dashboards and ``mosquitto_sub`` read it as is; the Last Will is ``offline``).
* ``<prefix>/health`` QoS 0, JSON, not retained, periodic; dropped while offline.
"""

from __future__ import annotations

ALERT_TOPIC = "alert"
STATUS_TOPIC = "status"
HEALTH_TOPIC = "health"

ALERT_QOS = 1
STATUS_QOS = 1
HEALTH_QOS = 0

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_KEEPALIVE_S = 30
DEFAULT_TOPIC_PREFIX = "vigil/{device_id}"
DEFAULT_ROOT_PREFIX = "vigil"
DEFAULT_RECONNECT_MIN_S = 1.0
DEFAULT_RECONNECT_MAX_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# A connection must stay up this long before the reconnect backoff starts from
# reconnect_min_s again (a broker that drops us right after CONNACK is a failure).
BACKOFF_RESET_AFTER_S = 10.0
PROTOCOLS = ("3.1.1", "5")

# Alerts in flight (published, PUBACK pending). Small so a reconnect re-sends
# little, large enough that a burst after an outage drains quickly.
MAX_INFLIGHT = 20

# How long stop() waits for PUBACKs of in-flight alerts before going offline.
STOP_TIMEOUT_S = 5.0
