"""PostgreSQL through asyncpg: our pool, our prepared statements, and what a failure means.

Connections come from backend/pgpool.py (the fair line), statements from
backend/pgstatements.py (named uniquely, or unnamed through a pooler that
does not keep them). This module decides which way statements are kept and
switches at run time: a plain URL may lead to a transaction pooler that no
host name gives away, and the first statement run by name on a server
connection other than the one it was prepared on says so (`prepared
statement ... does not exist`). Such a statement never ran: PostgreSQL
refuses the name before executing anything. The switch is logged once, with
the URL parameter that makes it explicit.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

from backend.dberrors import LOST, POOLER, SLOW, STALE_PLAN, Call, Failure
from backend.dburl import DatabaseTarget
from backend.pgpool import ConnectionPool, PoolBusyError, PoolClosedError, Pooled
from backend.pgstatements import NAMED, UNNAMED, arguments
from backend.settings import Settings

logger = logging.getLogger(__name__)

# The connection of the transaction this task is in, if any: its statements run there.
_TRANSACTION: contextvars.ContextVar[Pooled | None] = contextvars.ContextVar("pg_transaction", default=None)

# "The database or the connection to it is gone", as opposed to a bug in a query.
_LOST: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    # A backend killed mid-statement can leave asyncpg's protocol in a state it
    # reports as an internal error (MagicStack/asyncpg#1069): the connection is
    # unusable, nothing more; SQLAlchemy treats it as a disconnect too.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    PoolClosedError,
)
_SLOW: tuple[type[BaseException], ...] = (TimeoutError, asyncpg.exceptions.QueryCanceledError)
# `prepared statement "..." does not exist` / `already exists`: a transaction pooler in between.
_POOLER: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidSQLStatementNameError,
    asyncpg.exceptions.DuplicatePreparedStatementError,
)
# The kept plan no longer fits the table (another instance migrated): checked before anything runs.
_STALE_PLAN: tuple[type[BaseException], ...] = (asyncpg.exceptions.InvalidCachedStatementError,)


class PostgresDriver:
    """Statements on PostgreSQL, each on a connection from the fair line (or the task's transaction)."""

    dialect = "postgresql"

    def __init__(self, target: DatabaseTarget, settings: Settings) -> None:
        self.target = target
        options = dict(target.options)
        self._connect_options: dict[str, Any] = {
            "timeout": settings.db_connect_timeout,
            # Server-side cancel of a query that runs too long; nothing hangs.
            "command_timeout": settings.db_query_timeout,
            **options,
            # asyncpg names nothing itself; backend/pgstatements.py keeps the statements.
            "statement_cache_size": 0,
        }
        self._statement_limit = target.statement_limit
        self._pool_size = settings.db_pool_size
        self._wait_timeout = settings.db_pool_timeout
        self._pool: ConnectionPool | None = None
        self.mode = NAMED if target.named_statements else UNNAMED

    @property
    def is_connected(self) -> bool:
        return self._pool is not None

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def wait_timeout(self) -> float:
        return self._wait_timeout

    async def open_connection(self) -> asyncpg.Connection:
        """One connection as the server opens them (TLS, timeouts, no asyncpg statement cache)."""
        return await asyncpg.connect(self.target.url, **self._connect_options)

    async def connect(self) -> None:
        # Made here, not in __init__: the pool's line belongs to the loop that runs it.
        pool = ConnectionPool(
            self.open_connection,
            size=self._pool_size,
            wait_timeout=self._wait_timeout,
            statement_limit=self._statement_limit,
        )
        try:
            pooled = await pool.acquire()
            try:
                await pooled.connection.execute("SELECT 1")
            finally:
                pool.release(pooled)
        except BaseException:
            await pool.close(0)
            raise
        self._pool = pool

    async def disconnect(self, grace: float) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(grace)

    async def run(self, call: Call, query: str, values: dict[str, Any] | None) -> Any:
        """`call` is fetch, fetchrow, fetchval or execute; on the transaction's connection or a pooled one."""
        pooled = _TRANSACTION.get()
        if pooled is not None:
            return await self._on(pooled, call, query, values)
        pooled = await self._acquire()
        try:
            return await self._on(pooled, call, query, values)
        finally:
            self._require_pool().release(pooled)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        outer = _TRANSACTION.get()
        pooled = outer if outer is not None else await self._acquire()
        token = _TRANSACTION.set(pooled)
        try:
            async with pooled.connection.transaction():
                yield
        finally:
            _TRANSACTION.reset(token)
            if outer is None:
                self._require_pool().release(pooled)

    def failure(self, error: BaseException) -> Failure | None:
        """What `error` means for a retry, or None for an error in the query itself."""
        if isinstance(error, _POOLER):
            return Failure(POOLER, never_ran=True)
        if isinstance(error, _STALE_PLAN):
            return Failure(STALE_PLAN, never_ran=True)
        if isinstance(error, PoolBusyError):
            return Failure(SLOW, never_ran=True, busy=True)
        if isinstance(error, _SLOW):
            return Failure(SLOW, never_ran=False)
        if isinstance(error, _LOST):
            return Failure(LOST, never_ran=_never_sent(error))
        return None

    def recover(self, failure: Failure, error: BaseException) -> None:
        """Make the next attempt work: fresh connections after a lost one, another way to keep statements."""
        if failure.kind == LOST and self._pool is not None:
            # The pool's idle connections were most likely cut with this one:
            # each is replaced on its next use instead of failing a request.
            self._pool.expire()
        elif failure.kind == POOLER and self.mode == NAMED:
            self.mode = UNNAMED
            logger.warning(
                "DATABASE_URL leads to a transaction pooler that does not keep prepared statements"
                " (PostgreSQL said: %s); statements are sent unnamed from now on, still one round trip each."
                " Add ?pgbouncer=true to DATABASE_URL to start that way",
                _first_line(error),
            )

    def describe(self) -> str:
        """How statements are kept, for the startup log."""
        pooler = f"transaction pooler ({self.target.pooler}), " if self.target.pooler else ""
        kept = "named prepared statements" if self.mode == NAMED else "unnamed prepared statements"
        return f"{pooler}{kept}"

    async def _acquire(self) -> Pooled:
        return await self._require_pool().acquire()

    def _require_pool(self) -> ConnectionPool:
        if self._pool is None:
            raise PoolClosedError
        return self._pool

    async def _on(self, pooled: Pooled, call: Call, query: str, values: dict[str, Any] | None) -> Any:
        connection = pooled.connection
        if call == "execute" and not values:
            # No parameters: the simple protocol, one round trip, nothing prepared.
            await connection.execute(query)
            return None
        sql, args = arguments(query, values)
        statement = await pooled.statements.get(connection, sql, self.mode)
        try:
            return await _call(statement, call, args)
        except (*_POOLER, *_STALE_PLAN):
            pooled.statements.forget(sql)
            raise


async def _call(statement: PreparedStatement, call: Call, args: list[Any]) -> Any:
    if call == "fetch":
        return await statement.fetch(*args)
    if call == "fetchrow":
        return await statement.fetchrow(*args)
    if call == "fetchval":
        return await statement.fetchval(*args)
    await statement.fetch(*args)
    return None


def _never_sent(error: BaseException) -> bool:
    """The statement provably never reached the server (failed while connecting, or on a closed connection)."""
    if isinstance(error, asyncpg.exceptions.InterfaceError):
        return "connection is closed" in str(error)
    return isinstance(
        error,
        ConnectionRefusedError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.TooManyConnectionsError
        | PoolClosedError,
    )


def _first_line(error: BaseException) -> str:
    return str(error).strip().split("\n", 1)[0]
