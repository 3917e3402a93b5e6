"""Serving with Hypercorn: one `Server` owns the sockets, the startup's outcome and the mode.

`serve` is the one way in (`python -m backend`, `inv run`, the reloader's
child): it reads the settings with the launch's overrides (backend/launch.py),
binds, and runs the `Server` in one of three modes, chosen in `Server.run`:

- `--reload`: a parent that holds the sockets and restarts a child server on
  every change (backend/reloader.py);
- WORKERS > 1: this process serves the app itself, on duplicates of the same
  sockets, until its startup has connected and migrated: the port answers from
  the first moment (/health 200, /ready and the API 503) and a permanent
  failure stops the server with its named cause, once. Then Hypercorn's
  process manager starts the workers on the original sockets
  (backend/workers.py); connections that arrive in between wait in the listen
  backlog;
- otherwise the app is served in this process.

The listening sockets are opened before the app starts, so a busy port is
reported with the process that holds it before the database is touched
(Hypercorn binds only after the app's startup, and lets a busy port escape as
a raw OSError). Hypercorn is handed these sockets as they are, not as `fd://`
binds: on those it sets SO_REUSEADDR, which on Windows would meet the
SO_EXCLUSIVEADDRUSE of our bind (the two options exclude each other). Every
Config attribute is set explicitly: `Config.from_mapping` silently ignores
misspelt keys. Every connection is HTTP/1.1 (backend/http1.py): HTTP/2
belongs behind a TLS-terminating proxy.

Shutdown: the first SIGINT/SIGTERM stops accepting and gives the requests in
flight GRACEFUL_TIMEOUT seconds; a second one exits at once (status 1).
Exit status: 0 after a clean shutdown, 1 when the server cannot start (the
cause is printed as one line with its fix, by `serve` only) or was forced to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar, cast

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework

from backend.app import create_app
from backend.diagnostics.port_check import listen_error
from backend.diagnostics.ports import (
    HIGHEST_PORT,
    NoFreePortError,
    host_port,
    open_listener,
    port_holders,
    usable_hosts,
)
from backend.errors import AppError, PortInUseError, report_line
from backend.http1 import serve_http1_only
from backend.launch import Launch
from backend.logs import configure_logging
from backend.reloader import serve_reloading, stop_when_orphaned
from backend.settings import Settings, is_loopback_host
from backend.state import Startup, app_state

logger = logging.getLogger(__name__)

AUTO_PORT_ATTEMPTS: Final = 100

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m backend`: serve with the settings from the environment and `.env` until a signal."""
    return serve(launch=Launch.from_argv(sys.argv[1:] if argv is None else argv))


def serve(settings: Settings | None = None, launch: Launch | None = None) -> int:
    """Serve until SIGINT/SIGTERM: 0 after a clean stop, 1 when the server cannot start (its cause printed once).

    `settings`: as the caller read them (with logging configured), or None to read them with the launch's overrides.
    """
    launch = launch or Launch()
    try:
        if settings is None:
            settings = launch.settings()
            configure_logging(settings.log_level)
        with Server.bind(settings, launch) as server:
            return server.run()
    except AppError as error:
        print(report_line(error), file=sys.stderr)
        return 1


class Server:
    """A server: its settings, its listening sockets, and how it was launched."""

    def __init__(self, settings: Settings, sockets: list[socket.socket], launch: Launch) -> None:
        self.settings = settings
        self.sockets = sockets
        self.launch = launch

    @classmethod
    def bind(cls, settings: Settings, launch: Launch) -> Server:
        """Listen on every host (a busy port raises here), or take the sockets a reloader handed down."""
        if launch.inherited:
            return cls(settings, [socket.socket(fileno=fd) for fd in launch.inherited], launch)
        bind = bind_free_port if launch.auto_port else bind_sockets
        server = cls(settings, bind(settings.hosts, settings.port), launch)
        server._hint_for_newcomers()
        return server

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sock in self.sockets:  # closing twice is harmless: Hypercorn closes those it served
            sock.close()

    def run(self) -> int:
        """Serve in the launch's mode until a signal: 0 after a clean stop; a failed start raises its cause."""
        if self.launch.reload and sys.platform != "win32":
            arguments = self.launch.child([sock.fileno() for sock in self.sockets])
            return serve_reloading(self.sockets, arguments, self.settings.graceful_timeout)
        if self.launch.inherited:
            stop_when_orphaned()
        serve_http1_only()
        if self.settings.workers > 1 or self.launch.reload:
            return self._run_workers()
        _run(self.serve_here(self.sockets))
        return 0

    def _run_workers(self) -> int:
        """Serve here until connected and migrated, then hand the sockets to Hypercorn's process manager.

        Each worker builds its own app; its startup finds the schema current.
        """
        from backend.workers import run_workers  # imports Hypercorn's process manager: only in this mode

        # Duplicates: Hypercorn closes the sockets it serves, the originals must stay open for the workers.
        if not _run(self.serve_here([sock.dup() for sock in self.sockets], until_ready=True)):
            return 0
        config = hypercorn_config(self.settings, self.sockets)
        return run_workers(config, self.settings.workers, self.launch.overrides, reload=self.launch.reload)

    async def serve_here(self, sockets: list[socket.socket], *, until_ready: bool = False) -> bool:
        """Serve an app in this process until a signal (then False) or its startup's outcome stops it.

        A failed start raises its cause; with `until_ready`, a ready app stops being served and True is returned.
        """
        stop = asyncio.Event()
        _stop_on_signals(stop, self.settings.graceful_timeout)
        app = create_app(self.settings)
        startup = app_state(app).startup
        stopping = asyncio.create_task(_stop_on_outcome(startup, stop, until_ready=until_ready))
        checking = asyncio.create_task(self._check_auth(startup, at_once=until_ready))
        config = hypercorn_config(self.settings, sockets)
        if until_ready:  # only the workers announce "Running on ...": one line per worker
            config.errorlog = _STARTUP_LOG
        await hypercorn_serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait)
        if not (stopping.done() and stopping.result()):
            logger.info("Stopped cleanly")
            return False
        if startup.error is not None:
            raise startup.error
        await checking  # bounded by the check's own timeout: the workers do not check again
        return True

    async def _check_auth(self, startup: Startup, *, at_once: bool) -> None:
        """Say what Better Auth's key URL answers: once ready (it may start after us), or `at_once`."""
        if at_once or await startup.watch() is None:
            from backend.diagnostics.auth_check import log_auth_check  # httpx, joserfc: preloaded by then

            await log_auth_check(self.settings)

    def _hint_for_newcomers(self) -> None:
        """In development on this machine: how to see the API answer (README's first request, the demo page)."""
        if self.settings.is_production or not any(is_loopback_host(host) for host in self.settings.hosts):
            return
        port = self.sockets[0].getsockname()[1]
        logger.info("Try it: `inv token --sub alice`, then curl, or paste the token at http://localhost:%d/dev/", port)


async def _stop_on_outcome(startup: Startup, stop: asyncio.Event, *, until_ready: bool) -> bool:
    """Set `stop` when the startup fails (or, `until_ready`, succeeds) before a signal did; whether it did."""
    error = await startup.watch()
    if stop.is_set() or (error is None and not until_ready):
        return False
    stop.set()
    return True


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
    config.bind = [host_port(*sock.getsockname()[:2]) for sock in sockets]
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
    # backend/verifier.py); h11's default 16 KiB head limit would leave no room for cookies.
    config.h11_max_incomplete_size = 32 * 1024
    # A worker's lifespan startup lasts until its app is connected and migrated (backend/workers.py):
    # longer than the app's own retry budget, so that the app, not this timer, names a failure.
    config.startup_timeout = settings.db_connect_retry_seconds + settings.db_connect_timeout + 30
    return config


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


_STARTUP_LOG = logging.getLogger("hypercorn.startup")
_STARTUP_LOG.setLevel(logging.WARNING)
