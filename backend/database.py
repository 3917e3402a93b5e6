"""The database: the one place that touches the `databases` package.

`Database` wraps `databases.Database` (asyncpg for PostgreSQL, aiosqlite for
the embedded SQLite default) so that it could be replaced here alone. It adds
what the package lacks: URL normalisation (backend/dburl.py), pool and query
timeouts, and driver errors turned into `ServiceUnavailableError` (503) so a
dropped connection is never a 500. docs/architecture.md lists what we hit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import databases
from sqlalchemy.sql import ClauseElement

from backend.dberrors import classify
from backend.dburl import DatabaseTarget, parse_database_url
from backend.errors import ServiceUnavailableError
from backend.settings import Settings

logger = logging.getLogger(__name__)

Row = Any  # a `databases` Record: supports row["column"]

# Errors that mean "the database or the connection to it is gone", as opposed
# to a bug in a query. These become a 503 with Retry-After.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    sqlite3.OperationalError,
)


class Database:
    """A connection pool with timeouts, built from settings."""

    def __init__(self, settings: Settings) -> None:
        self.target: DatabaseTarget = parse_database_url(settings.database_url)
        self.dialect = self.target.dialect
        self._database = databases.Database(self.target.url, **self._options(settings))

    def _options(self, settings: Settings) -> dict[str, Any]:
        if self.dialect == "sqlite":
            return {"timeout": settings.db_connect_timeout}
        options: dict[str, Any] = {
            "min_size": 1,
            "max_size": settings.db_pool_size,
            "timeout": settings.db_connect_timeout,
            # Server-side cancel of a query that runs too long; nothing hangs.
            "command_timeout": settings.db_query_timeout,
        }
        options.update(self.target.options)
        return options

    @property
    def is_connected(self) -> bool:
        return self._database.is_connected

    async def connect(self) -> None:
        """Open the pool (PostgreSQL) or check the file opens (SQLite); raise the driver's error."""
        if self.target.sqlite_path is not None:
            self.target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        await self._database.connect()
        try:
            if self.dialect == "sqlite":
                # WAL lets readers run beside a writer; the mode persists in the file.
                await self._database.execute("PRAGMA journal_mode=WAL")
            else:
                await self._database.execute("SELECT 1")
        except BaseException:
            await self.disconnect()
            raise

    async def connect_with_retry(self, budget: float) -> None:
        """Connect; retry transient failures with backoff and jitter for up to `budget` seconds.

        Raise `DatabaseUnreachableError` naming the cause on a permanent failure,
        or on a transient one that outlasts the budget.
        """
        deadline = time.monotonic() + budget
        delay = 0.25
        for attempt in itertools.count(1):
            try:
                await self.connect()
                return
            except Exception as error:  # classified below; unknown causes are permanent
                failure = classify(error, self.target)
                remaining = deadline - time.monotonic()
                if not failure.transient or remaining <= 0:
                    raise failure from error
            wait = min(delay * random.uniform(0.5, 1.5), remaining)  # noqa: S311 - jitter, not a secret
            logger.warning(
                "Database not ready (attempt %d, %s: %s); retrying in %.1fs",
                attempt,
                failure.code,
                failure.message,
                wait,
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)

    async def disconnect(self) -> None:
        if self._database.is_connected:
            await self._database.disconnect()

    async def fetch_all(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> list[Row]:
        async with self._translate_errors():
            return list(await self._database.fetch_all(query, values))

    async def fetch_one(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> Row | None:
        async with self._translate_errors():
            return await self._database.fetch_one(query, values)

    async def fetch_val(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> Any:
        async with self._translate_errors():
            return await self._database.fetch_val(query, values)

    async def execute(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> Any:
        async with self._translate_errors():
            return await self._database.execute(query, values)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one transaction on one connection; roll back on error."""
        async with self._translate_errors(), self._database.transaction():
            yield

    async def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in order (inside the caller's transaction)."""
        for statement in statements:
            await self.execute(statement)

    @asynccontextmanager
    async def _translate_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except _CONNECTION_ERRORS as error:
            if isinstance(error, sqlite3.OperationalError) and not _is_sqlite_busy(error):
                raise
            logger.warning("Database unavailable: %s: %s", type(error).__name__, error)
            raise ServiceUnavailableError("The database is unavailable right now; retry shortly") from error


def _is_sqlite_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error)
    return "locked" in message or "unable to open" in message or "disk I/O" in message
