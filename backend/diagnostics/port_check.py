"""Is the port free on every address the server will listen on, and if not, who holds it?

Uses backend/diagnostics/ports.py read-only: a real bind without
SO_REUSEADDR on each address (the loopbacks 127.0.0.1 and ::1 always, where
IPv6 exists), closed at once, then psutil for the holder's pid and command.
"""

from __future__ import annotations

import errno
from typing import Final

from backend.diagnostics.ports import ipv6_available, open_listener, port_holders
from backend.diagnostics.results import Result, fail, ok
from backend.settings import LOOPBACK_HOSTS, Settings

CHECK: Final = "port"


def check_port(settings: Settings) -> list[Result]:
    """One result: the port is free everywhere, held (by whom), or cannot be bound at all."""
    port = settings.port
    hosts = _hosts(settings.hosts)
    busy: list[str] = []
    for host in hosts:
        try:
            open_listener(host, port).close()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return [_listen_failed(host, port, error)]
            busy.append(host)
    if busy:
        return [_in_use(port, busy)]
    return [ok(CHECK, f"port {port} is free on {', '.join(hosts)}")]


def _hosts(configured: tuple[str, ...]) -> list[str]:
    hosts = [*LOOPBACK_HOSTS, *configured]
    if not ipv6_available():
        hosts = [host for host in hosts if ":" not in host]
    return list(dict.fromkeys(hosts))


def _in_use(port: int, busy: list[str]) -> Result:
    holders = port_holders(port)
    if holders:
        who = ", ".join(holder.describe() for holder in holders)
    else:
        who = "a process the OS does not name (another user's, or in a container; try with sudo)"
    return fail(
        CHECK,
        code="PORT_IN_USE",
        message=f"port {port} on {', '.join(busy)} is in use by {who}",
        fix=(
            f"`inv free-port --port {port} --kill` ends it, `inv run --port auto` takes the next free port, or set PORT"
        ),
    )


def _listen_failed(host: str, port: int, error: OSError) -> Result:
    return fail(
        CHECK,
        code="LISTEN_FAILED",
        message=f"cannot listen on {host}:{port}: {error.strerror or error}",
        fix="set HOST to an address of this machine (127.0.0.1, localhost, 0.0.0.0) and PORT to 1024 or above",
    )
