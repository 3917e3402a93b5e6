"""Connectivity that survives: real faults against a PostgreSQL these tests control.

Each test runs real servers (`python -m backend`) on a throwaway cluster
(tests/support/pgcluster.py) that it may stop, start, lock or cut:
`pg_terminate_backend` on every connection, `pg_ctl stop` under load, a
`LOCK TABLE` that holds requests in flight across a SIGTERM. Slow requests are
made slow by a real lock, never by a sleep; nothing asserts on wall-clock time
(scripts/measure_resilience.py measures the figures in docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from backend.devtokens import mint_token
from backend.migrations.versions import MIGRATIONS
from backend.settings import Settings
from tests.support import pgcluster
from tests.support.databases import fresh_postgres_database
from tests.support.live import LiveServer
from tests.support.pgfaults import TableLock, lock_waiters, stored_rows, terminate_backends, wait_for_waiters
from tests.support.protocol import PROBLEM, bearer
from tests.support.suite import TEST_DB
from tests.support.tcpproxy import TCPProxy
from tests.support.tokens import SECRET

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(TEST_DB != "postgresql", reason="faults are injected into a PostgreSQL cluster"),
    pytest.mark.skipif(not pgcluster.available(), reason="needs initdb and pg_ctl to run a cluster it can stop"),
]

# Hypercorn's line, in our log format: one per process that serves.
LISTENING = "INFO    hypercorn.error [-] Running on "
RETRIED = "retrying once on a fresh connection"
# A Neon compute waking from a suspend: longer than DB_CONNECT_TIMEOUT's old 5 s, within its 15 s.
WAKE = 7.0
# Seconds a server may take to start: generous, as CI runs on a busy machine (a bound, not a measure).
START = 30.0


class Cluster:
    """The module's cluster, with its state tracked so every test starts with it running."""

    def __init__(self) -> None:
        self.pg = pgcluster.PostgresCluster()
        self.running = False

    def start(self) -> None:
        if not self.running:
            self.pg.start()
            self.running = True

    def stop(self) -> None:
        self.pg.stop("fast")
        self.running = False


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.pg.remove()


@pytest.fixture
async def database(cluster: Cluster) -> AsyncIterator[str]:
    """A fresh, empty database on the running cluster; its URL."""
    cluster.start()
    async with fresh_postgres_database(cluster.pg.url()) as url:
        yield url
        cluster.start()  # a test that stopped it must not break the drop


def server_env(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "LOG_LEVEL": "info",
        "DB_CONNECT_TIMEOUT": "2",
        "DB_QUERY_TIMEOUT": "30",  # locks are released by the tests, never by a timeout
        "DB_CONNECT_RETRY_SECONDS": "60",
        "GRACEFUL_TIMEOUT": "30",
        **overrides,
    }


@pytest.fixture
def server(database: str) -> Iterator[LiveServer]:
    with LiveServer(**server_env(database)) as live:
        live.start()
        live.wait_ready(START)
        yield live


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Generous: a hang would show as a timeout error, a failed test, not as a slow pass.
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        yield client


class User:
    def __init__(self, settings: Settings) -> None:
        self.id = f"user-{uuid.uuid4().hex[:10]}"
        token = mint_token(settings, self.id, email=f"{self.id}@example.com", name="Resilient")
        self.headers = bearer(token)


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "CancelledError" not in stderr, stderr


def assert_unavailable(response: httpx.Response) -> None:
    """A 503 as the contract has it: problem+json, DATABASE_UNAVAILABLE, Retry-After."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "DATABASE_UNAVAILABLE"
    assert response.headers["retry-after"] == "2"


async def create(http: httpx.AsyncClient, server: LiveServer, user: User, title: str) -> httpx.Response:
    return await http.post(f"{server.url}/api/{user.id}/tasks", json={"title": title}, headers=user.headers)


async def listing(http: httpx.AsyncClient, server: LiveServer, user: User) -> httpx.Response:
    return await http.get(f"{server.url}/api/{user.id}/tasks?limit=200", headers=user.headers)


async def burst(http: httpx.AsyncClient, server: LiveServer, user: User, size: int) -> list[tuple[str, httpx.Response]]:
    """`size` concurrent requests, every other one a create with a unique title; (title or "", response)."""

    async def one(index: int) -> tuple[str, httpx.Response]:
        if index % 2:
            return "", await listing(http, server, user)
        title = f"burst {uuid.uuid4().hex}"
        return title, await create(http, server, user, title)

    return list(await asyncio.gather(*(one(index) for index in range(size))))


async def wait_ready(http: httpx.AsyncClient, server: LiveServer, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await _answers_200(http, f"{server.url}/ready"):
        assert server.running(), server.stderr
        if time.monotonic() > deadline:
            raise AssertionError(f"/ready not 200 after {within}s:\n{server.stderr}")
        await asyncio.sleep(0.05)


async def _answers_200(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.RemoteProtocolError:  # WORKERS>1: the parent closed its idle connection as it handed over
        return False


async def wait_refused(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"127.0.0.1:{port} still accepts connections {within}s after the signal")


async def exit_status(server: LiveServer) -> int:
    return await asyncio.to_thread(server.wait, 40.0)


# Startup while the database is down


async def test_server_started_while_database_is_down_turns_ready_when_it_comes_up(
    cluster: Cluster, database: str, http: httpx.AsyncClient
) -> None:
    cluster.stop()
    with LiveServer(**server_env(database)) as server:
        server.start()
        server.wait_for_output("Database not ready (attempt 2, DB_CONNECTION_REFUSED", timeout=START)
        user = User(server.settings)

        health = await http.get(f"{server.url}/health")
        ready = await http.get(f"{server.url}/ready")
        api = await listing(http, server, user)
        cluster.start()
        await wait_ready(http, server)
        created = await create(http, server, user, "After the database came up")

        assert health.status_code == 200
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "2"
        assert ready.json()["checks"][0]["ok"] is False
        assert api.status_code == 503, api.text
        assert api.headers["retry-after"] == "2"
        assert created.status_code == 201, created.text
        assert "Ready: " in server.stderr
        assert server.stop() == 0, server.stderr
        assert_no_traceback(server.stderr)


async def test_workers_answer_probes_while_the_database_is_down_then_serve_on_one_port(
    cluster: Cluster, database: str, http: httpx.AsyncClient
) -> None:
    cluster.stop()
    with LiveServer(**server_env(database, WORKERS="2")) as server:
        server.start()
        server.wait_for_output("Database not ready (attempt 1, DB_CONNECTION_REFUSED", timeout=START)

        health = await http.get(f"{server.url}/health")
        ready = await http.get(f"{server.url}/ready")
        cluster.start()
        server.wait_for_output(f"{LISTENING}{server.url}", count=2, timeout=START)
        await wait_ready(http, server)
        user = User(server.settings)
        created = await asyncio.gather(*(create(http, server, user, f"worker task {n}") for n in range(6)))

        assert health.status_code == 200
        assert ready.status_code == 503
        assert [response.status_code for response in created] == [201] * 6
        assert server.stop() == 0, server.stderr
        assert "Stopped cleanly" in server.stderr
        assert_no_traceback(server.stderr)


# A database that sleeps (Neon's scale to zero)


async def test_first_request_after_a_suspend_waits_for_the_wake_and_answers_200(
    cluster: Cluster, database: str, http: httpx.AsyncClient
) -> None:
    async with TCPProxy(cluster.pg.port) as proxy:
        # The settings Neon users get: no timeout set, the defaults must cover a wake.
        env = server_env(behind(database, proxy.port), DB_CONNECT_TIMEOUT="", DB_POOL_TIMEOUT="")
        with LiveServer(**env) as server:
            server.start()
            await asyncio.to_thread(server.wait_ready, START)
            user = User(server.settings)
            created = await create(http, server, user, "Before the nap")
            # The compute suspends: its connections are cut, and the next one is answered 7 s later.
            proxy.cut()
            proxy.connect_delay = WAKE
            woken = await listing(http, server, user)
            proxy.connect_delay = 0
            after = await create(http, server, user, "After the nap")

            assert created.status_code == 201, created.text
            assert woken.status_code == 200, server.stderr
            assert [task["title"] for task in woken.json()] == ["Before the nap"]
            assert after.status_code == 201, server.stderr
            assert proxy.connections >= 2
            assert_no_traceback(server.stderr)


def behind(database_url: str, port: int) -> str:
    """`database_url` pointed at a proxy on `port` instead of the cluster."""
    parts = urlsplit(database_url)
    return database_url.replace(f"{parts.hostname}:{parts.port}", f"{parts.hostname}:{port}", 1)


# A connection killed under the server


async def test_read_in_flight_when_its_connection_is_killed_is_retried_and_answers_200(
    server: LiveServer, database: str, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    assert (await create(http, server, user, "Survives a kill")).status_code == 201
    async with TableLock(database) as lock:
        read = asyncio.create_task(listing(http, server, user))
        await wait_for_waiters(database, 1)

        killed = await terminate_backends(database, spare=(lock.pid,))
        await wait_for_waiters(database, 1)  # the retry, blocked on the lock again
    response = await read

    assert killed >= 1
    assert response.status_code == 200, response.text
    assert [task["title"] for task in response.json()] == ["Survives a kill"]
    assert RETRIED in server.stderr
    assert_no_traceback(server.stderr)


async def test_write_in_flight_when_its_connection_is_killed_answers_503_and_is_not_stored(
    server: LiveServer, database: str, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    async with TableLock(database) as lock:
        write = asyncio.create_task(create(http, server, user, "Cut mid-flight"))
        await wait_for_waiters(database, 1)

        killed = await terminate_backends(database, spare=(lock.pid,))
        response = await write
    after = await create(http, server, user, "Right after")

    assert killed >= 1
    assert_unavailable(response)
    assert after.status_code == 201, after.text
    assert [title for _, title in await stored_rows(database, user.id)] == ["Right after"]
    assert_no_traceback(server.stderr)


async def test_killing_every_connection_during_a_burst_loses_no_acknowledged_write(
    server: LiveServer, database: str, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    killed: list[int] = []
    load = asyncio.create_task(burst(http, server, user, 60))
    while not load.done():  # kill again and again until the burst is over
        killed.append(await terminate_backends(database))
        await asyncio.sleep(0.02)
    during = await load
    after = await burst(http, server, user, 20)

    statuses = {response.status_code for _, response in during}
    assert statuses <= {200, 201, 503}, server.stderr
    for _, response in during:
        if response.status_code == 503:
            assert_unavailable(response)
    assert sum(killed) >= 1
    assert {response.status_code for _, response in after} == {200, 201}
    acknowledged = {
        response.json()["id"]: title for title, response in during + after if title and response.status_code == 201
    }
    stored = await stored_rows(database, user.id)
    stored_titles = [title for _, title in stored]
    assert len(stored_titles) == len(set(stored_titles)), "a write was applied twice"
    assert {id_: title for id_, title in stored if id_ in acknowledged} == acknowledged
    assert len(acknowledged) >= 10  # every create of the second burst at least
    assert_no_traceback(server.stderr)


async def test_query_blocked_past_db_query_timeout_answers_503_instead_of_hanging(
    database: str, http: httpx.AsyncClient
) -> None:
    with LiveServer(**server_env(database, DB_QUERY_TIMEOUT="1")) as server:
        server.start()
        server.wait_ready(START)
        user = User(server.settings)
        async with TableLock(database):
            blocked = await listing(http, server, user)  # the lock is never released while it waits
            waiting = await lock_waiters(database)
        after = await listing(http, server, user)

        assert_unavailable(blocked)
        assert waiting == 0  # the statement was cancelled on the server, not left behind
        assert after.status_code == 200, after.text
        assert RETRIED not in server.stderr  # slow is not gone: no second wait
        assert_no_traceback(server.stderr)


# The database stops under load


async def test_database_stopped_under_load_gives_503_not_500_then_recovers_without_restart(
    cluster: Cluster, server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    before = await burst(http, server, user, 10)
    load = asyncio.create_task(burst(http, server, user, 20))
    await asyncio.sleep(0)
    await asyncio.to_thread(cluster.stop)
    during = await load
    down = await burst(http, server, user, 10)
    ready_down = await http.get(f"{server.url}/ready")
    cluster.start()
    await wait_ready(http, server)
    after = await burst(http, server, user, 10)

    assert {response.status_code for _, response in before} == {200, 201}
    assert {response.status_code for _, response in during} <= {200, 201, 503}
    for _, response in down:
        assert_unavailable(response)
    assert ready_down.status_code == 503
    assert {response.status_code for _, response in after} == {200, 201}
    assert server.running()
    assert server.stop() == 0, server.stderr
    assert_no_traceback(server.stderr)


# Shutdown with requests in flight


async def test_sigterm_lets_requests_blocked_on_a_lock_finish_then_exits_0(
    server: LiveServer, database: str, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    created = [(await create(http, server, user, f"task {n}")).json() for n in range(3)]
    async with TableLock(database) as lock:
        updates = [
            asyncio.create_task(
                http.put(
                    f"{server.url}/api/{user.id}/tasks/{task['id']}",
                    json={"title": f"renamed {task['id']}"},
                    headers=user.headers,
                )
            )
            for task in created
        ]
        await wait_for_waiters(database, 3)

        server.send_signal(signal.SIGTERM)
        await wait_refused(server.port)
        assert server.running()
        await lock.release()
    responses = await asyncio.gather(*updates)
    status = await exit_status(server)

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert [response.json()["title"] for response in responses] == [f"renamed {task['id']}" for task in created]
    assert status == 0, server.stderr
    assert "Stopped cleanly" in server.stderr
    assert [title for _, title in await stored_rows(database, user.id)] == [f"renamed {t['id']}" for t in created]
    assert_no_traceback(server.stderr)


async def test_request_still_blocked_at_the_graceful_timeout_is_cut_without_a_traceback(
    database: str, http: httpx.AsyncClient
) -> None:
    with LiveServer(**server_env(database, GRACEFUL_TIMEOUT="0.5")) as server:
        server.start()
        server.wait_ready(START)
        user = User(server.settings)
        async with TableLock(database):
            read = asyncio.create_task(listing(http, server, user))
            await wait_for_waiters(database, 1)

            server.send_signal(signal.SIGTERM)
            status = await exit_status(server)
            response = await read

        assert response.status_code == 503, response.text
        assert response.json()["code"] == "SHUTTING_DOWN"
        assert f"GET /api/{user.id}/tasks cut at the graceful timeout -> 503 SHUTTING_DOWN" in server.stderr
        assert response.headers["retry-after"] == "2"
        assert response.headers["x-request-id"]
        assert status == 0, server.stderr
        assert "Stopped cleanly" in server.stderr
        assert_no_traceback(server.stderr)


async def test_second_signal_exits_1_at_once_without_waiting_for_requests(
    server: LiveServer, database: str, http: httpx.AsyncClient
) -> None:
    user = User(server.settings)
    async with TableLock(database):
        read = asyncio.create_task(listing(http, server, user))
        await wait_for_waiters(database, 1)

        server.send_signal(signal.SIGTERM)
        server.wait_for_output("SIGTERM: finishing the requests in flight (up to 30s); send it again to exit now")
        server.send_signal(signal.SIGINT)
        status = await exit_status(server)  # the lock is still held: only the second signal ends it
        with pytest.raises(httpx.TransportError):
            await read

    assert status == 1, server.stderr
    assert "Second SIGINT: exiting now, cutting the requests in flight" in server.stderr
    assert "Stopped cleanly" not in server.stderr


# Several instances at once


async def test_two_servers_started_together_apply_each_migration_once_and_both_serve(
    database: str, http: httpx.AsyncClient
) -> None:
    with LiveServer(**server_env(database)) as first, LiveServer(**server_env(database)) as second:
        first.start()
        second.start()
        first.wait_ready(START)
        second.wait_ready(START)
        user = User(first.settings)

        created = await create(http, first, user, "Via the first")
        listed = await listing(http, second, user)
        logs = first.stderr + second.stderr

        assert created.status_code == 201, created.text
        assert listed.json() == [created.json()]
        for migration in MIGRATIONS:
            assert logs.count(f"Applied migration {migration.version:04d} {migration.name}") == 1, logs
        assert await applied_versions(database) == [migration.version for migration in MIGRATIONS]
        assert first.stop() == 0, first.stderr
        assert second.stop() == 0, second.stderr


async def applied_versions(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await connection.close()
    return [int(row["version"]) for row in rows]
