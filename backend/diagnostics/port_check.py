"""Is the port free on every address the server will listen on, and if not, who holds it?

Uses backend/diagnostics/ports.py read-only: a real bind without
SO_REUSEADDR on each address (the loopbacks 127.0.0.1 and ::1 always, where
IPv6 exists), closed at once, then psutil for the holder's pid and command.
The same answer has two forms: a `Result` for `inv env-check`
(`check_port`) and the error `inv run` stops with (`listen_error`).

This backend already running on the port is no failure for env-check (it
is meant to be run beside the server); only someone else's process is.
"""

from __future__ import annotations

import errno
from typing import Final

from backend.diagnostics.own_server import running_backend
from backend.diagnostics.ports import (
    EXCLUDED_RANGES_COMMAND,
    ListenError,
    PortHolder,
    PortReservedError,
    checked_hosts,
    host_port,
    is_forbidden,
    is_in_use,
    open_listener,
    port_holders,
    winerror_note,
)
from backend.diagnostics.results import Result, fail, found, ok
from backend.errors import AppError, PortInUseError
from backend.settings import Settings

CHECK: Final = "port"
_RESERVED_FIX: Final = (
    f"`{EXCLUDED_RANGES_COMMAND}` lists the reserved ranges: set PORT outside them, "
    "or `inv run --port auto` takes the next free port"
)


def check_port(settings: Settings) -> list[Result]:
    """One result: the port is free everywhere, held (by whom), or cannot be bound at all."""
    port = settings.port
    hosts = checked_hosts(settings.hosts)
    busy: list[str] = []
    note = ""
    for host in hosts:
        try:
            open_listener(host, port).close()
        except OSError as error:
            if not (is_in_use(error) or is_forbidden(error)):
                return [_listen_failed(host, port, error)]
            if is_forbidden(error) and not port_holders(port):
                return [_reserved(host, port, error)]
            busy.append(host)
            note = winerror_note(error)
    if busy:
        return [_in_use(port, busy, note)]
    return [ok(CHECK, f"port {port} is free on {', '.join(hosts)}")]


def listen_error(host: str, port: int, error: OSError) -> AppError:
    """Why `inv run` cannot listen on host:port, naming the holder or the reservation and the way out."""
    shown = host_port(host, port)
    holders = port_holders(port) if is_in_use(error) or is_forbidden(error) else []
    if is_forbidden(error) and not holders:
        return PortReservedError(f"Cannot listen on {shown}: {_reserved_text(error)}", _RESERVED_FIX)
    if is_in_use(error) or is_forbidden(error):
        return _in_use_error(host, port, error, holders)
    if error.errno == errno.EACCES:
        return ListenError(
            f"Cannot listen on {shown}: permission denied (ports below 1024 need privileges)",
            "set PORT to 1024 or above, e.g. 8000",
        )
    return ListenError(
        f"Cannot listen on {shown}: {error.strerror or error}",
        "set HOST to an address of this machine, e.g. 127.0.0.1 or 0.0.0.0",
    )


def _in_use_error(host: str, port: int, error: OSError, holders: list[PortHolder] | None) -> PortInUseError:
    ours = running_backend(port, holders)
    if ours is not None:
        where = host_port(host, port)
        return PortInUseError(
            f"Cannot listen on {where}: this backend is already running there ({ours}){winerror_note(error)}",
            "use that one, stop it (Ctrl+C where it runs), or start another with `inv run --port auto`",
        )
    return port_in_use(port, host, holders, winerror_note(error))


def _in_use(port: int, busy: list[str], note: str) -> Result:
    holders = port_holders(port)
    ours = running_backend(port, holders)
    if ours is not None:
        return ok(CHECK, f"port {port} is served by this backend, already running ({ours})")
    return found(CHECK, port_in_use(port, ", ".join(busy), holders, note).problem)


def port_in_use(port: int, where: str, holders: list[PortHolder] | None, note: str = "") -> PortInUseError:
    """PORT_IN_USE, in the same words for `inv run` and `inv env-check`: who holds it, and the ways out."""
    if holders:
        who = ", ".join(holder.describe() for holder in holders)
    else:
        who = "a process the OS does not name (another user's, or in a container; try with sudo)"
    return PortInUseError(
        f"port {port} on {where} is in use{note} by {who}",
        f"`inv free-port --port {port} --kill` ends it, `inv run --port auto` takes the next free port, or set PORT",
    )


def _reserved(host: str, port: int, error: OSError) -> Result:
    message = f"port {port} on {host}: {_reserved_text(error)}"
    return fail(CHECK, code="PORT_EXCLUDED", message=message, fix=_RESERVED_FIX)


def _reserved_text(error: OSError) -> str:
    return (
        f"Windows reserves this port{winerror_note(error)}: it lies in a range excluded for Hyper-V, WSL or Docker, "
        "and no process holds it"
    )


def _listen_failed(host: str, port: int, error: OSError) -> Result:
    return fail(
        CHECK,
        code="LISTEN_FAILED",
        message=f"cannot listen on {host}:{port}: {error.strerror or error}",
        fix="set HOST to an address of this machine (127.0.0.1, localhost, 0.0.0.0) and PORT to 1024 or above",
    )
