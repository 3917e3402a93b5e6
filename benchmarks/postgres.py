"""The benchmark's PostgreSQL: the machine's server, or a throwaway cluster.

BENCH_DATABASE_URL (else TEST_DATABASE_URL) names an admin URL on which the
benchmark creates its own `todo_bench_*` databases and drops them afterwards;
without either, tests/support/pgcluster.py starts a cluster in a temporary
folder. Each server under test gets its own database with the same schema
(our migrations) and the same seed, reset before every scenario so that
creates in one scenario cannot slow the lists of the next.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType

import asyncpg

from backend.migrations import migrate
from backend.settings import Settings
from tests.support import pgcluster

USERS = ("alice", "bob")
TASKS_PER_USER = 100


class BenchPostgres:
    """`with BenchPostgres() as pg`: `pg.create()` makes a migrated database; all are dropped on exit."""

    def __init__(self) -> None:
        self.admin_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or ""
        self.cluster: pgcluster.PostgresCluster | None = None
        self.names: list[str] = []

    def __enter__(self) -> BenchPostgres:
        if not self.admin_url:
            self.cluster = pgcluster.PostgresCluster()
            self.cluster.start()
            self.admin_url = self.cluster.url()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for name in self.names:
            asyncio.run(_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if self.cluster is not None:
            self.cluster.remove()

    @property
    def where(self) -> str:
        return "throwaway cluster (initdb, fsync off)" if self.cluster else "the machine's server"

    def create(self, label: str) -> str:
        """A new database with our schema applied; its URL."""
        name = f"todo_bench_{label}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(self.admin_url, f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        url = f"{self.admin_url.rpartition('/')[0]}/{name}"
        asyncio.run(migrate(Settings(database_url=url)))
        return url

    def server_version(self) -> str:
        return asyncio.run(_fetch_val(self.admin_url, "SHOW server_version"))


def reseed(url: str) -> dict[str, list[int]]:
    """Empty the tasks table and insert the seed; the task ids of each user."""
    return asyncio.run(_reseed(url))


async def _reseed(url: str) -> dict[str, list[int]]:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE tasks RESTART IDENTITY")
        start = datetime.now(UTC) - timedelta(days=1)
        rows = [
            (user, f"Task {n} of {user}", "Seeded for the benchmark", n % 3 == 0, start + timedelta(seconds=n))
            for user in USERS
            for n in range(TASKS_PER_USER)
        ]
        await connection.executemany(
            "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $5)",
            rows,
        )
        await connection.execute("ANALYZE tasks")
        ids: dict[str, list[int]] = {}
        for record in await connection.fetch("SELECT user_id, id FROM tasks ORDER BY id"):
            ids.setdefault(record["user_id"], []).append(record["id"])
        return ids
    finally:
        await connection.close()


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _fetch_val(url: str, sql: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval(sql))
    finally:
        await connection.close()
