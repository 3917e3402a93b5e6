"""Fixtures: a fresh database per run (SQLite or a real PostgreSQL), the app
in-process with its real lifespan, tokens signed like Better Auth's.

TEST_DB=postgresql runs the suite against PostgreSQL: TEST_DATABASE_URL when
set (a database named todo_test_* is created there and dropped afterwards),
otherwise a throwaway cluster started with initdb/pg_ctl. TEST_POOLER=pgbouncer
puts a PgBouncer in transaction mode (TLS, SCRAM, tests/support/pgbouncer.py)
between the app and that database: every test's app and server get the plain
URL a provider shows for it (`database_url`, `app_url()`), while the tests'
own checks on the data go straight to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from backend.app import create_app
from backend.settings import Secret, Settings
from tests.support import pgbouncer, pgcluster
from tests.support.jwks_server import JWKSServer, sign
from tests.support.live import LiveServer

TEST_DB = os.environ.get("TEST_DB", "sqlite")
TEST_POOLER = os.environ.get("TEST_POOLER", "")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Random-looking on purpose: production refuses a guessable secret (backend/secretstrength.py).
SECRET = "test-shared-secret-Vb7Qm2xK9pLz4RwT8nHc3JdY6fGs1EaU0oIk5"
AUTH_URL = "http://localhost:3000"


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
        message = "PostgreSQL tests need TEST_DATABASE_URL or initdb/pg_ctl on PATH"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
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
        message = "TEST_POOLER=pgbouncer needs pgbouncer: `sudo apt-get install pgbouncer` (Debian/Ubuntu)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    admin_url = request.getfixturevalue("postgres_admin_url")
    with pgbouncer.PgBouncer(urlsplit(admin_url).port or 5432) as bouncer:
        yield bouncer


def app_url(url: str, pooler: pgbouncer.PgBouncer | None) -> str:
    """The URL an app or server gets for the database at `url`: through the suite's pooler when there is one."""
    if pooler is None:
        return url
    return pooler.url(urlsplit(url).path.lstrip("/"))


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL of a database created for this run and removed after it (through the pooler, if any)."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'todo.sqlite3'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    async with fresh_postgres_database(admin_url) as url:
        yield app_url(url, request.getfixturevalue("pooler"))


class fresh_postgres_database:  # noqa: N801 - used like a function
    """`async with fresh_postgres_database(admin_url) as url`: created, then dropped."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"todo_test_{uuid.uuid4().hex[:12]}"

    async def __aenter__(self) -> str:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{self.name}"

    async def __aexit__(self, *exc: object) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()


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


async def wait_ready(app: Starlette, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not app.state.backend.startup.ready:
        if app.state.backend.startup.error is not None:
            raise AssertionError(f"app failed to start: {app.state.backend.startup.error}")
        if time.monotonic() > deadline:
            raise AssertionError("app not ready in time")
        await asyncio.sleep(0.01)


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


@dataclasses.dataclass
class Tokens:
    """Tokens shaped like Better Auth's: sub, iss, aud, iat, exp (15 min), user fields."""

    jwks: JWKSServer

    def claims(self, sub: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": AUTH_URL,
            "aud": AUTH_URL,
            "iat": now,
            "exp": now + 900,
            "id": sub,
            "email": f"{sub}@example.com",
            "name": sub.title(),
            "emailVerified": False,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def hs256(self, sub: str, secret: str = SECRET, **overrides: Any) -> str:
        from joserfc import jwt
        from joserfc.jwk import OctKey

        return jwt.encode(
            {"alg": "HS256"}, self.claims(sub, **overrides), OctKey.import_key(secret), algorithms=["HS256"]
        )

    def signed(self, sub: str, kid: str = "ed-1", **overrides: Any) -> str:
        key = next(key for key in self.jwks.keys if key.kid == kid)
        alg = {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}[key.key_type]
        return sign(key, alg, self.claims(sub, **overrides))

    def headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signed(sub)}"}


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
async def client_without_secret(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app configured for JWKS mode only: no BETTER_AUTH_SECRET."""
    application = create_app(dataclasses.replace(settings, secret=None))
    async with application.router.lifespan_context(application):
        await wait_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def ready_server(database_url: str, jwks: JWKSServer, **settings: str) -> Iterator[LiveServer]:
    """A real server (subprocess, real socket) with the suite's auth settings, ready; `settings` override."""
    with LiveServer(
        **{
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "BETTER_AUTH_URL": AUTH_URL,
            "BETTER_AUTH_JWKS_URL": jwks.url,
            "BETTER_AUTH_SECRET": SECRET,
            "LOG_LEVEL": "info",
            "DB_CONNECT_RETRY_SECONDS": "0",
            **settings,
        }
    ) as server:
        server.start()
        server.wait_ready()
        yield server
