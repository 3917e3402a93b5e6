"""The app as the tests run it: in-process with its real lifespan, or as a real
server trusting the suite's auth provider (tests/support/tokens.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
from starlette.applications import Starlette

from backend.app import create_app
from backend.settings import Settings
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer
from tests.support.tokens import AUTH_URL, SECRET


async def wait_ready(app: Starlette, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    startup = app.state.backend.startup
    while not startup.ready:
        if startup.error is not None:
            raise AssertionError(f"app failed to start: {startup.error}")
        if time.monotonic() > deadline:
            raise AssertionError("app not ready in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from `settings`, its lifespan running and its database ready."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await wait_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def server_env(database_url: str) -> dict[str, str]:
    """What a real server needs on top of "every other setting empty": a database, the shared secret, logs."""
    return {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "LOG_LEVEL": "info",
        "DB_CONNECT_RETRY_SECONDS": "0",
    }


@contextlib.contextmanager
def ready_server(database_url: str, jwks: JWKSServer, **settings: str) -> Iterator[LiveServer]:
    """A real server (subprocess, real socket) with the suite's auth settings, ready; `settings` override."""
    auth = {"BETTER_AUTH_URL": AUTH_URL, "BETTER_AUTH_JWKS_URL": jwks.url}
    with LiveServer(**{**server_env(database_url), **auth, **settings}) as server:
        server.start()
        server.wait_ready()
        yield server
