"""Migrations: versioned, applied once even by concurrent instances, never destructive."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from backend.app import create_app
from backend.database import Database
from backend.migrations import LATEST_VERSION, apply_migrations, current_version
from backend.migrations.versions import MIGRATIONS
from backend.settings import Settings
from backend.tables import tasks
from tests.support.apps import wait_ready
from tests.support.databases import fresh_postgres_database
from tests.support.suite import TEST_DB


@pytest.fixture
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own, so that migrations start from nothing."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.sqlite3"
        return
    async with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


async def columns(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        rows = await db.fetch_all("PRAGMA table_info(tasks)")
        return {row["name"] for row in rows}
    rows = await db.fetch_all("SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'")
    return {row["column_name"] for row in rows}


async def test_migrated_schema_matches_the_table_definitions(app: Starlette) -> None:
    assert await columns(app.state.backend.db) == {column.name for column in tasks.columns}


async def test_versions_are_increasing_and_unique() -> None:
    versions = [migration.version for migration in MIGRATIONS]

    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_second_apply_applies_nothing(app: Starlette) -> None:
    db: Database = app.state.backend.db

    assert await apply_migrations(db) == []
    assert await current_version(db) == LATEST_VERSION
    rows = await db.fetch_all("SELECT version FROM schema_migrations")
    assert sorted(row["version"] for row in rows) == [m.version for m in MIGRATIONS]


async def test_concurrent_instances_apply_each_migration_exactly_once(
    settings: Settings, empty_database_url: str
) -> None:
    fresh = dataclasses.replace(settings, database_url=empty_database_url)
    databases = [Database(fresh) for _ in range(4)]
    for db in databases:
        await db.connect()
    try:
        results = await asyncio.gather(*(apply_migrations(db) for db in databases))
        assert sorted(len(applied) for applied in results) == [0, 0, 0, len(MIGRATIONS)]
        rows = await databases[0].fetch_all("SELECT version FROM schema_migrations")
        assert sorted(row["version"] for row in rows) == [m.version for m in MIGRATIONS]
    finally:
        for db in databases:
            await db.disconnect()


async def test_restart_keeps_existing_tasks(settings: Settings, app: Starlette, alice: dict[str, str]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        created = await client.post("/api/alice/tasks", json={"title": "survive"}, headers=alice)
    assert created.status_code == 201

    second = create_app(settings)
    async with second.router.lifespan_context(second):
        await wait_ready(second)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as client:
            listed = await client.get("/api/alice/tasks", headers=alice)

    assert [task["title"] for task in listed.json()] == ["survive"]
