"""The database: one interface over a driver per engine, and the rules for trying again.

`Database` is what the app, the queries, the migrations and the diagnostics
use. Behind it, one driver per engine, chosen here and nowhere else:
backend/pgdriver.py (PostgreSQL through asyncpg: our pool with its fair line,
prepared statements named uniquely or unnamed for a pooler) and
backend/sqlitedriver.py (the embedded SQLite file through `databases`). A
driver runs statements and says what an error means (`backend.dberrors.Failure`);
the rules below decide what happens next, the same for both:

- A statement that failed because the connection or the database went away
  (`pg_terminate_backend`, a restart, Neon's suspend, SQLite's busy file) is
  tried once more, on a fresh connection, when that cannot apply a change
  twice: a read, or a write the driver proves never ran. Otherwise 503
  DATABASE_UNAVAILABLE: it may or may not have committed, so never a false
  2xx and never a duplicate.
- A statement a transaction pooler refused by name, or whose kept plan no
  longer fits its table, never ran: the driver switches to what works and it
  is tried once more, read or write. Inside a transaction the whole
  transaction is lost instead: 503 DATABASE_POOLER_SWITCHED, or, for the
  migrations (`run_transaction`), the transaction is run again from the start.
- Slow is not gone: a statement past DB_QUERY_TIMEOUT, or a request that
  waited DB_POOL_TIMEOUT in line for a connection, answers 503 at once; a
  second try would double the wait.
- Inside a transaction nothing is retried statement by statement.

docs/deployment.md has the figures; docs/architecture.md the shape.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol, TypeVar

from backend.dberrors import POOLER, STALE_PLAN, Call, Failure, classify
from backend.dburl import DatabaseTarget, parse_database_url
from backend.errors import ServiceUnavailableError
from backend.settings import Settings

logger = logging.getLogger(__name__)

Row = Any  # a row: row[0], row["column"] and row._mapping work on both engines
T = TypeVar("T")

# Set while `Database.transaction()` runs in this task: no retries inside it.
_IN_TRANSACTION: contextvars.ContextVar[bool] = contextvars.ContextVar("in_transaction", default=False)

# Startup retries: a refused connection costs nothing, so look again often; the
# first request after the database comes back waits at most this long.
_RETRY_FIRST: Final = 0.25
_RETRY_CEILING: Final = 1.0
_RETRY_LOG_EVERY: Final = 10.0


class Driver(Protocol):
    """What an engine's driver does for `Database`."""

    dialect: str
    target: DatabaseTarget

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self, grace: float) -> None: ...

    async def run(self, call: Call, query: str, values: dict[str, Any] | None) -> Any: ...

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    def failure(self, error: BaseException) -> Failure | None: ...

    def recover(self, failure: Failure, error: BaseException) -> None: ...

    def describe(self) -> str: ...


# Each engine's driver, by dialect: its module is imported only when chosen (or preloaded).
_DRIVERS: Final = {
    "sqlite": ("backend.sqlitedriver", "SqliteDriver"),
    "postgresql": ("backend.pgdriver", "PostgresDriver"),
}


def driver_module(target: DatabaseTarget) -> str:
    """The module of the driver for `target`: asyncpg's, or `databases` (and SQLAlchemy) for SQLite."""
    return _DRIVERS[target.dialect][0]


def driver_for(target: DatabaseTarget, settings: Settings) -> Driver:
    """The one place that chooses between the engines; the other's library is never loaded."""
    module, name = _DRIVERS[target.dialect]
    driver: Driver = getattr(importlib.import_module(module), name)(target, settings)
    return driver


class Database:
    """Statements with timeouts and retries, built from settings."""

    def __init__(self, settings: Settings) -> None:
        self.target: DatabaseTarget = parse_database_url(settings.database_url)
        self.dialect = self.target.dialect
        self._settings = settings
        self._driver: Driver | None = None
        self._pool_size = settings.db_pool_size
        self._pool_timeout = settings.db_pool_timeout

    @property
    def driver(self) -> Driver:
        """The engine's driver, built at first use: its library is imported then, unless preloaded."""
        if self._driver is None:
            self._driver = driver_for(self.target, self._settings)
        return self._driver

    @property
    def is_connected(self) -> bool:
        return self._driver is not None and self._driver.is_connected

    def describe(self) -> str:
        """How it talks to the database, for the startup log."""
        return self.driver.describe()

    async def connect(self) -> None:
        """Open the connections (check one works); raise the driver's error."""
        await self.driver.connect()

    async def connect_with_retry(self, budget: float) -> None:
        """Connect; retry transient failures with backoff and jitter for up to `budget` seconds.

        Raise `DatabaseUnreachableError` naming the cause on a permanent failure,
        or on a transient one that outlasts the budget.
        """
        deadline = time.monotonic() + budget
        said = _RetryLog()
        for attempt in itertools.count(1):
            try:
                await self.connect()
                return
            except Exception as error:  # classified below; unknown causes are permanent
                failure = classify(error, self.target)
                remaining = deadline - time.monotonic()
                if not failure.transient or remaining <= 0:
                    raise failure from error
            delay = min(_RETRY_FIRST * 2 ** (attempt - 1), _RETRY_CEILING)
            wait = min(delay * random.uniform(0.5, 1.0), remaining)  # noqa: S311 - jitter, not a secret
            said.attempt(attempt, failure.code, failure.message, wait)
            await asyncio.sleep(wait)

    async def disconnect(self) -> None:
        """Close the connections; those still busy after DB_POOL_TIMEOUT are cut."""
        if self._driver is not None:
            await self._driver.disconnect(self._pool_timeout)

    async def fetch_all(self, query: str, values: dict[str, Any] | None = None) -> list[Row]:
        return list(await self._run("fetch", query, values))

    async def fetch_one(self, query: str, values: dict[str, Any] | None = None) -> Row | None:
        return await self._run("fetchrow", query, values)

    async def fetch_val(self, query: str, values: dict[str, Any] | None = None) -> Any:
        return await self._run("fetchval", query, values)

    async def execute(self, query: str, values: dict[str, Any] | None = None) -> None:
        await self._run("execute", query, values)

    async def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in order (inside the caller's transaction)."""
        for statement in statements:
            await self.execute(statement)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one transaction on one connection; roll back on error."""
        token = _IN_TRANSACTION.set(True)
        try:
            async with self._translate_errors(), self.driver.transaction():
                yield
        finally:
            _IN_TRANSACTION.reset(token)

    async def run_transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` in a transaction; run once more from the start if a pooler refused a statement in it.

        Such a statement never ran and the transaction rolled back, so nothing
        of the first run remains: the second starts as the first did.
        """
        try:
            async with self.transaction():
                return await work()
        except ServiceUnavailableError as error:
            if error.code != "DATABASE_POOLER_SWITCHED":
                raise
        async with self.transaction():
            return await work()

    async def _run(self, call: Call, query: str, values: dict[str, Any] | None) -> Any:
        """One statement, tried again once when the rules in the module docstring allow."""
        for attempt in (1, 2):
            try:
                return await self.driver.run(call, query, values)
            except Exception as error:
                failure = self.driver.failure(error)
                if failure is None:
                    raise
                self.driver.recover(failure, error)
                if attempt == 2 or _IN_TRANSACTION.get() or not failure.retryable(_is_read(query)):
                    raise self._unavailable(failure, error) from error
                logger.warning("%s", _retry_reason(failure, error))
        raise AssertionError("unreachable")

    def _unavailable(self, failure: Failure, error: BaseException) -> ServiceUnavailableError:
        if failure.busy:
            return self._busy()
        if failure.kind in (POOLER, STALE_PLAN):
            return ServiceUnavailableError(
                "A transaction pooler between the server and the database refused a prepared statement, so"
                " this request did not run; the server now sends statements that work through it: retry",
                code="DATABASE_POOLER_SWITCHED",
            )
        logger.warning("Database unavailable: %s: %s", type(error).__name__, error)
        return ServiceUnavailableError("The database is unavailable right now; retry shortly")

    def _busy(self) -> ServiceUnavailableError:
        logger.warning(
            "Every database connection (DB_POOL_SIZE=%d) stayed busy for %gs; answered 503."
            " Look for slow queries, or raise DB_POOL_SIZE or WORKERS",
            self._pool_size,
            self._pool_timeout,
        )
        connections = f"{self._pool_size} database connection{'s' if self._pool_size != 1 else ''}"
        return ServiceUnavailableError(
            f"The server's {connections} stayed busy for {self._pool_timeout:g}s; retry shortly"
        )

    @asynccontextmanager
    async def _translate_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except Exception as error:
            failure = self.driver.failure(error)
            if failure is None:
                raise
            self.driver.recover(failure, error)
            raise self._unavailable(failure, error) from error


class _RetryLog:
    """One line per startup attempt at first, then one every `_RETRY_LOG_EVERY` seconds or when the cause changes."""

    def __init__(self) -> None:
        self._last_code = ""
        self._last_said = 0.0

    def attempt(self, attempt: int, code: str, message: str, wait: float) -> None:
        now = time.monotonic()
        if attempt > 3 and code == self._last_code and now - self._last_said < _RETRY_LOG_EVERY:
            return
        self._last_code, self._last_said = code, now
        logger.warning("Database not ready (attempt %d, %s: %s); retrying in %.1fs", attempt, code, message, wait)


def _retry_reason(failure: Failure, error: BaseException) -> str:
    if failure.kind == POOLER:
        return "A transaction pooler refused a prepared statement, so it never ran; retrying once, unnamed"
    if failure.kind == STALE_PLAN:
        return "A kept prepared statement no longer fits its table (a migration?), so it never ran; retrying once"
    return f"Database connection lost ({type(error).__name__}: {error}); retrying once on a fresh connection"


def _is_read(query: str) -> bool:
    return query.lstrip()[:6].upper() == "SELECT"
