"""Through a real PgBouncer in transaction mode: no statement ever runs under another's name.

PgBouncer hands each transaction (a statement outside one) whichever server
connection is free, and a prepared statement stays on the server connection
it was prepared on, after its client is gone. asyncpg prepares a statement
and runs it once on one server connection, then runs it again by name alone,
on whichever PgBouncer picks. A restarted process that named its statements
as the old one did finds its names on server connections where the old
process left different statements, and runs those instead.

These tests steer PgBouncer (tests/support/pgbouncer.py: TLS, SCRAM, the
plain URL a provider shows) with its pool size and by holding server
connections in open transactions (it hands out the one freed last), so each
scenario happens every time rather than under load by chance. Each asserts on
the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from backend.devtokens import mint_token
from backend.migrations import migrate
from backend.settings import Settings
from tests.conftest import IN_CI, SECRET, TEST_DB, fresh_postgres_database
from tests.support import pgbouncer
from tests.support.live import LiveServer
from tests.support.tokens import bearer

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(TEST_DB != "postgresql", reason="PgBouncer sits in front of PostgreSQL"),
]

START = 30.0


@pytest.fixture(scope="module")
def bouncer_binary() -> None:
    if not pgbouncer.available():
        message = "pgbouncer is not installed: `sudo apt-get install pgbouncer` (Debian/Ubuntu)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclasses.dataclass
class Pooled:
    """A fresh database, migrated, reachable directly and through its own PgBouncer."""

    direct: str
    bouncer: pgbouncer.PgBouncer
    name: str

    def url(self, port: int | None = None) -> str:
        return self.bouncer.url(self.name, port=port)


@pytest.fixture
async def pooled(bouncer_binary: None, postgres_admin_url: str, settings: Settings) -> AsyncIterator[Pooled]:
    async with fresh_postgres_database(postgres_admin_url) as direct:
        await migrate(dataclasses.replace(settings, database_url=direct))
        port = urlsplit(postgres_admin_url).port or 5432
        with pgbouncer.PgBouncer(port, pool_size=1) as bouncer:
            yield Pooled(direct, bouncer, urlsplit(direct).path.lstrip("/"))


def server_env(database_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "LOG_LEVEL": "info",
        "DB_CONNECT_RETRY_SECONDS": "0",
    }


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    """Servers the test starts with `start()`; all stopped at the end."""
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.close()


async def start(servers: list[LiveServer], database_url: str) -> LiveServer:
    server = LiveServer(**server_env(database_url))
    servers.append(server)
    server.start()
    await asyncio.to_thread(server.wait_ready, START)
    return server


async def insert_tasks(url: str, user: str, titles: list[str]) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "INSERT INTO tasks (user_id, title) SELECT $1, unnest($2::text[]) RETURNING id", user, titles
        )
    finally:
        await connection.close()
    return [int(row["id"]) for row in rows]


async def titles_of(url: str, user: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT title FROM tasks WHERE user_id = $1 ORDER BY id", user)
    finally:
        await connection.close()
    return [str(row["title"]) for row in rows]


class ServerConnectionHold:
    """An open transaction through PgBouncer: the server connection it got is nobody else's until `release()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> ServerConnectionHold:
        self.connection = await asyncpg.connect(self.url, statement_cache_size=0)
        await self.connection.execute("BEGIN; SELECT 1")
        return self

    async def release(self) -> None:
        if self.connection is not None:
            await self.connection.execute("COMMIT")
            await self.connection.close()
            self.connection = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def user_headers(server: LiveServer, user: str) -> dict[str, str]:
    return bearer(mint_token(server.settings, user))


async def test_restarted_server_never_runs_a_statement_the_old_process_left_on_a_pooled_connection(
    pooled: Pooled, servers: list[LiveServer]
) -> None:
    alice, victim = f"alice-{uuid.uuid4().hex[:8]}", f"victim-{uuid.uuid4().hex[:8]}"
    [doomed] = await insert_tasks(pooled.direct, alice, ["alice's task to delete"])
    kept = await insert_tasks(pooled.direct, victim, ["first", "second", "third"])

    # The old process: PgBouncer has one server connection, so all it prepares stays there; then it dies.
    old = await start(servers, pooled.url())
    async with httpx.AsyncClient(base_url=old.url, timeout=30.0) as http:
        listed = await http.get(f"/api/{alice}/tasks", headers=user_headers(old, alice))
        deleted = await http.delete(f"/api/{alice}/tasks/{doomed}", headers=user_headers(old, alice))
    old.kill()

    # The new process starts on a second server connection while the old one is held, and prepares
    # its statements there. Then the old connection is free again: the next server connection PgBouncer
    # hands out, where the new process's cached statements are executed by name.
    pooled.bouncer.reload(pool_size=2)
    async with ServerConnectionHold(pooled.url()) as hold:
        new = await start(servers, pooled.url())
        headers = user_headers(new, victim)
        async with httpx.AsyncClient(base_url=new.url, timeout=30.0) as http:
            victim_list = await http.get(f"/api/{victim}/tasks", headers=headers)
            first_read = await http.get(f"/api/{victim}/tasks/{kept[0]}", headers=headers)
            await hold.release()
            reads = [await http.get(f"/api/{victim}/tasks/{task_id}", headers=headers) for task_id in kept]

    assert listed.status_code == 200, old.stderr
    assert deleted.status_code == 204, old.stderr
    assert await titles_of(pooled.direct, alice) == []
    # The old process's DELETE never ran again: every one of the victim's rows is there.
    assert await titles_of(pooled.direct, victim) == ["first", "second", "third"], new.stderr
    for response, title in zip([first_read, *reads], ["first", "first", "second", "third"], strict=True):
        assert response.status_code != 200 or response.json()["title"] == title
    assert victim_list.status_code == 200, new.stderr
    assert first_read.status_code == 200, new.stderr
