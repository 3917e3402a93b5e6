"""Prepared statements on PostgreSQL (backend/pgstatements.py): whose names they carry, and what we rely on asyncpg for.

Direct connections, so the server's own view is asserted: `pg_prepared_statements`
lists what a session holds. The last tests pin down asyncpg behaviour the
unnamed way depends on, so an asyncpg upgrade that changed it fails here
rather than in production.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from backend.app import create_app
from backend.database import Database
from backend.pgstatements import NAMED, UNNAMED, Statements
from backend.settings import Settings
from tests.support.apps import wait_ready
from tests.support.suite import TEST_DB

pytestmark = pytest.mark.skipif(TEST_DB != "postgresql", reason="prepared statements of PostgreSQL")

OURS = re.compile(r"__todo_[0-9a-f]{32}_[0-9a-f]+")


@pytest.fixture
async def one_connection_app(settings: Settings, fresh_database: str) -> AsyncIterator[Starlette]:
    app = create_app(dataclasses.replace(settings, database_url=fresh_database, db_pool_size=1))
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        yield app


async def test_every_statement_the_api_prepares_carries_a_name_of_our_own(
    one_connection_app: Starlette, alice: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=one_connection_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        created = (await http.post("/api/alice/tasks", json={"title": "named"}, headers=alice)).json()
        task = f"/api/alice/tasks/{created['id']}"
        await http.get("/api/alice/tasks?q=nam&status=pending&sort=title", headers=alice)
        await http.get(task, headers=alice)
        await http.put(task, json={"title": "renamed", "description": "d"}, headers=alice)
        await http.patch(f"{task}/complete", headers=alice)
        await http.patch(f"{task}/complete", json={"completed": False}, headers=alice)
        await http.delete(task, headers=alice)
        await http.get("/ready")
    db: Database = one_connection_app.state.backend.db
    names = [row["name"] for row in await db.fetch_all("SELECT name FROM pg_prepared_statements ORDER BY name")]

    assert len(names) >= 8
    assert [name for name in names if not OURS.fullmatch(name)] == []
    # One connection, one random part: a name is unique to the connection that chose it.
    assert len({name.rsplit("_", 1)[0] for name in names}) == 1


async def test_two_connections_never_choose_the_same_name(fresh_database: str) -> None:
    first, second = Statements(10), Statements(10)
    connections = [await asyncpg.connect(fresh_database, statement_cache_size=0) for _ in range(2)]
    try:
        a = (await first.get(connections[0], "SELECT 1", NAMED)).get_name()
        b = (await second.get(connections[1], "SELECT 1", NAMED)).get_name()
    finally:
        for connection in connections:
            await connection.close()

    assert OURS.fullmatch(a)
    assert OURS.fullmatch(b)
    assert a != b


async def test_statement_whose_table_changed_under_it_is_prepared_again_and_answers(
    settings: Settings, fresh_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(dataclasses.replace(settings, database_url=fresh_database, db_pool_size=1))
    await db.connect()
    await db.execute("CREATE TABLE notes (id int)")
    await db.execute("INSERT INTO notes VALUES (1)")
    before = await db.fetch_all("SELECT * FROM notes WHERE id = :id", {"id": 1})
    await db.execute("ALTER TABLE notes ADD COLUMN body text DEFAULT 'b'")  # what another instance's migration does
    with caplog.at_level(logging.WARNING, logger="backend.database"):
        after = await db.fetch_all("SELECT * FROM notes WHERE id = :id", {"id": 1})
    await db.disconnect()

    assert [tuple(row) for row in before] == [(1,)]
    assert [tuple(row) for row in after] == [(1, "b")]
    assert [record.getMessage() for record in caplog.records] == [
        "A kept prepared statement no longer fits its table (a migration?), so it never ran; retrying once"
    ]


# What the unnamed way relies on asyncpg for


async def test_kept_unnamed_statement_sends_its_own_text_every_time(fresh_database: str) -> None:
    connection = await asyncpg.connect(fresh_database, statement_cache_size=0)
    statements = Statements(10)
    try:
        ours = await statements.get(connection, "SELECT 'ours'::text", UNNAMED)
        name = ours.get_name()
        # Another statement takes the server's one unnamed slot (as another client's would through a pooler).
        other = await connection.fetchval("SELECT 'other'::text")
        again = await ours.fetchval()
        kept = await statements.get(connection, "SELECT 'ours'::text", UNNAMED)
        held = await connection.fetch("SELECT name FROM pg_prepared_statements")
    finally:
        await connection.close()

    assert name == ""
    assert (other, again) == ("other", "ours")
    assert kept is ours  # kept: no second prepare
    assert held == []  # nothing left on the server to collide with


async def test_asyncpg_names_nothing_itself_with_its_cache_off(fresh_database: str) -> None:
    connection = await asyncpg.connect(fresh_database, statement_cache_size=0)
    try:
        await connection.fetch("SELECT $1::int", 1)
        await connection.prepare("SELECT 2")
        await connection.execute("SELECT $1::text", "x")
        held = await connection.fetch("SELECT name FROM pg_prepared_statements")
    finally:
        await connection.close()

    assert held == []
