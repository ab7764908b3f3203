"""The Redis side of alerts: what dashboards and the alert API read.

Keys (``argus:`` prefix, all with the alert TTL):

- ``argus:alert:<id>``                 hash: the alert's fields, ``json`` = the whole alert
- ``argus:site:<site>:alerts:active``  sorted set of open alert ids, score = last seen
- ``argus:alerts:geo``                 geo index of open alerts (lon/lat)
- ``argus:alerts:recent``              stream of recent alerts (capped, ~1000)
- channel ``argus:alerts``             pub/sub: each new alert as JSON

Writes are idempotent: the alert id is deterministic, ``HSETNX`` on the hash guards
the one-time parts (stream entry, pub/sub), so re-processing writes nothing twice.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from schemas.alerts import Alert

PREFIX = "argus:"
CHANNEL = f"{PREFIX}alerts"
RECENT = f"{PREFIX}alerts:recent"
GEO = f"{PREFIX}alerts:geo"


def alert_key(alert_id: str) -> str:
    return f"{PREFIX}alert:{alert_id}"


def site_active_key(site_id: str) -> str:
    return f"{PREFIX}site:{site_id}:alerts:active"


async def exists(client: aioredis.Redis, alert_id: str) -> bool:
    return bool(await client.exists(alert_key(alert_id)))


async def write_alert(client: aioredis.Redis, alert: Alert, ttl_s: int) -> bool:
    """Write ``alert``; returns False (writing nothing) if that id was already written."""
    key = alert_key(alert.alert_id)
    if not await client.hsetnx(key, "alert_id", alert.alert_id):
        return False
    payload = alert.model_dump_json()
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={
            "rule": alert.rule, "title": alert.title, "severity": alert.severity.value,
            "site_id": alert.site_id, "zone_id": alert.zone_id,
            "camera_id": alert.camera_id or "", "state": alert.state.value,
            "first_seen": alert.first_seen, "last_seen": alert.last_seen,
            "count": alert.count, "json": payload,
        })
        pipe.expire(key, ttl_s)
        pipe.zadd(site_active_key(alert.site_id), {alert.alert_id: alert.last_seen})
        pipe.expire(site_active_key(alert.site_id), ttl_s)
        pipe.geoadd(GEO, (alert.lon, alert.lat, alert.alert_id))
        pipe.xadd(RECENT, {"alert_id": alert.alert_id, "json": payload}, maxlen=1000,
                  approximate=True)
        pipe.publish(CHANNEL, payload)
        await pipe.execute()
    return True
