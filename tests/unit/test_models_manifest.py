"""The model manifest (``ops/models.yaml``) and the fetch step (``tools.models``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from argus.modelcode import triton_parameters
from argus.settings import Settings
from tools import models
from tools.models import ModelEntry, ModelFetchError, fetch, load_manifest, resolve


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> list[ModelEntry]:
    return load_manifest()


@pytest.fixture(scope="module")
def mirror() -> Path:
    return Settings().shared / "models"


def test_manifest_parses_and_covers_the_mirror(manifest: list[ModelEntry], mirror: Path) -> None:
    names = [entry.name for entry in manifest]
    assert len(names) == len(set(names))
    assert "yolox_nano" in names
    mirrored = {entry.file for entry in manifest if entry.wheel is None}
    assert mirrored == {p.name for p in mirror.glob("*.onnx")}
    for entry in manifest:
        assert entry.licence
        assert entry.source.startswith("https://")
        assert all(url.startswith("https://") for url in entry.urls)
    yolox = next(entry for entry in manifest if entry.name == "yolox_nano")
    assert yolox.file == "yolox_nano.onnx"
    assert yolox.urls[0] == (
        "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
    )


def test_every_file_is_in_the_mirror_with_its_sha256(
    manifest: list[ModelEntry], mirror: Path
) -> None:
    for entry in manifest:
        if entry.wheel is not None:  # extracted from a pinned wheel, not mirrored
            continue
        path = mirror / entry.file
        assert path.is_file(), path
        assert path.stat().st_size == entry.size, entry.name
        assert sha256_of(path) == entry.sha256, entry.name


def test_fetch_links_the_mirror_into_models_dir(tmp_path: Path, mirror: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    mirrored = [entry.name for entry in load_manifest() if entry.wheel is None]
    resolved = fetch(settings, mirrored)
    assert set(resolved) == set(mirrored)
    for path in resolved.values():
        assert path.parent == settings.models_dir
        assert path.is_symlink()  # read in place, never copied
        assert Path(os.readlink(path)) == (mirror / path.name).resolve()
    assert resolve(settings, "yolox_nano") == settings.models_dir / "yolox_nano.onnx"
    assert (settings.models_dir / models.SHA_CACHE_NAME).is_file()


def test_second_fetch_uses_the_sha_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(cache_dir=tmp_path)
    fetch(settings, ["yolox_nano", "osnet_x0_25"])

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(models, "_hash_file", no_hashing)
    again = fetch(settings, ["yolox_nano", "osnet_x0_25"])
    assert sorted(again) == ["osnet_x0_25", "yolox_nano"]


def test_fetch_some_and_unknown_names(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    assert list(fetch(settings, ["yolox_nano"])) == ["yolox_nano"]
    assert not (settings.models_dir / "facenet_20180408.onnx").exists()
    with pytest.raises(ModelFetchError, match="unknown model"):
        fetch(settings, ["no_such_model"])


def test_resolve_missing_model_names_the_fetch_command(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(ModelFetchError) as failure:
        resolve(settings, "yolox_nano")
    assert "model yolox_nano is missing: run `argus models fetch`" in str(failure.value)
    with pytest.raises(ModelFetchError, match="not in the manifest"):
        resolve(settings, "no_such_model")


# --- without the mirror: downloads (file:// URLs stand in for the public ones) -------------

def _entry(source_file: Path, sha256: str, urls: list[str] | None = None) -> ModelEntry:
    return ModelEntry(
        name="tiny",
        file="tiny.onnx",
        sha256=sha256,
        licence="MIT",
        source="https://example.org/tiny",
        urls=[source_file.as_uri()] if urls is None else urls,
    )


def test_fetch_downloads_and_verifies_when_not_mirrored(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream" / "tiny.onnx"
    upstream.parent.mkdir()
    upstream.write_bytes(b"tiny model bytes")
    settings = Settings(cache_dir=tmp_path / "cache", shared=tmp_path / "empty-mirror")
    entry = _entry(upstream, sha256_of(upstream))
    got = fetch(settings, manifest=[entry])["tiny"]
    assert got == settings.models_dir / "tiny.onnx"
    assert not got.is_symlink() and got.read_bytes() == b"tiny model bytes"
    # already there: kept without downloading again
    upstream.unlink()
    assert fetch(settings, manifest=[entry])["tiny"] == got
    assert resolve(settings, "tiny", manifest=[entry]) == got


def test_fetch_rejects_a_download_with_the_wrong_sha256(tmp_path: Path) -> None:
    upstream = tmp_path / "tiny.onnx"
    upstream.write_bytes(b"tampered")
    settings = Settings(cache_dir=tmp_path / "cache", shared=tmp_path / "empty-mirror")
    with pytest.raises(ModelFetchError, match="sha256 mismatch") as failure:
        fetch(settings, manifest=[_entry(upstream, "0" * 64)])
    assert "cannot fetch model tiny" in str(failure.value)
    assert list(settings.models_dir.iterdir()) == []  # no partial or bad file left behind


def test_fetch_reports_a_bad_mirror_copy_and_no_download(tmp_path: Path) -> None:
    shared = tmp_path / "mirror"
    (shared / "models").mkdir(parents=True)
    (shared / "models" / "tiny.onnx").write_bytes(b"corrupted copy")
    settings = Settings(cache_dir=tmp_path / "cache", shared=shared)
    with pytest.raises(ModelFetchError) as failure:
        fetch(settings, manifest=[_entry(tmp_path / "x", "1" * 64, urls=[])])
    message = str(failure.value)
    assert "wrong sha256" in message and "no direct download" in message


def test_fetch_reports_an_unreachable_url(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", shared=tmp_path / "empty-mirror")
    missing = tmp_path / "nowhere" / "tiny.onnx"
    with pytest.raises(ModelFetchError, match="cannot download"):
        fetch(settings, manifest=[_entry(missing, "2" * 64)])


def test_load_manifest_rejects_bad_entries(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text(
        "models:\n  - {name: x, file: ../x.onnx, sha256: abc, licence: MIT, source: nope}\n"
    )
    with pytest.raises(ModelFetchError, match="bad model manifest"):
        load_manifest(bad)


# --- files inside a pinned wheel ------------------------------------------------------------

def _wheel_entry(tmp_path: Path, member_bytes: bytes, sha256: str | None = None,
                 wheel_sha: str | None = None) -> tuple[ModelEntry, Path]:
    import zipfile

    wheel = tmp_path / "wheel-src" / "tinyocr-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tinyocr/models/tiny.onnx", member_bytes)
        archive.writestr("tinyocr/__init__.py", "")
    entry = ModelEntry.model_validate({
        "name": "tiny", "file": "tiny.onnx", "licence": "Apache-2.0",
        "sha256": sha256 or hashlib.sha256(member_bytes).hexdigest(),
        "source": "https://pypi.org/project/tinyocr/1.0/",
        "wheel": {"requirement": "tinyocr==1.0", "file": wheel.name,
                  "sha256": wheel_sha or sha256_of(wheel),
                  "member": "tinyocr/models/tiny.onnx"}})
    return entry, wheel


def _cached(settings: Settings, wheel: Path) -> None:
    folder = settings.cache_dir / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / wheel.name).write_bytes(wheel.read_bytes())


def test_fetch_extracts_a_model_from_a_cached_wheel(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", shared=tmp_path / "empty-mirror")
    entry, wheel = _wheel_entry(tmp_path, b"ocr model bytes")
    _cached(settings, wheel)
    got = fetch(settings, manifest=[entry])["tiny"]
    assert got == settings.models_dir / "tiny.onnx"
    assert got.read_bytes() == b"ocr model bytes" and not got.is_symlink()
    assert resolve(settings, "tiny", manifest=[entry]) == got


@pytest.mark.parametrize(("member_sha", "wheel_sha", "message"), [
    ("3" * 64, None, "sha256 mismatch for tinyocr/models/tiny.onnx"),
    (None, "4" * 64, "sha256 mismatch for wheel"),
])
def test_fetch_rejects_a_wheel_or_member_with_the_wrong_sha256(
        tmp_path: Path, member_sha: str | None, wheel_sha: str | None, message: str) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", shared=tmp_path / "empty-mirror")
    entry, wheel = _wheel_entry(tmp_path, b"ocr model bytes", member_sha, wheel_sha)
    _cached(settings, wheel)
    with pytest.raises(ModelFetchError, match=message):
        fetch(settings, manifest=[entry])
    assert not (settings.models_dir / "tiny.onnx").exists()


def test_manifest_pins_the_plate_models_to_their_wheels(manifest: list[ModelEntry]) -> None:
    plates = {entry.name: entry for entry in manifest if entry.wheel is not None}
    wheels = {"ppocr_v4_det": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models"),
              "ppocr_v4_rec": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models"),
              "ppocr_v6_small_rec": ("rapidocr==3.10.0", "rapidocr/models")}
    assert set(plates) == set(wheels)
    for name, entry in plates.items():
        assert entry.wheel is not None
        requirement, folder = wheels[name]
        assert entry.wheel.requirement == requirement
        assert entry.wheel.member == f"{folder}/{entry.file}"
        assert entry.licence == "Apache-2.0"


def test_the_plates_model_files_are_in_the_manifest(manifest: list[ModelEntry]) -> None:
    params = triton_parameters("plates")
    files = {entry.file for entry in manifest}
    assert params["det_model_file"] in files
    assert params["rec_model_file"] in files
