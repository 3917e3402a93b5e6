"""Databases of the tests' own on the suite's PostgreSQL, and the URL an app is given for one."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import asyncpg

from tests.support.pgbouncer import PgBouncer


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


def app_url(url: str, pooler: PgBouncer | None) -> str:
    """The URL an app or server gets for the database at `url`: through the suite's pooler when there is one."""
    if pooler is None:
        return url
    return pooler.url(urlsplit(url).path.lstrip("/"))
