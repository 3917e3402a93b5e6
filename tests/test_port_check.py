"""The port check of `inv env-check` and `inv run`: this backend already running is no failure,
and a bind fails with each platform's own error.

This backend is started for real (`python -m backend` on a real socket). Windows
cannot be run here, so its failed binds are the OSErrors CPython raises there
(the Winsock code in `winerror`, `errno` mapped from it), raised from the one
socket call the check makes; everything around that call is the real code path.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.diagnostics import ports
from backend.diagnostics.port_check import check_port
from backend.diagnostics.ports import PortReservedError, checked_hosts, is_free
from backend.errors import PortInUseError
from backend.server import bind_free_port, bind_sockets
from backend.settings import Settings
from tests.support.apps import ready_server
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer, free_port, hold_port, stop_process
from tests.support.toolbelt import inv, inv_env, no_env_file

# What CPython on Windows raises for a failed bind: OSError(errno, strerror, None, winerror), where errno
# comes from winerror_to_errno (WSAEADDRINUSE stays 10048, WSAEACCES becomes EACCES).
WINDOWS_BIND_ERRORS = {
    10048: (10048, "Only one usage of each socket address (protocol/network address/port) is normally permitted"),
    10013: (errno.EACCES, "An attempt was made to access a socket in a way forbidden by its access permissions"),
}
NETSH = "netsh interface ipv4 show excludedportrange protocol=tcp"
LOOPBACKS = ", ".join(checked_hosts())  # the check binds on every loopback


def windows_bind_error(winerror: int) -> OSError:
    number, message = WINDOWS_BIND_ERRORS[winerror]
    error = OSError(number, message)
    error.winerror = winerror  # type: ignore[attr-defined]  # set by CPython on Windows only
    return error


@pytest.fixture
def fail_binds(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, int], None]:
    """`fail_binds(port, winerror)`: every bind of `port` fails as it does on Windows; other ports bind for real."""

    def install(port: int, winerror: int) -> None:
        real_bind = ports._bind

        def bind(host: str, bound: int, *, reuse: bool) -> socket.socket:
            if bound == port:
                raise windows_bind_error(winerror)
            return real_bind(host, bound, reuse=reuse)

        monkeypatch.setattr(ports, "_bind", bind)

    return install


@pytest.fixture
def held() -> Iterator[tuple[int, int]]:
    """(port, pid) of someone else's process listening on 127.0.0.1 (`python -m http.server`)."""
    port = free_port()
    process = hold_port(port)
    yield port, process.pid
    stop_process(process)


@pytest.fixture
def running(database_url: str, jwks: JWKSServer) -> Iterator[LiveServer]:
    """This backend, running (`python -m backend` in this checkout)."""
    with ready_server(database_url, jwks) as server:
        yield server


# this backend already running on the port


@pytest.mark.live
def test_this_backend_on_the_port_is_a_pass_naming_its_pid(running: LiveServer) -> None:
    results = check_port(Settings(port=running.port))

    assert [(r.status, r.code, r.message) for r in results] == [
        (
            "ok",
            "OK",
            f"port {running.port} is served by this backend, already running "
            f"(pid {running.pid}: {sys.executable} -m backend)",
        )
    ]


@pytest.mark.live
def test_this_backend_is_recognised_by_its_answer_when_the_os_hides_the_holder(
    running: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # macOS without root, another user's process, a container: psutil cannot say who listens.
    monkeypatch.setattr("backend.diagnostics.port_check.port_holders", lambda port: None)

    results = check_port(Settings(port=running.port))

    assert [(r.status, r.message) for r in results] == [
        ("ok", f"port {running.port} is served by this backend, already running (it answers like this backend)")
    ]


def test_someone_elses_process_in_this_checkout_still_fails(held: tuple[int, int]) -> None:
    port, pid = held

    results = check_port(Settings(port=port))

    assert [(r.status, r.code) for r in results] == [("fail", "PORT_IN_USE")]
    assert results[0].message.startswith(f"port {port} on 127.0.0.1 is in use by pid {pid} (")


@pytest.mark.live
def test_env_check_beside_the_running_server_passes(running: LiveServer, tmp_path: Path, jwks: JWKSServer) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DATABASE_URL=sqlite:///{tmp_path / 'todo.sqlite3'}\nBETTER_AUTH_JWKS_URL={jwks.url}\nPORT={running.port}\n"
    )

    result = inv("env-check", env=inv_env(TODO_ENV_FILE=str(env_file)))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   port      port {running.port} is served by this backend, already running (pid {running.pid}: " in (
        result.stdout
    )
    assert "FAIL" not in result.stdout


@pytest.mark.live
def test_inv_run_on_the_port_of_the_running_backend_says_it_is_already_running(running: LiveServer) -> None:
    env = inv_env(TODO_ENV_FILE=no_env_file(), PORT=str(running.port), DATABASE_URL="sqlite:///var/never.sqlite3")

    result = inv("run", env=env)

    assert result.returncode == 1
    assert result.stderr == (
        f"error PORT_IN_USE: Cannot listen on 127.0.0.1:{running.port}: this backend is already running there "
        f"(pid {running.pid}: {sys.executable} -m backend). use that one, stop it (Ctrl+C where it runs), "
        "or start another with `inv run --port auto`\n"
    )


def test_inv_run_on_a_port_held_by_another_program_in_this_checkout_names_it(held: tuple[int, int]) -> None:
    port, pid = held
    env = inv_env(TODO_ENV_FILE=no_env_file(), PORT=str(port), DATABASE_URL="sqlite:///var/never.sqlite3")

    result = inv("run", env=env)

    assert result.returncode == 1
    assert result.stderr.startswith(f"error PORT_IN_USE: port {port} on 127.0.0.1 is in use by pid {pid} (")


# Windows: WinError 10048 (in use) and 10013 (reserved by Hyper-V, WSL or Docker)


def test_windows_port_in_use_names_winerror_10048_and_the_holder(
    held: tuple[int, int], fail_binds: Callable[[int, int], None]
) -> None:
    port, pid = held
    fail_binds(port, 10048)

    results = check_port(Settings(port=port, hosts=("127.0.0.1",)))

    assert [(r.status, r.code) for r in results] == [("fail", "PORT_IN_USE")]
    assert results[0].message.startswith(f"port {port} on {LOOPBACKS} is in use (WinError 10048) by pid {pid} (")


def test_windows_reserved_port_names_netsh_and_port_auto(fail_binds: Callable[[int, int], None]) -> None:
    port = free_port()
    fail_binds(port, 10013)

    results = check_port(Settings(port=port, hosts=("127.0.0.1",)))

    assert [(r.status, r.code, r.message, r.fix) for r in results] == [
        (
            "fail",
            "PORT_EXCLUDED",
            f"port {port} on 127.0.0.1: Windows reserves this port (WinError 10013): it lies in a range excluded "
            "for Hyper-V, WSL or Docker, and no process holds it",
            f"`{NETSH}` lists the reserved ranges: set PORT outside them, or `inv run --port auto` takes the next "
            "free port",
        )
    ]


def test_windows_10013_on_a_port_someone_holds_is_in_use(
    held: tuple[int, int], fail_binds: Callable[[int, int], None]
) -> None:
    # Also WSAEACCES: a bind over a socket that holds the port with SO_EXCLUSIVEADDRUSE.
    port, pid = held
    fail_binds(port, 10013)

    results = check_port(Settings(port=port, hosts=("127.0.0.1",)))

    assert [(r.status, r.code) for r in results] == [("fail", "PORT_IN_USE")]
    assert results[0].message.startswith(f"port {port} on {LOOPBACKS} is in use (WinError 10013) by pid {pid} (")


def test_server_on_a_windows_reserved_port_says_so(fail_binds: Callable[[int, int], None]) -> None:
    port = free_port()
    fail_binds(port, 10013)

    with pytest.raises(PortReservedError) as raised:
        bind_sockets(("127.0.0.1",), port)

    assert raised.value.code == "PORT_EXCLUDED"
    assert str(raised.value) == (
        f"Cannot listen on 127.0.0.1:{port}: Windows reserves this port (WinError 10013): it lies in a range "
        f"excluded for Hyper-V, WSL or Docker, and no process holds it. `{NETSH}` lists the reserved ranges: "
        "set PORT outside them, or `inv run --port auto` takes the next free port"
    )


def test_server_on_a_windows_port_in_use_names_winerror_10048(
    held: tuple[int, int], fail_binds: Callable[[int, int], None]
) -> None:
    port, pid = held
    fail_binds(port, 10048)

    with pytest.raises(PortInUseError) as raised:
        bind_sockets(("127.0.0.1",), port)

    assert raised.value.code == "PORT_IN_USE"
    assert str(raised.value).startswith(f"port {port} on 127.0.0.1 is in use (WinError 10048) by pid {pid} (")


def test_port_auto_moves_past_a_windows_reserved_port(fail_binds: Callable[[int, int], None]) -> None:
    port = next(p for p in iter(free_port, None) if p < 65535 and is_free(p + 1, ("127.0.0.1",)))
    fail_binds(port, 10013)

    sockets = bind_free_port(("127.0.0.1",), port)
    try:
        assert [sock.getsockname()[1] for sock in sockets] == [port + 1]
    finally:
        for sock in sockets:
            sock.close()
