"""Fixtures: a fresh database per run (SQLite or a real PostgreSQL), the app
in-process with its real lifespan, tokens signed like Better Auth's.

TEST_DB=postgresql runs the suite against PostgreSQL: TEST_DATABASE_URL when
set (a database named todo_test_* is created there and dropped afterwards),
otherwise a throwaway cluster started with initdb/pg_ctl. TEST_POOLER=pgbouncer
puts a PgBouncer in transaction mode (TLS, SCRAM, tests/support/pgbouncer.py)
between the app and that database: every test's app and server get the plain
URL a provider shows for it (`database_url`, `app_url()`), while the tests'
own checks on the data go straight to the database.

Only fixtures and hooks live here; the helpers tests import are in tests/support/.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from backend.app import create_app
from backend.settings import Secret, Settings
from tests.support import pgbouncer, pgcluster
from tests.support.apps import ready_server, running_client, wait_ready
from tests.support.databases import app_url, fresh_postgres_database
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer
from tests.support.suite import TEST_DB, TEST_POOLER, unavailable
from tests.support.tokens import AUTH_URL, SECRET, Tokens


def pytest_report_header() -> str:
    return f"database: {TEST_DB}" + (f" through {TEST_POOLER}" if TEST_POOLER else "")


@pytest.fixture(scope="session")
def jwks() -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.add_key("EdDSA", "ed-1")
    server.add_key("ES256", "es-1")
    server.add_key("RS256", "rs-1")
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server to create test databases on."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if not pgcluster.available():
        unavailable("PostgreSQL tests need TEST_DATABASE_URL or initdb/pg_ctl on PATH")
    cluster = pgcluster.PostgresCluster()
    cluster.start()
    yield cluster.url()
    cluster.remove()


@pytest.fixture(scope="session")
def pooler(request: pytest.FixtureRequest) -> Iterator[pgbouncer.PgBouncer | None]:
    """The PgBouncer in front of the suite's PostgreSQL (TEST_POOLER=pgbouncer), else None."""
    if TEST_POOLER != "pgbouncer" or TEST_DB != "postgresql":
        yield None
        return
    if not pgbouncer.available():
        unavailable("TEST_POOLER=pgbouncer needs pgbouncer: `sudo apt-get install pgbouncer` (Debian/Ubuntu)")
    admin_url = request.getfixturevalue("postgres_admin_url")
    with pgbouncer.PgBouncer(urlsplit(admin_url).port or 5432) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL of a database created for this run and removed after it (through the pooler, if any)."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'todo.sqlite3'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    async with fresh_postgres_database(admin_url) as url:
        yield app_url(url, request.getfixturevalue("pooler"))


@pytest.fixture
async def fresh_database(postgres_admin_url: str) -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own, empty, reached directly (never through the pooler); its URL."""
    async with fresh_postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture
def settings(database_url: str, jwks: JWKSServer) -> Settings:
    return Settings(
        database_url=database_url,
        better_auth_url=AUTH_URL,
        jwks_url=jwks.url,
        secret=Secret(SECRET),
        jwt_issuer=AUTH_URL,
        jwt_audience=AUTH_URL,
        db_connect_retry_seconds=0,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The application with its lifespan running and an empty tasks table."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await wait_ready(application)
        await application.state.backend.db.execute("DELETE FROM tasks")
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="module")
def live(database_url: str, jwks: JWKSServer) -> Iterator[LiveServer]:
    """A real server (subprocess, real socket) with the suite's settings, ready; one per module that asks."""
    with ready_server(database_url, jwks) as server:
        yield server


@pytest.fixture
def tokens(jwks: JWKSServer) -> Tokens:
    return Tokens(jwks)


@pytest.fixture
def alice(tokens: Tokens) -> dict[str, str]:
    return tokens.headers("alice")


@pytest.fixture
def bob(tokens: Tokens) -> dict[str, str]:
    return tokens.headers("bob")


@pytest.fixture
def provider(jwks: JWKSServer) -> Iterator[JWKSServer]:
    """The session's JWKS server, put back as it was (keys, document, mode) afterwards."""
    keys, document = list(jwks.keys), jwks.document
    try:
        yield jwks
    finally:
        jwks.keys[:] = keys
        jwks.document = document
        jwks.mode = "ok"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose listener never accepts: the kernel completes the handshake, nobody answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
async def client_without_secret(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app configured for JWKS mode only: no BETTER_AUTH_SECRET."""
    async with running_client(dataclasses.replace(settings, secret=None)) as http:
        yield http
