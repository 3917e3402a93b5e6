"""Real faults for a PostgreSQL the test controls: row and table locks, killed connections.

A request is made slow with a real lock, not a sleep: `TableLock` holds
`LOCK TABLE tasks` in an open transaction on its own connection, so every
statement the server sends to that table waits until `release()`.
`wait_for_waiters` tells when the server's statements are blocked on it.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

WAIT_TIMEOUT = 20.0


class TableLock:
    """`LOCK TABLE <table>` held in a transaction on a connection of its own."""

    def __init__(self, url: str, table: str = "tasks") -> None:
        self.url = url
        self.table = table
        self.connection: asyncpg.Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    @property
    def pid(self) -> int:
        assert self.connection is not None
        return int(self.connection.get_server_pid())

    async def acquire(self) -> TableLock:
        self.connection = await asyncpg.connect(self.url)
        self._transaction = self.connection.transaction()
        await self._transaction.start()
        await self.connection.execute(f'LOCK TABLE "{self.table}" IN ACCESS EXCLUSIVE MODE')
        return self

    async def release(self) -> None:
        """Roll back (nothing was changed), which lets the blocked statements run."""
        if self._transaction is not None:
            await self._transaction.rollback()
            self._transaction = None
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    async def __aenter__(self) -> TableLock:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def lock_waiters(url: str) -> int:
    """How many statements of other sessions wait for a lock in this database."""
    connection = await asyncpg.connect(url)
    try:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return int(waiting)


async def wait_for_waiters(url: str, count: int, within: float = WAIT_TIMEOUT) -> None:
    """Return once `count` statements wait for a lock (the requests are in flight, blocked)."""
    deadline = time.monotonic() + within
    while (waiting := await lock_waiters(url)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting} statements wait for a lock after {within}s, expected {count}")
        await asyncio.sleep(0.05)


async def terminate_backends(url: str, *, spare: tuple[int, ...] = ()) -> int:
    """`pg_terminate_backend` every other connection to this database (but `spare`); how many."""
    connection = await asyncpg.connect(url)
    try:
        killed = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND NOT pid = ANY($1::int[])",
            list(spare),
        )
    finally:
        await connection.close()
    return sum(1 for row in killed if row[0])


async def stored_rows(url: str, user: str) -> list[tuple[int, str]]:
    """(id, title) of the user's tasks, as the database has them."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT id, title FROM tasks WHERE user_id = $1 ORDER BY id", user)
    finally:
        await connection.close()
    return [(int(row["id"]), str(row["title"])) for row in rows]
