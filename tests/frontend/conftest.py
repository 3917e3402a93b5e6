"""Fixtures of the frontend tests: the example app built and served once, and a backend that trusts it.

The mix the guide warns about is on purpose: the app is opened at
`http://localhost:PORT` (its BETTER_AUTH_URL) and calls the backend at
`http://127.0.0.1:PORT` (its NEXT_PUBLIC_API_URL), so every browser call is
cross-origin (CORS) and the backend fetches its keys from the app by name.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import require_chromium
from tests.frontend.nextapp import (
    AUTH_TABLES,
    BUILD_TIMEOUT,
    NextServer,
    Timings,
    app_environment,
    auth_tables,
    missing_setup,
    next_start,
    run,
)
from tests.support.live import LiveServer, free_port
from tests.support.suite import unavailable

TIMINGS = Timings()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS.steps:
        terminalreporter.write_line(f"frontend: {TIMINGS.summary()}")


@pytest.fixture(scope="session", autouse=True)
def _node_project() -> None:
    reason = missing_setup()
    if reason is not None:
        unavailable(f"frontend: {reason}")


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_chromium()


@dataclasses.dataclass(frozen=True)
class Stack:
    """The running app and backend, and the two databases behind them."""

    app: NextServer
    backend: LiveServer
    auth_database: Path  # Better Auth's SQLite file: users, sessions, keys
    database_url: str  # the backend's: tasks


@pytest.fixture(scope="session")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`npm run build`, the migration, `npm start`, then the backend in JWKS mode pointed at the app."""
    app_port, api_port = free_port(), free_port()
    assert app_port != api_port
    app_url, api_url = f"http://localhost:{app_port}", f"http://127.0.0.1:{api_port}"
    auth_database = tmp_path_factory.mktemp("nextjs") / "auth.sqlite"
    env = app_environment(app_url=app_url, api_url=api_url, database=auth_database, secret=secrets.token_urlsafe(32))
    # NEXT_PUBLIC_API_URL is inlined by the build: the backend's port is chosen before it.
    with TIMINGS.step("next build"):
        run(["npm", "run", "build"], env, BUILD_TIMEOUT)
    with TIMINGS.step("better-auth migrate"):
        output = run(["npx", "@better-auth/cli", "migrate", "--yes"], env)
    assert auth_tables(auth_database) >= AUTH_TABLES, output
    backend = LiveServer(
        APP_ENV="development",
        DATABASE_URL=database_url,
        BETTER_AUTH_URL=app_url,
        CORS_ORIGINS=app_url,
        PORT=str(api_port),
        LOG_LEVEL="info",
        DB_CONNECT_RETRY_SECONDS="0",
    )
    with next_start(env, app_port) as app, backend:
        with TIMINGS.step("next start"):
            app.start()
        with TIMINGS.step("backend start"):
            backend.start()
            backend.wait_ready()
        yield Stack(app=app, backend=backend, auth_database=auth_database, database_url=database_url)
