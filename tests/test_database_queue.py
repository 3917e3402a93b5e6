"""The line in front of the pool (backend/pgpool.py): bounded, first come first served, 503 when too long.

PostgreSQL only: SQLite has no pool. Statements are held with a real lock
(tests/support/pgfaults.py) or a real open transaction, never a sleep, and
nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.database import Database
from backend.devtokens import mint_token
from backend.errors import ServiceUnavailableError
from backend.settings import Settings
from tests.support.apps import ready_server
from tests.support.databases import app_url
from tests.support.jwks_server import JWKSServer
from tests.support.pgbouncer import PgBouncer
from tests.support.pgfaults import TableLock, lock_waiters, wait_for_waiters
from tests.support.protocol import PROBLEM, bearer
from tests.support.suite import TEST_DB

pytestmark = pytest.mark.skipif(TEST_DB != "postgresql", reason="the line is in front of PostgreSQL's pool")


@pytest.fixture
async def one_connection(settings: Settings, fresh_database: str) -> AsyncIterator[Database]:
    """Our Database with a pool of one connection, a `log` table on it."""
    db = Database(dataclasses.replace(settings, database_url=fresh_database, db_pool_size=1))
    await db.connect()
    await db.execute("CREATE TABLE log (id serial PRIMARY KEY, who text NOT NULL)")
    yield db
    await db.disconnect()


async def test_statements_waiting_for_the_connection_run_in_arrival_order(one_connection: Database) -> None:
    db = one_connection
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold_the_connection() -> None:
        async with db.transaction():
            await db.execute("INSERT INTO log (who) VALUES ('holder')")
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_connection())
    await holding.wait()
    waiting = []
    for who in ("first", "second", "third", "fourth", "fifth"):
        waiting.append(asyncio.create_task(db.execute("INSERT INTO log (who) VALUES (:who)", {"who": who})))
        for _ in range(10):  # let it reach the line before the next one arrives
            await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *waiting)

    rows = await db.fetch_all("SELECT who FROM log ORDER BY id")
    assert [row["who"] for row in rows] == ["holder", "first", "second", "third", "fourth", "fifth"]


async def test_transaction_waiting_longer_than_db_pool_timeout_raises_unavailable(
    settings: Settings, fresh_database: str
) -> None:
    db = Database(dataclasses.replace(settings, database_url=fresh_database, db_pool_size=1, db_pool_timeout=0.2))
    await db.connect()
    try:
        release = asyncio.Event()
        holding = asyncio.Event()

        async def hold_the_connection() -> None:
            async with db.transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_the_connection())
        await holding.wait()
        with pytest.raises(ServiceUnavailableError) as raised:
            await db.fetch_val("SELECT 1")
        release.set()
        await holder
        after = await db.fetch_val("SELECT 1")
    finally:
        await db.disconnect()

    assert raised.value.code == "DATABASE_UNAVAILABLE"
    assert str(raised.value.detail) == "The server's 1 database connection stayed busy for 0.2s; retry shortly"
    assert after == 1


@pytest.mark.live
async def test_at_most_db_pool_size_requests_reach_the_database_and_the_rest_are_answered_after(
    fresh_database: str, jwks: JWKSServer, pooler: PgBouncer | None
) -> None:
    settings = {"DB_POOL_SIZE": "3", "DB_POOL_TIMEOUT": "60", "DB_QUERY_TIMEOUT": "60"}
    with ready_server(app_url(fresh_database, pooler), jwks, **settings) as server:
        user = f"user-{uuid.uuid4().hex[:10]}"
        headers = bearer(mint_token(server.settings, user))
        async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=20)) as http:
            async with TableLock(fresh_database):
                requests = [
                    asyncio.create_task(http.get(f"{server.url}/api/{user}/tasks", headers=headers)) for _ in range(8)
                ]
                await wait_for_waiters(fresh_database, 3)
                for _ in range(20):  # give the other five every chance to reach the database too
                    await asyncio.sleep(0.01)
                blocked = await lock_waiters(fresh_database)
            responses = await asyncio.gather(*requests)

    assert blocked == 3
    assert [response.status_code for response in responses] == [200] * 8


@pytest.mark.live
async def test_request_waiting_longer_than_db_pool_timeout_answers_503_with_retry_after(
    fresh_database: str, jwks: JWKSServer, pooler: PgBouncer | None
) -> None:
    settings = {"DB_POOL_SIZE": "1", "DB_POOL_TIMEOUT": "1", "DB_QUERY_TIMEOUT": "60"}
    with ready_server(app_url(fresh_database, pooler), jwks, **settings) as server:
        user = f"user-{uuid.uuid4().hex[:10]}"
        headers = bearer(mint_token(server.settings, user))
        url = f"{server.url}/api/{user}/tasks"
        async with httpx.AsyncClient(timeout=120.0) as http:
            async with TableLock(fresh_database):
                first = asyncio.create_task(http.get(url, headers=headers))
                await wait_for_waiters(fresh_database, 1)
                second = await http.post(url, json={"title": "waits too long"}, headers=headers)
            first_response = await first
            after = await http.post(url, json={"title": "served"}, headers=headers)
            listed = await http.get(url, headers=headers)
        stderr = server.stderr

    assert second.status_code == 503, second.text
    assert second.headers["content-type"] == PROBLEM
    assert second.headers["retry-after"] == "2"
    assert second.json()["code"] == "DATABASE_UNAVAILABLE"
    assert second.json()["detail"] == "The server's 1 database connection stayed busy for 1s; retry shortly"
    assert first_response.status_code == 200, first_response.text
    assert after.status_code == 201, after.text
    assert [task["title"] for task in listed.json()] == ["served"]
    assert "Every database connection (DB_POOL_SIZE=1) stayed busy for 1s; answered 503." in stderr
    assert "Traceback" not in stderr
