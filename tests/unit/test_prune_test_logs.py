"""A test session removes the process logs earlier sessions left in the stack folder."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import TEST_LOG_KEEP_S, prune_test_logs


def test_only_old_test_logs_go(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    files = {"test-worker-old.log": now - TEST_LOG_KEEP_S - 60,
             "test-worker-today.log": now - 600,
             "kafka.log": now - 10 * TEST_LOG_KEEP_S,  # a server's log: not the tests'
             "test-notes.txt": now - 10 * TEST_LOG_KEEP_S}
    for name, mtime in files.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (mtime, mtime))
    assert prune_test_logs(tmp_path, now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kafka.log", "test-notes.txt", "test-worker-today.log"]
