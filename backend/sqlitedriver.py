"""The embedded SQLite database through `databases` (aiosqlite), by its public API only.

`databases` opens a connection per task and keeps a transaction's statements
on it, which is all SQLite needs: there is no server, no pool and no pooler.
Statements are the same SQL text as on PostgreSQL (backend/queries.py), with
`:name` parameters that `databases` binds. SQLite has no time type: a time is
stored as UTC text in SQLAlchemy's layout, which sorts in time order (and
Python 3.12 deprecates sqlite3's implicit datetime adapter).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import databases

from backend.dberrors import LOST, SLOW, Call, Failure, sqlite_busy
from backend.dburl import DatabaseTarget
from backend.settings import Settings

logger = logging.getLogger(__name__)


class SqliteDriver:
    """Statements on an SQLite file, each task on a connection of its own."""

    dialect = "sqlite"

    def __init__(self, target: DatabaseTarget, settings: Settings) -> None:
        assert target.sqlite_path is not None
        self.target = target
        self._path = target.sqlite_path
        # How long a statement waits for another connection's write lock: SQLite's line.
        self._database = databases.Database(target.url, timeout=settings.db_pool_timeout)

    @property
    def is_connected(self) -> bool:
        return self._database.is_connected

    async def connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await self._database.connect()
        try:
            # WAL lets readers run beside a writer; the mode persists in the file.
            await self._database.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            await self._database.disconnect()
            raise

    async def disconnect(self, grace: float) -> None:
        if not self._database.is_connected:
            return
        try:
            async with asyncio.timeout(grace):
                await self._database.disconnect()
        except TimeoutError:
            logger.warning("Closing the SQLite database took over %gs", grace)

    async def run(self, call: Call, query: str, values: dict[str, Any] | None) -> Any:
        values = _as_sqlite(values)
        if call == "fetch":
            return await self._database.fetch_all(query, values)
        if call == "fetchrow":
            return await self._database.fetch_one(query, values)
        if call == "fetchval":
            return await self._database.fetch_val(query, values)
        await self._database.execute(query, values)
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._database.transaction():
            yield

    def failure(self, error: BaseException) -> Failure | None:
        """A busy or unreadable file is worth another try; any other SQLite error is the query's."""
        if isinstance(error, TimeoutError):
            return Failure(SLOW, never_ran=False)
        if isinstance(error, sqlite3.OperationalError) and (sqlite_busy(error) or _unreadable(error)):
            return Failure(LOST, never_ran=False)
        if isinstance(error, OSError):
            return Failure(LOST, never_ran=False)
        return None

    def recover(self, failure: Failure, error: BaseException) -> None:
        """Nothing to renew: the next statement opens the file again."""

    def describe(self) -> str:
        return "write-ahead log"


def _as_sqlite(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return values
    return {name: _utc_text(value) if isinstance(value, datetime) else value for name, value in values.items()}


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _unreadable(error: sqlite3.OperationalError) -> bool:
    """The file could not be read this time (moved, on a disk that hiccuped): the next statement opens it again."""
    message = str(error)
    return "unable to open" in message or "disk I/O" in message
