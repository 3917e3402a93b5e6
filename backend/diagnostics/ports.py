"""Who holds a TCP port, and whether it can be bound (psutil, raw sockets)."""

from __future__ import annotations

import dataclasses
import errno
import socket
import sys

import psutil


@dataclasses.dataclass(frozen=True)
class PortHolder:
    """A process listening on a port; fields are empty when the OS hides them."""

    pid: int | None
    name: str = ""
    cmdline: str = ""
    user: str = ""

    def describe(self) -> str:
        if self.pid is None:
            return "another process (the OS does not say which; try with sudo)"
        details = self.cmdline or self.name or "?"
        owner = f", user {self.user}" if self.user else ""
        return f"pid {self.pid} ({details[:120]}{owner})"


def port_holders(port: int) -> list[PortHolder] | None:
    """Processes listening on `port`; None when the OS will not tell (macOS without root)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    pids = {
        conn.pid for conn in connections if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    }
    return [_holder(pid) for pid in sorted(pids, key=lambda pid: pid or 0)]


def _holder(pid: int | None) -> PortHolder:
    if pid is None:
        return PortHolder(None)
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            name = process.name()
            try:
                cmdline = " ".join(process.cmdline())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = ""
            try:
                user = process.username()
            except (psutil.AccessDenied, KeyError):
                user = ""
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return PortHolder(pid)
    return PortHolder(pid, name, cmdline, user)


def open_listener(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or the OSError of the bind.

    The first bind is made without SO_REUSEADDR: on Windows that option lets a
    second server bind a taken port silently, and on BSD it lets one bind a
    specific address under a wildcard listener. Only on Linux, when nobody
    listens and the bind failed anyway (connections of a stopped server in
    TIME_WAIT), is it retried with SO_REUSEADDR, which Linux never lets share a
    listening port.

    Once bound, the socket gets SO_REUSEADDR (not on Windows): the connections
    it accepts inherit the option, and Linux lets that retry through the
    TIME_WAIT of a connection only when both sides have it. Without it, every
    restart right after a stop that closed a keep-alive connection would fail.
    """
    try:
        sock = _bind(host, port, reuse=False)
    except OSError as error:
        if error.errno != errno.EADDRINUSE or sys.platform != "linux" or port_holders(port) != []:
            raise
        sock = _bind(host, port, reuse=True)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _bind(host: str, port: int, *, reuse: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        elif sys.platform == "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def ipv6_available() -> bool:
    """Whether ::1 can be bound here (IPv6 may be disabled in containers)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
