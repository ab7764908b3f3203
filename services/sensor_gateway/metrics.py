"""The sensor gateway's own metrics (the shared counters are in :mod:`argus.metrics`).

Per-sensor series are bounded: only sensors of the topology get one, since readings of
unknown sensors are rejected before they are counted here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SENSOR_LAST_SEEN = Gauge(
    "argus_sensor_last_seen_timestamp_seconds",
    "Event time of the latest valid reading of a sensor (duplicates included); "
    "alert on time() minus this for 'sensor offline'",
    ["sensor"],
)
SENSOR_BATTERY = Gauge(
    "argus_sensor_battery_percent", "Battery level of the latest reading that reported one",
    ["sensor"],
)
MQTT_CONNECTED = Gauge(
    "argus_mqtt_connected", "1 while the gateway is connected and subscribed to the broker")
MQTT_DISCONNECTS = Counter(
    "argus_mqtt_disconnects_total", "Times the gateway lost (or failed to open) its broker "
    "connection; it reconnects with exponential backoff")
MQTT_MESSAGES = Counter("argus_mqtt_messages_total", "MQTT messages received by the gateway")
