"""Serving with Hypercorn: sockets first, then the app; named errors, clean exits.

The listening sockets are opened here, before the app starts, so a busy port
is reported with the process that holds it before the database is touched
(Hypercorn itself binds only after the app's startup, and lets a busy port
escape as a raw OSError). Hypercorn is handed these sockets as they are, not
as `fd://` binds: on those it sets SO_REUSEADDR, which on Windows would meet
the SO_EXCLUSIVEADDRUSE of our bind (the two options exclude each other).
Every Config attribute is set explicitly: `Config.from_mapping` silently
ignores misspelt keys. Every connection is HTTP/1.1 (backend/http1.py):
HTTP/2 belongs behind a TLS-terminating proxy.

With WORKERS > 1 the parent process first serves the app itself, on
duplicates of the same sockets, until its startup has connected and migrated:
the port answers from the first moment (/health 200, /ready and the API 503)
and a permanent failure stops the server with its named cause, once. Then
Hypercorn's process manager starts the workers on the original sockets;
connections that arrive in between wait in the listen backlog. A worker that
still fails for good at its start stops them all, and the parent prints the
cause once (backend/worker_failure.py).

Shutdown: the first SIGINT/SIGTERM stops accepting and gives the requests in
flight GRACEFUL_TIMEOUT seconds; a second one exits at once (status 1).
Exit status: 0 after a clean shutdown, 1 when the server cannot start (the
cause is printed as one line with its fix) or was forced to stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any, Final, NoReturn, TypeVar, cast

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette

from backend.app import create_app
from backend.diagnostics.auth_check import log_auth_check
from backend.diagnostics.port_check import listen_error
from backend.diagnostics.ports import HIGHEST_PORT, NoFreePortError, open_listener, port_holders, usable_hosts
from backend.errors import AppError, PortInUseError, SettingsError, report_line
from backend.http1 import serve_http1_only
from backend.logs import configure_logging
from backend.settings import Settings, is_loopback_host, load_settings
from backend.worker_failure import WorkerFailures

logger = logging.getLogger(__name__)

AUTO_PORT_ATTEMPTS: Final = 100

T = TypeVar("T")


def main() -> int:
    """`python -m backend`: load settings, bind, serve until a signal."""
    settings = _settings_or_report()
    return 1 if settings is None else serve(settings)


def _settings_or_report() -> Settings | None:
    """The settings with logging configured, or None once every problem is reported."""
    try:
        settings = load_settings()
    except SettingsError as error:
        report(error)
        return None
    configure_logging(settings.log_level)
    return settings


def serve(settings: Settings, *, auto_port: bool = False, reload: bool = False) -> int:
    """Serve until SIGINT/SIGTERM (exit status 0) or a startup failure (1).

    `auto_port`: when PORT is taken, serve on the next port free on every host.
    `reload`: restart the server when backend/ or `.env` changes (backend/reloader.py).
    """
    try:
        bind = bind_free_port if auto_port else bind_sockets
        sockets = bind(settings.hosts, settings.port)
    except AppError as error:
        report(error)
        return 1
    _hint_for_newcomers(settings, sockets)
    if reload and sys.platform != "win32":
        from backend.reloader import serve_reloading

        return serve_reloading(settings, sockets)
    return _serve_sockets(settings, sockets, reload=reload)


def serve_inherited(fds: list[str]) -> int:
    """A `--reload` child: settings afresh, then serve the listening sockets inherited as descriptors `fds`."""
    settings = _settings_or_report()
    if settings is None:
        return 1
    from backend.reloader import stop_when_orphaned

    stop_when_orphaned()
    return _serve_sockets(settings, [socket.socket(fileno=int(fd)) for fd in fds])


def _hint_for_newcomers(settings: Settings, sockets: list[socket.socket]) -> None:
    """In development on this machine: how to see the API answer (README's first request, the demo page)."""
    if settings.is_production or not any(is_loopback_host(host) for host in settings.hosts):
        return
    port = sockets[0].getsockname()[1]
    logger.info("Try it: `inv token --sub alice`, then curl, or paste the token at http://localhost:%d/dev/", port)


def _serve_sockets(settings: Settings, sockets: list[socket.socket], *, reload: bool = False) -> int:
    try:
        serve_http1_only()
    except AppError as error:
        for sock in sockets:
            sock.close()
        report(error)
        return 1
    if settings.workers > 1 or reload:
        return _serve_workers(settings, sockets, reload=reload)
    return _run(_serve(settings, sockets))


def report(error: AppError) -> None:
    """The one line (or block, for settings) a user sees for a failure."""
    print(report_line(error), file=sys.stderr)


def bind_sockets(hosts: tuple[str, ...], port: int) -> list[socket.socket]:
    """Listening sockets for every host; raise `PortInUseError` naming the holder."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            if host not in usable_hosts(hosts):
                logger.info("IPv6 is not available here; listening on 127.0.0.1 only")
                continue
            sockets.append(_listen(host, port))
    except AppError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_free_port(hosts: tuple[str, ...], start: int) -> list[socket.socket]:
    """`--port auto`: sockets on `start` or, when it is taken, on the next port free on every host."""
    for port in range(start, min(start + AUTO_PORT_ATTEMPTS, HIGHEST_PORT + 1)):
        try:
            sockets = bind_sockets(hosts, port)
        except PortInUseError:
            continue
        if port != start:
            holders = ", ".join(h.describe() for h in port_holders(start) or []) or "another process"
            logger.warning("Port %d is in use by %s; serving on port %d instead (--port auto)", start, holders, port)
        return sockets
    raise NoFreePortError(start, min(start + AUTO_PORT_ATTEMPTS, HIGHEST_PORT + 1) - 1, hosts)


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    try:
        return open_listener(host, port)
    except OSError as error:
        raise listen_error(host, port, error) from None


class _BoundConfig(Config):
    """A Hypercorn Config that serves sockets already bound by `bind_sockets`."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        super().__init__()
        self._sockets = sockets

    def create_sockets(self) -> Sockets:
        for sock in self._sockets:
            sock.setblocking(False)
            sock.set_inheritable(True)
        return Sockets(secure_sockets=[], insecure_sockets=list(self._sockets), quic_sockets=[])

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes get the sockets from Hypercorn's `run`, not with the config.
        return {**self.__dict__, "_sockets": []}


def hypercorn_config(settings: Settings, sockets: list[socket.socket]) -> Config:
    config = _BoundConfig(sockets)
    config.bind = [_shown(*sock.getsockname()[:2]) for sock in sockets]
    config.worker_class = "asyncio" if sys.platform == "win32" else "uvloop"
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.graceful_timeout = settings.graceful_timeout
    config.backlog = 1024
    # A client that stalls mid-request would otherwise hold its connection forever. It restarts
    # with each byte read: the body as a whole has its own deadline (backend/bodydeadline.py).
    config.read_timeout = 10
    # Better Auth copies the user record into its token (up to 16 KiB, see
    # backend/auth.py); h11's default 16 KiB head limit would leave no room for cookies.
    config.h11_max_incomplete_size = 32 * 1024
    return config


async def _serve(settings: Settings, sockets: list[socket.socket]) -> int:
    stop = asyncio.Event()
    fatal: list[AppError] = []

    checks: list[asyncio.Task[None]] = []

    def on_fatal(error: AppError) -> None:
        fatal.append(error)
        stop.set()

    def on_ready() -> None:  # then say what Better Auth's key URL answers (it may start after us)
        checks.append(asyncio.create_task(log_auth_check(settings)))

    _stop_on_signals(stop, settings.graceful_timeout)
    app = create_app(settings, on_fatal=on_fatal, on_ready=on_ready)
    config = hypercorn_config(settings, sockets)
    # The same ASGI protocol: Starlette types it with mappings, Hypercorn with TypedDicts.
    await hypercorn_serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait)
    if fatal:
        report(fatal[0])
        return 1
    logger.info("Stopped cleanly")
    return 0


def _stop_on_signals(stop: asyncio.Event, grace: float) -> None:
    """First SIGINT/SIGTERM: set `stop` (graceful). Second: exit at once."""
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if not stop.is_set():
            logger.info("%s: finishing the requests in flight (up to %gs); send it again to exit now", name, grace)
            stop.set()
            return
        logger.warning("Second %s: exiting now, cutting the requests in flight", name)
        logging.shutdown()
        # Deliberately abrupt: the operator asked twice, and the database
        # server rolls back whatever was not committed when the socket drops.
        os._exit(1)

    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name)
        try:
            loop.add_signal_handler(signum, on_signal, name)
        except NotImplementedError:  # Windows
            signal.signal(signum, lambda *_, name=name: loop.call_soon_threadsafe(on_signal, name))


def _run(main: Coroutine[Any, Any, T]) -> T:
    if sys.platform == "win32":
        return asyncio.run(main)
    import uvloop

    return uvloop.run(main)


def _serve_workers(settings: Settings, sockets: list[socket.socket], *, reload: bool = False) -> int:
    """WORKERS > 1 or reload: serve here until connected and migrated, then Hypercorn's process manager.

    Each worker builds its own app; its startup finds the schema current.

    With `reload` (Windows only: elsewhere backend/reloader.py does it),
    Hypercorn's reloader polls the files of every loaded module each second
    and restarts the workers on the sockets it keeps open.
    """
    from hypercorn.run import run

    status = _run(_serve_until_ready(settings, sockets))
    if status is not None:
        for sock in sockets:
            sock.close()
        return status
    config = hypercorn_config(settings, sockets)
    # Only here: `serve()` in one process warns that it ignores `workers`.
    config.workers = settings.workers
    config.use_reloader = reload
    failures = WorkerFailures.create()
    try:
        config.application_path = f"backend.server:worker_app({failures.name!r})"
        status = run(config)
        failure = failures.first()
    finally:
        failures.remove()
    if failure is not None:
        print(failure, file=sys.stderr)  # the worker's `report` line, once
        return 1
    if status != 0:
        logger.error("A worker process exited with status %d; all workers were stopped", status)
        return 1
    logger.info("Stopped cleanly")
    return 0


def worker_app(failures: str) -> Starlette:
    """The app of one worker process (spawned: logging is configured afresh).

    A permanent failure at its start ends the worker; the parent, which made
    the folder named `failures`, prints the cause (backend/worker_failure.py).
    """
    end_worker = functools.partial(_end_worker, WorkerFailures.named(failures))
    try:
        settings = load_settings()  # afresh: `.env` may have changed since the parent read it
    except SettingsError as error:
        end_worker(error)
    configure_logging(settings.log_level)
    serve_http1_only()  # the parent checked it before starting this worker
    return create_app(settings, on_fatal=end_worker)


def _end_worker(failures: WorkerFailures, error: AppError) -> NoReturn:
    failures.record(report_line(error))
    logging.shutdown()
    # At once: this worker never connected, so nothing is lost, and Hypercorn's
    # manager, which sees only exit statuses, then stops the other workers.
    os._exit(1)


async def _serve_until_ready(settings: Settings, sockets: list[socket.socket]) -> int | None:
    """Serve the app in this process until its startup is done: None when ready, else the exit status.

    It serves duplicates of the sockets: Hypercorn closes the ones it serves,
    and the originals must stay open for the workers.
    """
    stop = asyncio.Event()
    outcome: list[AppError | None] = []

    def finish(error: AppError | None = None) -> None:
        if not stop.is_set():  # after a signal, stopping wins over a late "ready"
            outcome.append(error)
            stop.set()

    _stop_on_signals(stop, settings.graceful_timeout)
    app = create_app(settings, on_fatal=finish, on_ready=finish)
    config = hypercorn_config(settings, [sock.dup() for sock in sockets])
    # Only the workers announce "Running on ...": one line per worker, as before.
    config.errorlog = _STARTUP_LOG
    checking = asyncio.create_task(log_auth_check(settings))  # the workers do not check again
    await hypercorn_serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait)
    if not outcome:
        logger.info("Stopped cleanly")
        return 0
    error = outcome[0]
    if error is not None:
        report(error)
        return 1
    await checking  # bounded by the check's own timeout
    return None


_STARTUP_LOG = logging.getLogger("hypercorn.startup")
_STARTUP_LOG.setLevel(logging.WARNING)
