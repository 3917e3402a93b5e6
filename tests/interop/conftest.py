"""Fixtures for the interop tests: Better Auth servers and backends that trust them.

Each backend is a real `python -m backend` (Hypercorn, real sockets) whose
BETTER_AUTH_URL is one Better Auth server's URL; everything is stopped at the
end of the test that started it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.interop.betterauth import BetterAuthServer, missing_setup
from tests.support.live import LiveServer
from tests.support.suite import unavailable
from tests.support.tokens import SECRET


@pytest.fixture(scope="session", autouse=True)
def _node_project() -> None:
    reason = missing_setup()
    if reason is not None:
        unavailable(f"interop: {reason}")


@pytest.fixture
def better_auth() -> Iterator[Callable[..., BetterAuthServer]]:
    """`better_auth(alg="ES256", ...)` starts a Better Auth server; all are stopped afterwards."""
    started: list[BetterAuthServer] = []

    def start(**options: Any) -> BetterAuthServer:
        server = BetterAuthServer(**options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture
def backend(database_url: str) -> Iterator[Callable[[BetterAuthServer], LiveServer]]:
    """`backend(provider)` starts the real backend with BETTER_AUTH_URL = the provider's baseURL."""
    started: list[LiveServer] = []

    def start(provider: BetterAuthServer) -> LiveServer:
        server = LiveServer(
            APP_ENV="development",
            DATABASE_URL=database_url,
            BETTER_AUTH_URL=provider.base_url,
            BETTER_AUTH_SECRET=SECRET,
            LOG_LEVEL="info",
            DB_CONNECT_RETRY_SECONDS="0",
        )
        started.append(server)
        server.start()
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.close()
