"""Process settings, read once from the environment (prefix ``ARGUS_``).

Settings are frozen: a stage gets them as an argument and cannot change them.
Paths are resolved against the repository root, so ``ARGUS_SHARED=../shared``
(the default) works from any working directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from argus.keys import decode_key

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where the servers are and where the data lives. Override any with ``ARGUS_<NAME>``."""

    # hide_input_in_errors: a malformed secret (a key) is never echoed in the error
    model_config = SettingsConfigDict(env_prefix="ARGUS_", frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    shared: Path = Path("../shared")
    """The shared data and model mirror (videos, labelled frames, ONNX models)."""
    stack_dir: Path = Path(".stack")
    """Data, logs and pid files of the embedded servers (git-ignored)."""
    cache_dir: Path = Path(".cache")
    """Downloads: Kafka jars, fetched models (git-ignored)."""
    topology: Path = Path("config/topology.yaml")
    rules: Path = Path("config/rules.yaml")
    """Correlation rules (hot-reloaded by the workers; see docs/rules.md)."""

    kafka_bootstrap: str = "127.0.0.1:29092"
    kafka_controller_port: int = 29093
    redis_url: str = "redis://127.0.0.1:26379/0"
    """May hold a password (``redis://:pass@host:6379/0``): log or print it only through
    :func:`argus.redact.redact_url`."""
    triton_host: str = "127.0.0.1"
    triton_http_port: int = 28000
    triton_grpc_port: int = 28001
    triton_metrics_port: int = 28002
    prometheus_port: int = 29090
    mqtt_port: int = 21883
    """The embedded Mosquitto broker (MQTT sensor input), on 127.0.0.1."""

    metrics_host: str = "127.0.0.1"
    """Where processes serve /metrics and health (0.0.0.0 in containers)."""
    metrics_per_camera: bool = True
    """Per-camera metric series; ``false`` labels them all ``camera="_all"`` (huge fleets)."""

    topic_prefix: str = ""
    """Prepended to every topic name; tests use it to isolate runs on one broker."""
    app_id: str = "argus"
    """The Faust application id (consumer groups and changelog topics derive from it)."""

    max_frame_bytes: int = 4 * 1024 * 1024
    """Frames larger than this are dead-lettered (``oversize``)."""
    worker_session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    """How long Kafka waits for a silent worker before moving its partitions to the others
    (and before a restarted worker gets them back): 10 s, not Faust's 60 s. Heartbeats go
    every third of it. Lower is faster failover; too low and a worker whose event loop is
    starved of CPU for that long is taken for dead (a rebalance, then redelivery)."""
    worker_stop_timeout_s: float = Field(default=8.0, gt=0.0, le=300.0)
    """A worker's stop (SIGTERM/SIGINT) ends within this: past it the process exits at once
    with status 3. Nothing is lost: what was in flight is uncommitted and redelivered
    (pipelines/worker.py). Without it, a stop with Kafka down waited minutes on its clients."""
    worker_instance_id: str = "auto"
    """Static group membership (Kafka ``group.instance.id``) for this worker: a worker
    restarted with the same id takes its partitions back at once, without a rebalance and
    without waiting for the session timeout. ``auto`` (default): ``<host>-<group>-<n>``, n
    the first slot no running worker of the group on this host holds (a lock file in
    ``stack_dir``; pipelines/worker.py); another value is used as is and must be unique per
    worker process of a group; empty: dynamic membership."""
    correlation_window_s: float = 30.0
    """Default window for pairing events (the rules file sets each rule's own)."""
    frame_cache_s: float = 20.0
    """How long the detect stage keeps each frame's JPEG in Redis for later stages
    (snapshots, pose, faces on tracks); 0 turns the cache off. See argus/stores/frame_cache.py."""
    snapshot_ttl_s: int = 7 * 24 * 3600
    """How long a frame kept as evidence (a snapshot reference in an event) stays readable."""
    evidence_key: str = Field(default="", repr=False)
    """Seals snapshots at rest (AES-GCM, base64 of 16, 24 or 32 bytes; docs/privacy.md):
    the worker seals every frame it keeps as evidence and the alert API opens them. Empty:
    snapshots are stored as plain JPEG (a warning at start). Secret: out of the repr."""
    alert_ttl_s: int = 7 * 24 * 3600
    alert_resolved_ttl_s: int = 24 * 3600
    """Resolved alerts stay readable this long, then expire."""
    audit_retention_s: int = 365 * 24 * 3600
    plate_sightings_retention_s: float = Field(default=30 * 24 * 3600, gt=0)
    """How long a plate sighting (an ``events.plate`` kept for search) stays in Redis; older
    ones expire (docs/plates.md, privacy design)."""
    command_ttl_s: float = 300.0
    """Rule-action commands (lights, PTZ, webhooks) expire this long after they are issued."""
    api_keys: str = Field(default="", repr=False)
    """Alert API keys: ``name=key:role,...`` (roles: read, operator); see docs/alerts.md.
    Secret: left out of the settings' repr (tracebacks, test reports)."""
    api_keys_file: Path | None = None

    @field_validator("shared", "stack_dir", "cache_dir", "topology", "rules")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value if value.is_absolute() else (REPO_ROOT / value).resolve()

    @field_validator("evidence_key")
    @classmethod
    def _key(cls, value: str) -> str:
        value = value.strip()
        if value:
            decode_key("ARGUS_EVIDENCE_KEY", value)
        return value

    @property
    def evidence_key_bytes(self) -> bytes | None:
        """The snapshot sealing key, or None (snapshots plain)."""
        return decode_key("ARGUS_EVIDENCE_KEY", self.evidence_key) if self.evidence_key else None

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def models_dir(self) -> Path:
        """The resolved model files (links into the mirror, or downloads)."""
        return self.cache_dir / "models"

    def to_env(self) -> dict[str, str]:
        """These settings as ``ARGUS_*`` variables, for child processes."""
        return {f"ARGUS_{name.upper()}": str(value) for name, value in self.model_dump().items()
                if value is not None}

    def topic(self, name: str) -> str:
        """The full topic name for a logical topic (``frames.raw`` → ``<prefix>frames.raw``)."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings()
