"""The probes: /ready says less in production (issue 14, item 9).

Anyone can call /ready. In development it names the database as
`user@host:port/db` (or the SQLite file), which helps; in production it says
only which kind of database answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.app import create_app
from backend.dburl import parse_database_url
from backend.migrations import LATEST_VERSION
from backend.settings import Settings
from tests.support.apps import wait_ready
from tests.support.suite import TEST_DB

KIND = "PostgreSQL" if TEST_DB == "postgresql" else "SQLite"


def revealing_parts(database_url: str) -> list[str]:
    """What must not reach an anonymous caller in production: user, host, port, database or file."""
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        return [str(target.sqlite_path), target.display]
    return [part for part in (target.user, target.host, f":{target.port}", target.database, target.display) if part]


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(settings, app_env="production"))
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_ready_in_production_names_only_the_kind_of_database(
    production: httpx.AsyncClient, database_url: str
) -> None:
    response = await production.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": [
            {"name": "database", "ok": True, "detail": f"{KIND} answers"},
            {"name": "schema", "ok": True, "detail": f"schema version {LATEST_VERSION} of {LATEST_VERSION}"},
        ],
    }
    for part in revealing_parts(database_url):
        assert part not in response.text


async def test_ready_in_production_before_connecting_says_so_without_the_host(
    settings: Settings, database_url: str
) -> None:
    app = create_app(dataclasses.replace(settings, app_env="production"))  # no lifespan: never connects
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json()["checks"] == [{"name": "database", "ok": False, "detail": f"not connected to {KIND} yet"}]
    for part in revealing_parts(database_url):
        assert part not in response.text


async def test_ready_in_development_names_where_the_database_is(client: httpx.AsyncClient, database_url: str) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"][0]["detail"] == f"{parse_database_url(database_url).display} answers"
