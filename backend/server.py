"""Serving with Hypercorn: sockets first, then the app; named errors, clean exits.

The listening sockets are opened here, before the app starts, so a busy port
is reported with the process that holds it before the database is touched
(Hypercorn itself binds only after the app's startup, and lets a busy port
escape as a raw OSError). Hypercorn is handed these sockets as they are, not
as `fd://` binds: on those it sets SO_REUSEADDR, which on Windows would meet
the SO_EXCLUSIVEADDRUSE of our bind (the two options exclude each other).
Every Config attribute is set explicitly: `Config.from_mapping` silently
ignores misspelt keys.

With WORKERS > 1 the database is connected and migrated once, here, before
Hypercorn's process manager starts the workers: a permanent failure then
stops the server with its named cause, as it does with one process.

Exit status: 0 after a clean shutdown (SIGINT, SIGTERM), 1 when the server
cannot start (the cause is printed as one line with its fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any, Final, TypeVar, cast

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette

from backend.app import create_app
from backend.database import Database
from backend.diagnostics.ports import ipv6_available, open_listener, port_holders
from backend.errors import AppError, PortInUseError, SettingsError
from backend.logs import configure_logging
from backend.migrations import connect_and_migrate
from backend.settings import LOOPBACK_HOSTS, Settings, load_settings

logger = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_SECONDS: Final = 10.0

T = TypeVar("T")


class ListenError(AppError):
    code = "LISTEN_FAILED"


def main() -> int:
    """`python -m backend`: load settings, bind, serve until a signal."""
    try:
        settings = load_settings()
    except SettingsError as error:
        report(error)
        return 1
    configure_logging(settings.log_level)
    return serve(settings)


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM (exit status 0) or a startup failure (1)."""
    try:
        sockets = bind_sockets(settings.hosts, settings.port)
    except AppError as error:
        report(error)
        return 1
    if settings.workers > 1:
        return _serve_workers(settings, sockets)
    return _run(_serve(settings, sockets))


def report(error: AppError) -> None:
    """The one line (or block, for settings) a user sees for a failure."""
    print(f"error {error.code}: {error}", file=sys.stderr)


def bind_sockets(hosts: tuple[str, ...], port: int) -> list[socket.socket]:
    """Listening sockets for every host; raise `PortInUseError` naming the holder."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            if host == "::1" and hosts == LOOPBACK_HOSTS and not ipv6_available():
                logger.info("IPv6 is not available here; listening on 127.0.0.1 only")
                continue
            sockets.append(_listen(host, port))
    except AppError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    shown = _shown(host, port)
    try:
        return open_listener(host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            holders = port_holders(port) or []
            holder = ", ".join(h.describe() for h in holders) or "another process"
            raise PortInUseError(
                f"Cannot listen on {shown}: address already in use by {holder}",
                "Run `inv free-port --kill` to stop it, `inv run --port auto` to take the next free port, or set PORT",
            ) from None
        if error.errno == errno.EACCES:
            raise ListenError(
                f"Cannot listen on {shown}: permission denied (ports below 1024 need privileges)",
                "set PORT to 1024 or above, e.g. 8000",
            ) from None
        raise ListenError(
            f"Cannot listen on {shown}: {error.strerror or error}",
            "set HOST to an address of this machine, e.g. 127.0.0.1 or 0.0.0.0",
        ) from None


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
    config.workers = settings.workers
    config.worker_class = "asyncio" if sys.platform == "win32" else "uvloop"
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.graceful_timeout = GRACEFUL_TIMEOUT_SECONDS
    config.backlog = 1024
    return config


async def _serve(settings: Settings, sockets: list[socket.socket]) -> int:
    stop = asyncio.Event()
    fatal: list[AppError] = []

    def on_fatal(error: AppError) -> None:
        fatal.append(error)
        stop.set()

    _stop_on_signals(stop)
    app = create_app(settings, on_fatal=on_fatal)
    config = hypercorn_config(settings, sockets)
    # The same ASGI protocol: Starlette types it with mappings, Hypercorn with TypedDicts.
    await hypercorn_serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait)
    if fatal:
        report(fatal[0])
        return 1
    logger.info("Stopped cleanly")
    return 0


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name)
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:  # Windows
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))


def _run(main: Coroutine[Any, Any, T]) -> T:
    if sys.platform == "win32":
        return asyncio.run(main)
    import uvloop

    return uvloop.run(main)


def _serve_workers(settings: Settings, sockets: list[socket.socket]) -> int:
    """WORKERS > 1: migrate once, then Hypercorn's process manager, each worker building its own app."""
    from hypercorn.run import run

    status = _run(_prepare_database(settings))
    if status is not None:
        for sock in sockets:
            sock.close()
        return status
    config = hypercorn_config(settings, sockets)
    config.application_path = "backend.server:worker_app()"
    status = run(config)
    if status != 0:
        logger.error("A worker process exited with status %d; all workers were stopped", status)
        return 1
    logger.info("Stopped cleanly")
    return 0


def worker_app() -> Starlette:
    """The app of one worker process (spawned: logging is configured afresh)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


async def _prepare_database(settings: Settings) -> int | None:
    """Connect and migrate before the workers start: None when done, else the exit status."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    prepare = asyncio.create_task(_migrate(settings))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait((prepare, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not prepare.done():
        prepare.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prepare
        logger.info("Stopped cleanly")
        return 0
    error = prepare.result()
    if error is not None:
        report(error)
        return 1
    return None


async def _migrate(settings: Settings) -> AppError | None:
    db = Database(settings)
    try:
        await connect_and_migrate(db, settings.db_connect_retry_seconds)
    except AppError as error:
        return error
    finally:
        await db.disconnect()
    return None
