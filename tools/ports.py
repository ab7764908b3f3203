"""Ports of the embedded stack: is one free, who holds it, and is it safe from the kernel's
ephemeral range.

A server port inside the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``,
usually 32768-60999) can be taken by any outgoing connection, even a client's connection
to that very port while the server is down (the kernel may connect a socket to itself), so
a restarted server cannot bind it. The stack's defaults lie below the range; ``stack up``
warns about a configured port inside it unless it is reserved
(``net.ipv4.ip_local_reserved_ports``).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

PROC = Path("/proc")
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def parse_range(text: str) -> tuple[int, int]:
    """``ip_local_port_range``'s two numbers.

    >>> parse_range("32768\\t60999\\n")
    (32768, 60999)
    """
    low, high = text.split()
    return int(low), int(high)


def parse_reserved(text: str) -> set[int]:
    """``ip_local_reserved_ports`` (``"8080,29000-29003"``) as a set.

    >>> sorted(parse_reserved("8080,29000-29002\\n"))
    [8080, 29000, 29001, 29002]
    >>> parse_reserved("\\n")
    set()
    """
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def ephemeral_unreserved(ports: list[int], proc: Path = PROC) -> list[int]:
    """The ``ports`` the kernel may hand out to outgoing connections here."""
    try:
        low, high = parse_range((proc / "sys/net/ipv4/ip_local_port_range").read_text())
    except (OSError, ValueError):
        return []
    try:
        reserved = parse_reserved((proc / "sys/net/ipv4/ip_local_reserved_ports").read_text())
    except (OSError, ValueError):
        reserved = set()
    return [p for p in ports if low <= p <= high and p not in reserved]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server bind ``host:port`` now (``SO_REUSEADDR``, as servers do)?"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def sockets_on(port: int, proc: Path = PROC) -> list[tuple[str, int]]:
    """``(state, inode)`` of every TCP socket whose local port is ``port``
    (``/proc/net/tcp`` and ``tcp6``)."""
    found: list[tuple[str, int]] = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                found.append((TCP_STATES.get(fields[3], fields[3]), int(fields[9])))
    return found


def _owners(inodes: set[int], proc: Path = PROC) -> dict[int, str]:
    """inode → ``pid N (command line)`` for the sockets this user can see."""
    owners: dict[int, str] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    for pid_dir in proc.glob("[0-9]*"):
        try:
            for fd in (pid_dir / "fd").iterdir():
                inode = wanted.get(os.readlink(fd))
                if inode is not None and inode not in owners:
                    cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                        errors="replace").strip()
                    owners[inode] = f"pid {pid_dir.name} ({cmd[:120]})"
        except OSError:
            continue
    return owners


def port_holder(port: int, proc: Path = PROC) -> str:
    """Who holds ``port``, in words: the processes with a socket on it and its states, or
    the connections without a process (TIME_WAIT)."""
    found = sockets_on(port, proc)
    if not found:
        return "no socket visible on it (another network namespace or user?)"
    owners = _owners({inode for _, inode in found}, proc)
    parts = []
    for state, inode in found:
        who = owners.get(inode) or ("no process" if not inode else "a process of another user")
        parts.append(f"{state} by {who}")
    return "; ".join(sorted(set(parts)))
