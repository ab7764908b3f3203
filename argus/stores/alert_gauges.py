"""Active-alert counts read from Redis, for the exporter that also reports Kafka lag.

The alert sink keeps one sorted set of active (open or acknowledged) alert ids per site and
per severity (see ``argus/stores/alerts.py``). Their sizes are cluster state, not the state
of one worker, so one process reads them — the lag exporter, every poll — and exports
``argus_alerts_active{site}`` and ``argus_alerts_active_by_severity{severity}``.

>>> site_of("argus:site:depot-north:alerts:active")
'depot-north'
>>> site_of("argus:alerts:active") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from argus.stores.alerts import severity_active_key, site_active_key
from schemas.alerts import Severity

SITE_PATTERN = site_active_key("*")
_HEAD, _TAIL = SITE_PATTERN.split("*")


def site_of(key: str) -> str | None:
    """The site id in a per-site active-set key, or None for another key."""
    if key.startswith(_HEAD) and key.endswith(_TAIL) and len(key) > len(_HEAD) + len(_TAIL):
        return key[len(_HEAD):-len(_TAIL)]
    return None


@dataclass(slots=True)
class ActiveAlerts:
    """Active alerts per site and per severity (every severity present, 0 when none)."""

    by_site: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)


def count_active(client: Any) -> ActiveAlerts:
    """Read the active-set sizes with one SCAN and one pipelined round of ZCARDs
    (``client`` is a synchronous ``redis.Redis``). Sites whose set is empty disappear:
    Redis deletes empty sorted sets, so their series are removed too."""
    sites: list[str] = []
    for raw in client.scan_iter(match=SITE_PATTERN, count=1000):
        site = site_of(raw.decode() if isinstance(raw, bytes) else str(raw))
        if site is not None:
            sites.append(site)
    severities = [s.value for s in Severity]
    pipe = client.pipeline(transaction=False)
    for site in sites:
        pipe.zcard(site_active_key(site))
    for severity in severities:
        pipe.zcard(severity_active_key(severity))
    counts = [int(c) for c in pipe.execute()]
    return ActiveAlerts(by_site=dict(zip(sites, counts[:len(sites)], strict=True)),
                        by_severity=dict(zip(severities, counts[len(sites):], strict=True)))
