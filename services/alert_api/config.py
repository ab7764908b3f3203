"""Settings of the alert API, read from ``ARGUS_*`` variables (like ``argus.settings``).

They live here until they join ``argus.settings.Settings``; the names are the same, so
moving them changes no deployment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from argus.stores.alerts import DEFAULT_AUDIT_RETENTION_S, DEFAULT_RESOLVED_TTL_S


class ApiConfig(BaseSettings):
    """Override any with ``ARGUS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_", frozen=True, extra="ignore")

    api_keys: str = Field(default="", repr=False)
    """``KEY:ROLE`` or ``NAME:KEY:ROLE``, comma separated; roles ``read``, ``operator``.
    Secret: left out of the repr."""
    api_keys_file: Path | None = None
    """A YAML file of keys (``keys: [{name, key, role}]``), added to ``api_keys``."""
    alert_resolved_ttl_s: int = Field(default=DEFAULT_RESOLVED_TTL_S, ge=60)
    """How long a resolved alert stays in Redis."""
    audit_retention_s: int = Field(default=DEFAULT_AUDIT_RETENTION_S, ge=24 * 3600)
    """Audit entries younger than this are never trimmed."""
    feed_queue_size: int = Field(default=256, ge=1)
    """Changes buffered per live-feed client; a client that falls further behind is
    disconnected (it reconnects and gets a fresh snapshot)."""
    publish_retry_s: float = Field(default=5.0, gt=0)
    """How often changes that did not reach Kafka are retried."""
    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    """How long a console sign-in (session cookie) lasts: one shift."""
    session_check_s: float = Field(default=5.0, gt=0, le=300)
    """How often a live feed signed in by a session checks it is still valid; once it is
    not (expired, signed out, key removed) the WebSocket is closed with 1008."""
    console_tile_url: str = Field(default="", pattern=r"^$|^(https?://[^/]+)?/.*\{z\}.*")
    """Map tiles for the console, a Leaflet URL template
    (``https://tiles.example/{z}/{x}/{y}.png``, ``{s}`` for subdomains, or a same-origin path
    ``/tiles/{z}/{x}/{y}.png``); empty: the plain map (no tiles, no Leaflet loaded). The
    page's Content-Security-Policy allows images from the tiles' origin."""
    console_tile_attribution: str = Field(default="", max_length=300)
    """The tiles' attribution (plain text), shown in the map's corner."""
