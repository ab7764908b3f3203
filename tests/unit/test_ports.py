"""Stack ports: free or held (and by whom), and the kernel's ephemeral range."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from argus.settings import Settings
from tools.ports import ephemeral_unreserved, port_free, port_holder, sockets_on
from tools.stack import servers


def fake_proc(tmp_path: Path, port_range: str, reserved: str) -> Path:
    sysdir = tmp_path / "sys" / "net" / "ipv4"
    sysdir.mkdir(parents=True)
    (sysdir / "ip_local_port_range").write_text(port_range)
    (sysdir / "ip_local_reserved_ports").write_text(reserved)
    return tmp_path


@pytest.mark.parametrize(("port_range", "reserved", "ports", "risky"), [
    ("32768\t60999\n", "\n", [29092, 39092, 60999, 61000], [39092, 60999]),
    ("32768\t60999\n", "39000-39100\n", [39092, 39101], [39101]),
    ("1024\t65535\n", "29092\n", [29092, 26379], [26379]),
])
def test_ephemeral_unreserved(tmp_path: Path, port_range: str, reserved: str,
                              ports: list[int], risky: list[int]) -> None:
    assert ephemeral_unreserved(ports, fake_proc(tmp_path, port_range, reserved)) == risky


def test_default_stack_ports_lie_below_the_usual_ephemeral_range() -> None:
    ports = [p for server in servers(Settings()) for p in server.ports]
    assert ports and all(p < 32768 for p in ports), ports


def test_a_held_port_is_not_free_and_names_its_holder() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free(port)
        assert {state for state, _ in sockets_on(port)} == {"LISTEN"}
        holder = port_holder(port)
        assert f"LISTEN by pid {os.getpid()} (" in holder, holder
    assert port_free(port)
