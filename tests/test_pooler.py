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
import collections
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from backend.database import Database
from backend.devtokens import mint_token
from backend.diagnostics.database_check import check_database
from backend.diagnostics.results import ok, warn
from backend.errors import ServiceUnavailableError
from backend.migrations import LATEST_VERSION, apply_migrations, current_version, migrate
from backend.migrations.versions import MIGRATIONS
from backend.settings import Settings
from tests.support import pgbouncer
from tests.support.apps import server_env
from tests.support.databases import fresh_postgres_database
from tests.support.live import LiveServer
from tests.support.protocol import bearer
from tests.support.suite import TEST_DB, unavailable
from tests.support.tcpproxy import TCPProxy
from tests.support.toolbelt import inv, inv_env, no_env_file

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(TEST_DB != "postgresql", reason="PgBouncer sits in front of PostgreSQL"),
]

START = 30.0
SWITCHED = "DATABASE_URL leads to a transaction pooler that does not keep prepared statements"
REFUSED_RETRY = "A transaction pooler refused a prepared statement, so it never ran; retrying once, unnamed"


@pytest.fixture(scope="module")
def bouncer_binary() -> None:
    if not pgbouncer.available():
        unavailable("pgbouncer is not installed: `sudo apt-get install pgbouncer` (Debian/Ubuntu)")


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
    assert victim_list.status_code == 200, new.stderr
    assert first_read.status_code == 200, new.stderr
    assert [response.status_code for response in reads] == [200, 200, 200], new.stderr
    assert [response.json()["title"] for response in [first_read, *reads]] == ["first", "first", "second", "third"]
    # The refused statement told the server what it is talking to: said once, with the fix.
    assert new.stderr.count(SWITCHED) == 1, new.stderr
    assert "Add ?pgbouncer=true to DATABASE_URL to start that way" in new.stderr
    assert "Traceback" not in new.stderr


async def test_write_whose_statement_the_pooler_refuses_is_stored_once(
    pooled: Pooled, servers: list[LiveServer]
) -> None:
    user = f"writer-{uuid.uuid4().hex[:8]}"
    pooled.bouncer.reload(pool_size=2)
    async with ServerConnectionHold(pooled.url()) as hold:
        server = await start(servers, pooled.url())
        headers = user_headers(server, user)
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            first = await http.post(f"/api/{user}/tasks", json={"title": "one"}, headers=headers)
            await hold.release()
            # Its INSERT, kept by name, now runs on the other server connection, which never saw it.
            second = await http.post(f"/api/{user}/tasks", json={"title": "two"}, headers=headers)
            third = await http.post(f"/api/{user}/tasks", json={"title": "three"}, headers=headers)

    assert [first.status_code, second.status_code, third.status_code] == [201, 201, 201], server.stderr
    assert await titles_of(pooled.direct, user) == ["one", "two", "three"]
    assert server.stderr.count(SWITCHED) == 1, server.stderr
    assert server.stderr.count(REFUSED_RETRY) == 1, server.stderr


async def test_migrations_twice_and_three_servers_at_once_share_one_server_connection(
    bouncer_binary: None, postgres_admin_url: str, servers: list[LiveServer]
) -> None:
    async with fresh_postgres_database(postgres_admin_url) as direct:
        port = urlsplit(postgres_admin_url).port or 5432
        with pgbouncer.PgBouncer(port, pool_size=1) as bouncer:
            url = bouncer.url(urlsplit(direct).path.lstrip("/"))
            env = inv_env(DATABASE_URL=url, TODO_ENV_FILE=no_env_file(), DB_CONNECT_RETRY_SECONDS="0")
            first = await asyncio.to_thread(inv, "migrate", env=env)
            second = await asyncio.to_thread(inv, "migrate", env=env)
            started = [LiveServer(**server_env(url)) for _ in range(3)]
            servers.extend(started)
            for server in started:
                server.start()
            await asyncio.gather(*(asyncio.to_thread(server.wait_ready, START) for server in started))
            user = f"many-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(timeout=30.0) as http:
                created = [
                    await http.post(
                        f"{server.url}/api/{user}/tasks", json={"title": f"via {n}"}, headers=user_headers(server, user)
                    )
                    for n, server in enumerate(started)
                ]
                started[0].kill()
                restarted = await start(servers, url)
                listed = await http.get(f"{restarted.url}/api/{user}/tasks", headers=user_headers(restarted, user))
            stored = await titles_of(direct, user)

    assert (first.returncode, first.stdout.strip()) == (0, "applied 0001 create tasks"), first.stderr
    assert (second.returncode, second.stdout.strip()) == (0, "schema is current; nothing to apply"), second.stderr
    assert [response.status_code for response in created] == [201, 201, 201]
    assert listed.status_code == 200, restarted.stderr
    assert sorted(task["title"] for task in listed.json()) == ["via 0", "via 1", "via 2"]
    assert stored == ["via 0", "via 1", "via 2"]
    for server in servers:
        assert "Traceback" not in server.stderr, server.stderr


async def test_statement_refused_inside_a_transaction_answers_503_and_a_migration_runs_again(
    pooled: Pooled, settings: Settings
) -> None:
    pooled.bouncer.reload(pool_size=2)
    db = Database(dataclasses.replace(settings, database_url=pooled.url(), db_pool_size=1))
    count = "SELECT count(*) FROM schema_migrations WHERE version > :floor"
    async with ServerConnectionHold(pooled.url()) as hold:
        await db.connect()
        before = await db.fetch_val(count, {"floor": 0})  # prepared and kept on the free server connection
        await hold.release()
        with pytest.raises(ServiceUnavailableError) as raised:
            await count_in_a_transaction(db, count)
    after = await db.fetch_val(count, {"floor": 0})
    await db.disconnect()

    assert before == after == len(MIGRATIONS)
    assert raised.value.code == "DATABASE_POOLER_SWITCHED"
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "2"}
    assert raised.value.detail == (
        "A transaction pooler between the server and the database refused a prepared statement, so this request"
        " did not run; the server now sends statements that work through it: retry"
    )
    assert db.describe() == "unnamed prepared statements"


async def count_in_a_transaction(db: Database, count: str) -> None:
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(1)")  # the transaction takes the other server connection
        await db.fetch_val(count, {"floor": 0})


async def test_migrations_through_a_pooler_run_again_when_it_refuses_a_statement(
    pooled: Pooled, settings: Settings
) -> None:
    pooled.bouncer.reload(pool_size=2)
    db = Database(dataclasses.replace(settings, database_url=pooled.url(), db_pool_size=1))
    async with ServerConnectionHold(pooled.url()) as hold:
        await db.connect()
        assert await apply_migrations(db) == []  # its statements kept on the free server connection
        await hold.release()
        again = await apply_migrations(db)  # in a transaction on the other one: refused, then run again
    version = await current_version(db)
    await db.disconnect()

    assert again == []
    assert version == LATEST_VERSION
    assert db.describe() == "unnamed prepared statements"


# What `inv env-check` says


async def test_env_check_names_a_transaction_pooler_the_url_does_not_and_says_what_to_add(
    pooled: Pooled, settings: Settings
) -> None:
    pooled.bouncer.reload(pool_size=3)
    plain = await check_database(dataclasses.replace(settings, database_url=pooled.url()))
    hinted = await check_database(dataclasses.replace(settings, database_url=pooled.url() + "&pgbouncer=true"))
    direct = await check_database(dataclasses.replace(settings, database_url=pooled.direct))

    assert [(result.check, result.status) for result in plain] == [
        ("database", "ok"),
        ("database_tls", "ok"),
        ("pooler", "warn"),
    ]
    assert plain[-1] == warn(
        "pooler",
        code="DB_POOLER_UNDECLARED",
        message="DATABASE_URL leads to a transaction pooler (client connections take turns on its server connections)"
        " and it does not keep prepared statements; the server switches to unnamed statements on the first"
        " statement it refuses",
        fix="add ?pgbouncer=true to DATABASE_URL so the server starts with unnamed statements",
    )
    assert hinted[-1] == ok(
        "pooler", "a transaction pooler (?pgbouncer=true): statements are sent unnamed, as it needs"
    )
    assert [result.check for result in direct] == ["database", "database_tls"]


async def test_env_check_finds_a_pooler_with_a_single_server_connection(pooled: Pooled, settings: Settings) -> None:
    results = await check_database(dataclasses.replace(settings, database_url=pooled.url()))

    assert (results[-1].check, results[-1].code) == ("pooler", "DB_POOLER_UNDECLARED")
    assert "client connections take turns on its server connections)" in results[-1].message


# Load through a pooler the URL does not name


async def test_plain_url_through_pgbouncer_under_load_answers_no_500_and_stores_each_write_once(
    pooled: Pooled, servers: list[LiveServer]
) -> None:
    pooled.bouncer.reload(pool_size=4)
    server = await start(servers, pooled.url())
    users = [f"load-{n}-{uuid.uuid4().hex[:6]}" for n in range(4)]
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=httpx.Limits(max_connections=40)) as http:
        seeds = [await seeded(http, server, user) for user in users]
        responses = await asyncio.gather(
            *(mixed_requests(http, server, user, 40, seed) for user, (_, seed) in zip(users, seeds, strict=True))
        )
        responses = [[seed, *batch] for seed, batch in zip(seeds, responses, strict=True)]

    statuses = collections.Counter(response.status_code for batch in responses for _, response in batch)
    assert set(statuses) <= {200, 201, 204}, (statuses, server.stderr)
    for user, batch in zip(users, responses, strict=True):
        acknowledged = sorted(title for title, response in batch if title and response.status_code == 201)
        assert sorted(await titles_of(pooled.direct, user)) == acknowledged
    assert server.stderr.count(SWITCHED) <= 1, server.stderr
    assert "Traceback" not in server.stderr


async def seeded(http: httpx.AsyncClient, server: LiveServer, user: str) -> tuple[str, httpx.Response]:
    """The user's first task, to read and toggle under load: (title, response)."""
    title = f"seed {user}"
    response = await http.post(f"/api/{user}/tasks", json={"title": title}, headers=user_headers(server, user))
    assert response.status_code == 201, server.stderr
    return title, response


async def mixed_requests(
    http: httpx.AsyncClient, server: LiveServer, user: str, size: int, seed: httpx.Response
) -> list[tuple[str, httpx.Response]]:
    """`size` concurrent requests of one user: creates (with unique titles), lists, reads and toggles of `seed`."""
    headers = user_headers(server, user)
    task = f"/api/{user}/tasks/{seed.json()['id']}"

    async def one(index: int) -> tuple[str, httpx.Response]:
        if index % 4 == 0:
            title = f"load {uuid.uuid4().hex}"
            return title, await http.post(f"/api/{user}/tasks", json={"title": title}, headers=headers)
        if index % 4 == 1:
            return "", await http.get(f"/api/{user}/tasks?limit=200", headers=headers)
        if index % 4 == 2:
            return "", await http.get(task, headers=headers)
        return "", await http.patch(f"{task}/complete", json={"completed": index % 8 == 3}, headers=headers)

    return list(await asyncio.gather(*(one(index) for index in range(size))))


# Connections cut under load


async def test_connections_cut_under_load_answer_503_not_500_and_leave_no_stray_traceback(
    pooled: Pooled, servers: list[LiveServer]
) -> None:
    pooled.bouncer.reload(pool_size=4)
    async with TCPProxy(pooled.bouncer.port) as proxy:
        server = await start(servers, pooled.url(port=proxy.port))
        user = f"cut-{uuid.uuid4().hex[:8]}"
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=limits) as http:
            seed = await seeded(http, server, user)
            load = asyncio.create_task(mixed_requests(http, server, user, 120, seed[1]))
            cuts = 0
            while not load.done():  # cut every connection again and again until the load is over
                proxy.cut()
                cuts += 1
                await asyncio.sleep(0.05)
            during = [seed, *await load]
            after = await mixed_requests(http, server, user, 12, seed[1])
        await asyncio.sleep(0.5)  # the retired connections' closing tasks have run by now

    statuses = collections.Counter(response.status_code for _, response in during)
    assert set(statuses) <= {200, 201, 204, 503}, (statuses, server.stderr)
    assert {response.status_code for _, response in after} <= {200, 201, 204}, server.stderr
    acknowledged = sorted(title for title, response in during + after if title and response.status_code == 201)
    stored = await titles_of(pooled.direct, user)
    assert sorted(title for title in stored if title in acknowledged) == acknowledged
    assert len(stored) == len(set(stored)), "a write was applied twice"
    assert cuts >= 2
    assert "Task exception was never retrieved" not in server.stderr, server.stderr
    assert "Traceback" not in server.stderr, server.stderr
