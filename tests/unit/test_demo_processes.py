"""The demo's child processes: stopped with SIGTERM, killed when they do not stop."""

from __future__ import annotations

import time
from pathlib import Path

from tools.demo import Processes

IGNORES_SIGTERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)")


def wait_for_line(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not path.read_text().strip():
        time.sleep(0.05)


def test_stop_terminates_and_kills_the_stubborn(tmp_path: Path) -> None:
    procs = Processes()
    procs.start("polite", ["-c", "import time; time.sleep(60)"], str(tmp_path))
    procs.start("stubborn", ["-c", IGNORES_SIGTERM], str(tmp_path))
    wait_for_line(tmp_path / "stubborn.log")  # its SIGTERM handler is in place
    started = time.monotonic()
    procs.stop(timeout_s=1.0)
    assert time.monotonic() - started < 10
    codes = {name: proc.returncode for name, proc in procs.procs}
    assert codes == {"polite": -15, "stubborn": -9}  # SIGTERM, then SIGKILL
