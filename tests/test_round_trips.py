"""Round trips to the database per API operation: one, directly and through a transaction pooler.

A TCP proxy (tests/support/tcpproxy.py) between the app and the database
counts how often the app speaks after the database has: each is a round trip,
what a far-away database (Neon, tens of milliseconds) charges for. The app
runs in process with a pool of one connection, so the first run of each
operation prepares its statement there (two round trips) and every later run
reuses it (one). Through PgBouncer, statements are unnamed (`?pgbouncer=true`)
or found to need it at run time (a plain URL): one round trip all the same.
benchmarks/roundtrips.py measures the same over HTTP, ours against the peer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from backend.app import create_app
from backend.migrations import migrate
from backend.settings import Settings
from tests.support import pgbouncer
from tests.support.apps import wait_ready
from tests.support.databases import fresh_postgres_database
from tests.support.suite import TEST_DB, unavailable
from tests.support.tcpproxy import TCPProxy

pytestmark = pytest.mark.skipif(TEST_DB != "postgresql", reason="round trips to a PostgreSQL server")

Operation = Callable[[httpx.AsyncClient, dict[str, str], int], Awaitable[httpx.Response]]


async def list_tasks(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.get("/api/alice/tasks", headers=headers)


async def create(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.post("/api/alice/tasks", json={"title": "counted"}, headers=headers)


async def get(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.get(f"/api/alice/tasks/{task}", headers=headers)


async def update(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.put(f"/api/alice/tasks/{task}", json={"title": "renamed"}, headers=headers)


async def toggle(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.patch(f"/api/alice/tasks/{task}/complete", headers=headers)


async def delete_missing(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.delete(f"/api/alice/tasks/{task + 10**9}", headers=headers)


async def list_past_the_end(http: httpx.AsyncClient, headers: dict[str, str], task: int) -> httpx.Response:
    return await http.get("/api/alice/tasks?offset=1000", headers=headers)


# (operation, its status, round trips once its statements are prepared on the connection)
OPERATIONS: list[tuple[Operation, int, int]] = [
    (list_tasks, 200, 1),
    (create, 201, 1),
    (get, 200, 1),
    (update, 200, 1),
    (toggle, 200, 1),
    (delete_missing, 404, 1),
    # No row to carry the window count: the total takes a second statement.
    (list_past_the_end, 200, 2),
]


@dataclasses.dataclass
class Counted:
    proxy: TCPProxy
    http: httpx.AsyncClient
    task: int


async def counted_app(settings: Settings, upstream_port: int, url_of: Callable[[int], str]) -> AsyncIterator[Counted]:
    """The app on a one-connection pool whose traffic goes through a counting proxy; alice has one task."""
    async with TCPProxy(upstream_port) as proxy:
        app = create_app(dataclasses.replace(settings, database_url=url_of(proxy.port), db_pool_size=1))
        async with app.router.lifespan_context(app):
            await wait_ready(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield Counted(proxy, http, 0)


@pytest.fixture(params=["direct", "pgbouncer, plain URL", "pgbouncer=true"])
async def counted(
    request: pytest.FixtureRequest, settings: Settings, postgres_admin_url: str
) -> AsyncIterator[Counted]:
    async with fresh_postgres_database(postgres_admin_url) as direct:
        await migrate(dataclasses.replace(settings, database_url=direct))
        port = urlsplit(postgres_admin_url).port or 5432
        if request.param == "direct":
            parts = urlsplit(direct)
            async for counted in counted_app(settings, port, lambda p: direct.replace(f":{parts.port}/", f":{p}/")):
                yield counted
            return
        if not pgbouncer.available():
            unavailable("pgbouncer is not installed: `sudo apt-get install pgbouncer`")
        with pgbouncer.PgBouncer(port) as bouncer:
            name = urlsplit(direct).path.lstrip("/")
            hint = {"pgbouncer": "true"} if request.param == "pgbouncer=true" else {}
            async for counted in counted_app(settings, bouncer.port, lambda p: bouncer.url(name, port=p, **hint)):
                yield counted


async def round_trips(counted: Counted, operation: Operation, headers: dict[str, str]) -> tuple[int, int]:
    """(status, round trips) of one run of `operation`."""
    counted.proxy.reset_counts()
    response = await operation(counted.http, headers, counted.task)
    return response.status_code, counted.proxy.round_trips


async def test_each_operation_costs_one_round_trip_once_its_statement_is_prepared(
    counted: Counted, alice: dict[str, str]
) -> None:
    created = await counted.http.post("/api/alice/tasks", json={"title": "first"}, headers=alice)
    counted.task = created.json()["id"]
    first = {operation.__name__: await round_trips(counted, operation, alice) for operation, _, _ in OPERATIONS}
    then = {operation.__name__: await round_trips(counted, operation, alice) for operation, _, _ in OPERATIONS}

    assert then == {operation.__name__: (status, trips) for operation, status, trips in OPERATIONS}
    # The first run of a statement on a connection prepares it first: one round trip more, never two.
    for operation, status, trips in OPERATIONS:
        assert first[operation.__name__][0] == status
        assert trips <= first[operation.__name__][1] <= 2 * trips


async def test_health_costs_no_round_trip_and_ready_one_per_statement(counted: Counted) -> None:
    await counted.http.get("/ready")
    health = await round_trips(counted, lambda http, headers, task: http.get("/health"), {})
    ready = await round_trips(counted, lambda http, headers, task: http.get("/ready"), {})

    assert health == (200, 0)
    assert ready == (200, 2)  # the schema table exists, and its version
