"""API keys with roles: ``read`` lists, gets and streams alerts; ``operator`` also
acknowledges and resolves them.

Keys come from ``ARGUS_API_KEYS`` (``KEY:ROLE`` or ``NAME:KEY:ROLE``, comma separated)
and/or a YAML file named by ``ARGUS_API_KEYS_FILE``::

    keys:
      - {name: ops-alice, key: "…", role: operator}
      - {name: wall-screen, key: "…", role: read}

The name is the actor recorded in the audit log (a key without one is named
``key-<first 8 hex digits of its SHA-256>``; the key itself is never logged or stored).
Keys are looked up by their SHA-256 digest, so the lookup time does not depend on how
much of a guessed key is right.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MIN_KEY_LENGTH = 16


class AuthConfigError(ValueError):
    """The key configuration is unusable (the message says where and why)."""


class Role(StrEnum):
    READ = "read"
    OPERATOR = "operator"

    def allows(self, needed: Role) -> bool:
        """Operator includes read.

        >>> Role.OPERATOR.allows(Role.READ), Role.READ.allows(Role.OPERATOR)
        (True, False)
        """
        order = [Role.READ, Role.OPERATOR]
        return order.index(self) >= order.index(needed)


class Principal(BaseModel):
    """Who made a request: the audit actor and the role."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100,
                             pattern=r"^[A-Za-z0-9_.@-]+$")
    key: str = Field(min_length=MIN_KEY_LENGTH)
    role: Role


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_spec(spec: str) -> list[KeyEntry]:
    """Entries of an ``ARGUS_API_KEYS`` value.

    >>> [(e.name, e.role.value) for e in parse_key_spec("alice:0123456789abcdef:operator")]
    [('alice', 'operator')]
    """
    entries = []
    for position, item in enumerate((i.strip() for i in spec.split(",")), start=1):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise AuthConfigError(f"ARGUS_API_KEYS entry {position}: expected KEY:ROLE or "
                                  f"NAME:KEY:ROLE, got {len(parts)} ':'-separated parts")
        name, key, role = parts if len(parts) == 3 else (None, *parts)
        try:
            entries.append(KeyEntry.model_validate({"name": name, "key": key, "role": role}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors())
            raise AuthConfigError(f"ARGUS_API_KEYS entry {position}: {problems}") from None
    return entries


def load_key_file(path: Path) -> list[KeyEntry]:
    """Entries of a YAML key file (``keys: [{name, key, role}, ...]``)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AuthConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise AuthConfigError(f"{path}: expected a mapping with a 'keys' list")
    entries = []
    for index, item in enumerate(data["keys"]):
        try:
            entries.append(KeyEntry.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors())
            raise AuthConfigError(f"{path}: keys[{index}]: {problems}") from None
    return entries


class KeyRing:
    """The configured keys, by digest."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._by_digest: dict[str, Principal] = {}
        names: set[str] = set()
        for entry in entries:
            digest = _digest(entry.key)
            if digest in self._by_digest:
                raise AuthConfigError("the same API key is configured twice")
            name = entry.name or f"key-{digest[:8]}"
            if name in names:
                raise AuthConfigError(f"the API key name {name!r} is used twice")
            names.add(name)
            self._by_digest[digest] = Principal(name=name, role=entry.role)

    @classmethod
    def load(cls, spec: str, path: Path | None) -> KeyRing:
        """Keys from an ``ARGUS_API_KEYS`` value and an optional YAML file."""
        return cls(parse_key_spec(spec) + (load_key_file(path) if path else []))

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str | None) -> Principal | None:
        """The principal of ``key``, or None for a missing or unknown key."""
        return self._by_digest.get(_digest(key)) if key else None

    def lookup_digest(self, digest: str | None) -> Principal | None:
        """The principal of the key with SHA-256 ``digest`` (a console session stores the
        digest, never the key, so removing a key ends its sessions)."""
        return self._by_digest.get(digest) if digest else None


def key_digest(key: str) -> str:
    """The SHA-256 hex digest a key is looked up by.

    >>> len(key_digest("0123456789abcdef"))
    64
    """
    return _digest(key)
