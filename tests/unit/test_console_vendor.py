"""The console's vendored Leaflet is exactly the pinned release: its files match the
``SHA256SUMS`` written by ``ops/vendor-leaflet.sh`` (which checked the npm tarball's
integrity), and the script pins the version the files say."""

from __future__ import annotations

import hashlib
import re

import pytest

from argus.settings import REPO_ROOT

VENDOR = REPO_ROOT / "services" / "alert_api" / "console" / "static" / "vendor" / "leaflet"
SUMS = [line.split() for line in (VENDOR / "SHA256SUMS").read_text().splitlines()]


@pytest.mark.parametrize(("digest", "name"), SUMS, ids=[name for _, name in SUMS])
def test_vendored_file_matches_its_checksum(digest: str, name: str) -> None:
    assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest


def test_the_files_listed_are_all_there_is() -> None:
    names = {name for _, name in SUMS}
    assert names == {"LICENSE", "VERSION", "leaflet.css", "leaflet.js"}
    assert {p.name for p in VENDOR.iterdir()} == names | {"SHA256SUMS"}


def test_the_script_pins_the_vendored_version() -> None:
    version, integrity = (VENDOR / "VERSION").read_text().split("\n")[:2]
    script = (REPO_ROOT / "ops" / "vendor-leaflet.sh").read_text()
    pinned = re.search(r'LEAFLET_VERSION:-([^}]+)}', script)
    assert pinned and version == f"leaflet {pinned.group(1)}"
    assert f"LEAFLET_INTEGRITY:-{integrity}}}" in script
    assert "BSD 2-Clause License" in (VENDOR / "LICENSE").read_text()
