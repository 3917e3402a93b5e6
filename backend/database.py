"""The database: the one place that touches the `databases` package.

`Database` wraps `databases.Database` (asyncpg for PostgreSQL, aiosqlite for
the embedded SQLite default) so that it could be replaced here alone. It adds
what the package lacks: URL normalisation (backend/dburl.py), pool and query
timeouts, and driver errors turned into `ServiceUnavailableError` (503) so a
dropped connection is never a 500. docs/architecture.md lists what we hit.

A connection killed under us (`pg_terminate_backend`, a database restart,
Neon's suspend) costs at most the statements in flight on it: a read that
fails that way is retried once on a fresh connection (the pool's others are
replaced too, as they were most likely killed with it); a write is retried
only when the driver proves it was never sent, otherwise it answers 503, as
it may or may not have committed: never a false 2xx, never a duplicate.
Inside a transaction nothing is retried. docs/deployment.md has the figures.

PostgreSQL: statements wait for a connection in a first-come, first-served
line. asyncpg's pool alone is not fair: its waiters sit on an `asyncio.Queue`,
and a connection released while the woken waiter has not yet run goes to
whichever request asks next; the woken one finds the queue empty and goes
back to the end. Under load (64 connections against a pool of 10) half the
requests got a connection at once and others waited up to 1.8 s: the p99 was
that queue (docs/performance.md measures it). The line, an
`asyncio.Semaphore`, serves its waiters in order and lets nobody jump ahead.
It lets half again as many requests through as the pool has connections: with
exactly as many, each released connection idled until the next waiter ran (a
pass of the event loop) and creates lost a fifth of their throughput; the few
extra already wait at the pool and take a released connection at once, and
the pool's unfair queue never holds more than they. A request that waits
longer than DB_CONNECT_TIMEOUT in the line gets 503 DATABASE_UNAVAILABLE (its
detail and the log say every connection stayed busy).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import databases
from sqlalchemy.sql import ClauseElement

from backend.dberrors import classify
from backend.dburl import DatabaseTarget, parse_database_url
from backend.errors import ServiceUnavailableError
from backend.pgtext import DirectPostgres
from backend.settings import Settings

logger = logging.getLogger(__name__)

Row = Any  # a `databases` Record: supports row["column"]
Query = ClauseElement | str
T = TypeVar("T")

# Set while `Database.transaction()` runs in this task: no retries inside it.
_IN_TRANSACTION: contextvars.ContextVar[bool] = contextvars.ContextVar("in_transaction", default=False)

# Errors that mean "the database or the connection to it is gone", as opposed
# to a bug in a query. These become a 503 with Retry-After.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    # A backend killed mid-statement can leave asyncpg's protocol in a state it
    # reports as an internal error (MagicStack/asyncpg#1069): the connection is
    # unusable, nothing more; SQLAlchemy treats it as a disconnect too.
    asyncpg.exceptions.InternalClientError,
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
        # PostgreSQL: SQL text skips SQLAlchemy's per-call compile (backend/pgtext.py).
        self._reads: Any = DirectPostgres(self._database) if self.dialect == "postgresql" else self._database
        # Longest one statement may take, waiting for a pooled connection included.
        self._budget = settings.db_connect_timeout + settings.db_query_timeout
        self._close_timeout = settings.db_connect_timeout
        self._pool_size = settings.db_pool_size
        self._turn_timeout = settings.db_connect_timeout
        # SQLite has no pool to queue for: `databases` opens a connection per use.
        self._turns: asyncio.Semaphore | None = None

    def _options(self, settings: Settings) -> dict[str, Any]:
        if self.dialect == "sqlite":
            return {"timeout": settings.db_connect_timeout}
        options: dict[str, Any] = {
            # No floor: idle connections close after asyncpg's 5 minutes, so an
            # idle server holds none open, and asyncpg has no floor to restore
            # (it logs a traceback per failed attempt while the database is down).
            "min_size": 0,
            "max_size": settings.db_pool_size,
            "timeout": settings.db_connect_timeout,
            # Server-side cancel of a query that runs too long; nothing hangs.
            "command_timeout": settings.db_query_timeout,
            # asyncpg's default reset sends RESET ALL, UNLISTEN, CLOSE ALL and an
            # advisory unlock on every release: a round trip per query. We set no
            # session state (the migration lock is transaction-scoped); asyncpg
            # still rolls back an open transaction. docs/performance.md measures it.
            "reset": _keep_session,
            "connection_class": UniquelyNamedConnection,
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
        if self.dialect == "postgresql":
            # Made here, not in __init__: a semaphore belongs to the loop it first waits on.
            self._turns = asyncio.Semaphore(self._pool_size + self._pool_size // 2)
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
        """Close the pool; connections still busy after the connect timeout are closed abruptly."""
        if not self._database.is_connected:
            return
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._database.disconnect()
        except TimeoutError:
            pool = self._pool()
            if pool is not None:
                pool.terminate()
            logger.warning("Closing the database pool took over %gs; its connections were cut", self._close_timeout)

    async def fetch_all(self, query: Query, values: dict[str, Any] | None = None) -> list[Row]:
        return list(await self._run(self._reads.fetch_all, query, values))

    async def fetch_one(self, query: Query, values: dict[str, Any] | None = None) -> Row | None:
        return await self._run(self._reads.fetch_one, query, values)

    async def fetch_val(self, query: Query, values: dict[str, Any] | None = None) -> Any:
        return await self._run(self._reads.fetch_val, query, values)

    async def execute(self, query: Query, values: dict[str, Any] | None = None) -> Any:
        return await self._run(self._database.execute, query, values)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one transaction on one connection; roll back on error."""
        async with self._turn():
            token = _IN_TRANSACTION.set(True)
            try:
                async with self._translate_errors(), self._database.transaction():
                    yield
            finally:
                _IN_TRANSACTION.reset(token)

    async def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in order (inside the caller's transaction)."""
        for statement in statements:
            await self.execute(statement)

    async def _run(
        self, call: Callable[[Query, dict[str, Any] | None], Awaitable[T]], query: Query, values: dict[str, Any] | None
    ) -> T:
        """One statement; retried once on a fresh connection when that cannot repeat a write."""
        try:
            return await self._attempt(call, query, values)
        except _CONNECTION_ERRORS as error:
            if not _is_connection_failure(error):
                raise
            await self._recover(error)
            if _IN_TRANSACTION.get() or not _retryable(query, error):
                raise self._unavailable(error) from error
            logger.warning(
                "Database connection lost (%s: %s); retrying once on a fresh connection", type(error).__name__, error
            )
        try:
            return await self._attempt(call, query, values)
        except _CONNECTION_ERRORS as error:
            if not _is_connection_failure(error):
                raise
            await self._recover(error)
            raise self._unavailable(error) from error

    async def _attempt(
        self, call: Callable[[Query, dict[str, Any] | None], Awaitable[T]], query: Query, values: dict[str, Any] | None
    ) -> T:
        # The pool has no acquire timeout of its own: with every connection busy a
        # request would queue forever. This bounds the wait (its turn, then the
        # pool's acquire, which may open a connection) plus the query.
        async with asyncio.timeout(self._budget), self._turn():
            return await call(query, values)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait in line (first come, first served) for one of the pool's connections."""
        turns = self._turns
        if turns is None or _IN_TRANSACTION.get():  # SQLite, or the transaction holds the turn
            yield
            return
        try:
            async with asyncio.timeout(self._turn_timeout):
                await turns.acquire()
        except TimeoutError:
            raise self._busy() from None
        try:
            yield
        finally:
            turns.release()

    def _busy(self) -> ServiceUnavailableError:
        logger.warning(
            "Every database connection (DB_POOL_SIZE=%d) stayed busy for %gs; answered 503."
            " Look for slow queries, or raise DB_POOL_SIZE or WORKERS",
            self._pool_size,
            self._turn_timeout,
        )
        connections = f"{self._pool_size} database connection{'s' if self._pool_size != 1 else ''}"
        return ServiceUnavailableError(
            f"The server's {connections} stayed busy for {self._turn_timeout:g}s; retry shortly"
        )

    async def _recover(self, error: BaseException) -> None:
        """After a failed statement: forget this task's connection; after a lost one, renew the pool."""
        if not _IN_TRANSACTION.get():
            # `databases` keeps one Connection per task; a release that failed on
            # a dead socket leaves it marked as acquired, and the next query would
            # trip its assertion. Setting None drops it (asyncpg closed it).
            self._database._connection = None
        pool = self._pool()
        if pool is not None and not _is_slow(error):
            # The pool's idle connections were most likely cut with this one:
            # each is replaced on its next acquire instead of failing a request.
            await pool.expire_connections()

    def _pool(self) -> asyncpg.Pool | None:
        pool = getattr(getattr(self._database, "_backend", None), "_pool", None)
        return pool if isinstance(pool, asyncpg.Pool) else None

    def _unavailable(self, error: BaseException) -> ServiceUnavailableError:
        logger.warning("Database unavailable: %s: %s", type(error).__name__, error)
        return ServiceUnavailableError("The database is unavailable right now; retry shortly")

    @asynccontextmanager
    async def _translate_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except _CONNECTION_ERRORS as error:
            if not _is_connection_failure(error):
                raise
            raise self._unavailable(error) from error


class UniquelyNamedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose prepared statements carry a name no other connection uses.

    asyncpg numbers statements `__asyncpg_stmt_1__`, `_2__`... from one counter
    per process, so every process (a restart, another worker, another instance)
    reuses the same names. Behind a transaction pooler a prepared statement
    outlives its client on the server connection it was prepared on, and a
    statement of ours executed by name on that server connection would run the
    other process's SQL with our arguments (a `DELETE` in place of a `SELECT`).
    A random part per connection makes a name match only the statement it was
    given for. SQLAlchemy's asyncpg dialect does the same for PgBouncer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._name_prefix = f"__todo_{uuid.uuid4().hex}_"
        self._name_count = itertools.count(1)

    def _get_unique_id(self, prefix: str) -> str:
        return f"{self._name_prefix}{prefix}_{next(self._name_count):x}__"


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset (see `Database._options`)."""


def _is_connection_failure(error: BaseException) -> bool:
    """False for an SQLite error that is a bug in a query rather than a busy or missing file."""
    return not isinstance(error, sqlite3.OperationalError) or _is_sqlite_busy(error)


def _retryable(query: Query, error: BaseException) -> bool:
    """Whether running `query` again cannot apply a change twice, nor wait twice for a slow one."""
    if _is_slow(error):
        return False  # slow, not gone: a second try would double the wait
    return _is_read(query) or _never_sent(error)


def _is_slow(error: BaseException) -> bool:
    return isinstance(error, TimeoutError | asyncpg.exceptions.QueryCanceledError)


def _is_read(query: Query) -> bool:
    if isinstance(query, str):
        return query.lstrip()[:6].upper() == "SELECT"
    return bool(getattr(query, "is_select", False))


def _never_sent(error: BaseException) -> bool:
    """The statement provably never reached the server (failed while connecting, or on a closed connection)."""
    if isinstance(error, asyncpg.exceptions.InterfaceError):
        return "connection is closed" in str(error)
    return isinstance(
        error,
        ConnectionRefusedError | asyncpg.exceptions.CannotConnectNowError | asyncpg.exceptions.TooManyConnectionsError,
    )


def _is_sqlite_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error)
    return "locked" in message or "unable to open" in message or "disk I/O" in message
