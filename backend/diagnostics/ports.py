"""Who holds a TCP port, whether it can be bound, and which port is free (psutil, raw sockets).

A port is judged by binding it, never by reading a table alone: a listener of
another user, or in another network namespace, may be invisible to psutil and
still make the bind fail. The binds are made without SO_REUSEADDR (see
`open_listener`), on 127.0.0.1 and, where IPv6 exists, ::1.

Windows reports a failed bind with Winsock codes: WinError 10048 for a port in
use, and WinError 10013 ("forbidden by its access permissions") for a port
inside a range Windows reserved for Hyper-V, WSL or Docker, which no process
holds, and which changes on each reboot. `is_in_use` and `is_reserved` read them.

psutil is imported by the functions that ask it, when a port is taken: the
server imports this module before its port answers, and most starts find it free.
"""

from __future__ import annotations

import dataclasses
import errno
import re
import socket
import sys
from collections.abc import Iterable
from typing import Final

from backend.errors import AppError, PortInUseError, quoted
from backend.settings import LOOPBACK_HOSTS

LOWEST_PORT: Final = 1
HIGHEST_PORT: Final = 65535
WSAEACCES: Final = 10013
WSAEADDRINUSE: Final = 10048
EXCLUDED_RANGES_COMMAND: Final = "netsh interface ipv4 show excludedportrange protocol=tcp"


class PortArgumentError(AppError):
    """A port given on the command line that is not a whole number in 1..65535."""

    code = "PORT_INVALID"

    def __init__(self, option: str, value: str) -> None:
        super().__init__(
            f"{option} {quoted(value)} is not a port number",
            f"give a whole number from {LOWEST_PORT} to {HIGHEST_PORT}, e.g. {option} 8000",
        )


class ListenError(AppError):
    code = "LISTEN_FAILED"


class PortReservedError(PortInUseError):
    """A port Windows reserved (WinError 10013, no holder): `--port auto` moves past it like a taken one."""

    code = "PORT_EXCLUDED"


class NoFreePortError(AppError):
    code = "PORT_NONE_FREE"

    def __init__(self, start: int, end: int, hosts: Iterable[str]) -> None:
        super().__init__(
            f"No port from {start} to {end} is free on {', '.join(hosts)}",
            "stop some servers (`inv free-port --port N` says who holds N) or choose a lower --port",
        )


@dataclasses.dataclass(frozen=True)
class PortHolder:
    """A process listening on a port; fields are empty when the OS hides them."""

    pid: int | None
    name: str = ""
    cmdline: str = ""
    user: str = ""
    addresses: tuple[str, ...] = ()
    created: float | None = None  # process start time: tells a reused pid from the holder

    def describe(self) -> str:
        if self.pid is None:
            return "another process (the OS does not say which; try with sudo)"
        details = self.cmdline or self.name or "?"
        owner = f", user {self.user}" if self.user else ""
        return f"pid {self.pid} ({details[:120]}{owner})"


def is_in_use(error: OSError) -> bool:
    """Whether a bind failed because the address is taken: EADDRINUSE, or Windows' WinError 10048."""
    return error.errno == errno.EADDRINUSE or getattr(error, "winerror", None) == WSAEADDRINUSE


def is_forbidden(error: OSError) -> bool:
    """Windows' WinError 10013: a reserved port, or one another socket holds exclusively."""
    return getattr(error, "winerror", None) == WSAEACCES


def winerror_note(error: OSError) -> str:
    """ " (WinError N)" on Windows, so the message matches what users search for; else nothing."""
    code = getattr(error, "winerror", None)
    return f" (WinError {code})" if code is not None else ""


def parse_port(value: str, option: str = "--port") -> int:
    """`value` as a port number; raise `PortArgumentError` for anything but plain digits in 1..65535.

    Only ASCII digits: `int()` would also take " 8000", "+8000", "8_000" and
    other scripts' digits, none of which a user means as a port.
    """
    if re.fullmatch(r"[0-9]{1,5}", value) is None or not LOWEST_PORT <= int(value) <= HIGHEST_PORT:
        raise PortArgumentError(option, value)
    return int(value)


def port_holders(port: int) -> list[PortHolder] | None:
    """Processes listening on `port` on any address; None when the OS will not tell (macOS without root)."""
    import psutil

    addresses: dict[int | None, list[str]] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        # macOS lists every socket to root only, but each user's own processes to that user.
        for pid, ip in _own_listeners(port):
            addresses.setdefault(pid, []).append(ip)
        if not addresses:
            return None
    else:
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                addresses.setdefault(conn.pid, []).append(conn.laddr.ip)
    pids = sorted(addresses, key=lambda pid: pid or 0)
    return [_holder(pid, tuple(dict.fromkeys(addresses[pid]))) for pid in pids]


def _own_listeners(port: int) -> list[tuple[int, str]]:
    import psutil

    found: list[tuple[int, str]] = []
    for process in psutil.process_iter():
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        found += [
            (process.pid, conn.laddr.ip)
            for conn in connections
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        ]
    return found


def closing_connections(port: int) -> int:
    """Connections on local port `port` in TIME_WAIT: they fail a bind without SO_REUSEADDR for up to a minute."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return 0
    return sum(
        1 for conn in connections if conn.status == psutil.CONN_TIME_WAIT and conn.laddr and conn.laddr.port == port
    )


def _holder(pid: int | None, addresses: tuple[str, ...]) -> PortHolder:
    import psutil

    if pid is None:
        return PortHolder(None, addresses=addresses)
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            name = process.name()
            created = process.create_time()
            try:
                cmdline = _printable(" ".join(process.cmdline()))
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = ""
            try:
                user = process.username()
            except (psutil.AccessDenied, KeyError):
                user = ""
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return PortHolder(pid, addresses=addresses)
    return PortHolder(pid, name, cmdline, user, addresses, created)


def _printable(text: str) -> str:
    """`text` with newlines and control characters escaped: a command line is not trusted to be one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


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
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
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


def usable_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """`hosts` each once, minus ::1 where IPv6 is unavailable (containers), unless nothing else is left.

    ::1 alone is kept: binding it then fails with the reason, instead of listening nowhere.
    """
    hosts = tuple(dict.fromkeys(hosts))
    usable = hosts if ipv6_available() else tuple(host for host in hosts if host != "::1")
    return usable or hosts


def checked_hosts(hosts: Iterable[str] = ()) -> tuple[str, ...]:
    """The loopbacks (::1 only where IPv6 exists) and `hosts`, each once: where a port must be free."""
    return usable_hosts([*LOOPBACK_HOSTS, *hosts])


def is_free(port: int, hosts: Iterable[str] = ()) -> bool:
    """Whether `port` binds on every checked host, without SO_REUSEADDR (a listener anywhere fails it)."""
    for host in checked_hosts(hosts):
        try:
            _bind(host, port, reuse=False).close()
        except OSError:
            return False
    return True


def next_free_port(start: int, hosts: Iterable[str] = ()) -> int:
    """The lowest port from `start` up that `is_free`; `NoFreePortError` when none is."""
    hosts = checked_hosts(hosts)
    for port in range(start, HIGHEST_PORT + 1):
        if is_free(port, hosts):
            return port
    raise NoFreePortError(start, HIGHEST_PORT, hosts)


def host_port(host: str, port: int) -> str:
    """`host:port` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
