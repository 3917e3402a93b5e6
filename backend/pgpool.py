"""Our PostgreSQL connections: a fair line in front of at most `size` of them.

We keep the asyncpg connections ourselves (asyncpg's public `connect()`),
for three reasons docs/architecture.md details:

- **Fairness.** asyncpg's pool is not fair: a connection released while the
  woken waiter has not yet run goes to whoever asks next, and under load (64
  clients, 10 connections) some requests waited 1.8 s while others never
  waited: the p99 was that queue. Here a released connection is handed to
  the first waiter in line, directly: nobody can jump ahead.
- **Prepared statements that outlive a request.** asyncpg's pool refuses a
  statement prepared before the connection went back to it, so a pool of its
  own could keep no statement across requests without its cache, whose names
  repeat in every process (backend/pgstatements.py).
- **Two waits, two limits.** Waiting in line for a busy pool (`wait_timeout`,
  DB_POOL_TIMEOUT) is not opening a new connection (DB_CONNECT_TIMEOUT, which a
  waking Neon compute needs ~10 s for): each has its own limit.

No idle floor: a connection idle for `idle_lifetime` is closed, so an idle
server holds none open. `expire()` retires every connection after one was
found cut: idle ones now, busy ones when they come back. Connections we
retire are closed in tasks we keep and await, never left to fail unseen.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg

from backend.pgstatements import Statements

logger = logging.getLogger(__name__)

IDLE_LIFETIME: Final = 300.0  # asyncpg's own pool default


class PoolBusyError(Exception):
    """No connection became free within the wait timeout."""


class PoolClosedError(Exception):
    """The pool is closing: the server is shutting down."""


class Pooled:
    """One open connection, the statements it keeps, and when it was opened."""

    def __init__(self, connection: asyncpg.Connection, generation: int, statement_limit: int) -> None:
        self.connection = connection
        self.generation = generation
        self.statements = Statements(statement_limit)
        self.idle_timer: asyncio.TimerHandle | None = None


# A waiter is handed either a connection, or None: a free place to open one in.
Handoff = Pooled | None


class ConnectionPool:
    """At most `size` connections; who waits is served first come, first served."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        size: int,
        wait_timeout: float,
        statement_limit: int = 100,
        idle_lifetime: float = IDLE_LIFETIME,
    ) -> None:
        self._connect = connect
        self.size = size
        self.wait_timeout = wait_timeout
        self._statement_limit = statement_limit
        self._idle_lifetime = idle_lifetime
        self._idle: collections.deque[Pooled] = collections.deque()
        self._busy: set[Pooled] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[Handoff]] = collections.deque()
        self._generation = 0
        self._closing = False
        self._released = asyncio.Event()
        self._closers: set[asyncio.Task[None]] = set()

    @property
    def open_count(self) -> int:
        return len(self._idle) + len(self._busy) + self._opening

    async def acquire(self) -> Pooled:
        """A connection for this task; wait in line up to `wait_timeout`, then `PoolBusyError`."""
        if self._closing:
            raise PoolClosedError
        if not self._waiters:
            while self._idle:
                pooled = self._idle.pop()
                if not pooled.connection.is_closed():
                    return self._take(pooled)
                self._retire(pooled)  # cut while idle (a suspended Neon compute): no use trying it
            if self.open_count < self.size:
                self._opening += 1
                return await self._open()
        handoff = await self._wait_in_line()
        return self._take(handoff) if handoff is not None else await self._open()

    def release(self, pooled: Pooled) -> None:
        """Give the connection back: to the first in line, else to the idle ones; closed if it must be."""
        self._busy.discard(pooled)
        self._released.set()
        if self._spent(pooled):
            self._retire(pooled)
            self._pass_place_on()
        elif not self._hand_over(pooled):
            self._idle.append(pooled)
            pooled.idle_timer = asyncio.get_running_loop().call_later(self._idle_lifetime, self._close_idle, pooled)

    def expire(self) -> None:
        """Retire every connection open now: the idle ones at once, the busy ones when released."""
        self._generation += 1
        while self._idle:
            self._retire(self._idle.pop())

    async def close(self, grace: float) -> None:
        """Wait up to `grace` seconds for busy connections to come back, then cut the rest; close everything."""
        self._closing = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosedError())
        self.expire()
        try:
            async with asyncio.timeout(grace):
                while True:
                    self._released.clear()
                    if not (self._busy or self._opening):
                        break
                    await self._released.wait()
        except TimeoutError:
            logger.warning("Closing the database connections took over %gs; the busy ones were cut", grace)
        for pooled in list(self._busy):
            pooled.connection.terminate()
        self._busy.clear()
        if self._closers:
            await asyncio.wait(list(self._closers))

    def _spent(self, pooled: Pooled) -> bool:
        """Not to be used again: expired, closing, cut, or left in a transaction (by a cancelled task)."""
        connection = pooled.connection
        if self._closing or pooled.generation != self._generation:
            return True
        return bool(connection.is_closed() or connection.is_in_transaction())

    def _take(self, pooled: Pooled) -> Pooled:
        if pooled.idle_timer is not None:
            pooled.idle_timer.cancel()
            pooled.idle_timer = None
        self._busy.add(pooled)
        return pooled

    async def _open(self) -> Pooled:
        """Open a connection in a place already counted in `_opening`; give the place on if it fails."""
        try:
            connection = await self._connect()
        except BaseException:
            self._opening -= 1
            self._released.set()
            self._pass_place_on()
            raise
        self._opening -= 1
        return self._take(Pooled(connection, self._generation, self._statement_limit))

    async def _wait_in_line(self) -> Handoff:
        waiter: asyncio.Future[Handoff] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait_timeout):
                return await waiter
        except TimeoutError:
            self._give_up(waiter)
            raise PoolBusyError from None
        except BaseException:
            self._give_up(waiter)
            raise

    def _give_up(self, waiter: asyncio.Future[Handoff]) -> None:
        """Leave the line; what was handed over just as we gave up goes to the next one, never lost."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        handoff = waiter.result()
        if handoff is None:
            self._opening -= 1
            self._pass_place_on()
        else:
            self.release(handoff)

    def _hand_over(self, pooled: Pooled) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._busy.add(pooled)  # counted from now: nobody may open one more in its place
                waiter.set_result(pooled)
                return True
        return False

    def _pass_place_on(self) -> None:
        """A connection closed: the first in line may open one in its place."""
        while self._waiters and self.open_count < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._opening += 1
                waiter.set_result(None)
                return

    def _close_idle(self, pooled: Pooled) -> None:
        pooled.idle_timer = None
        with contextlib.suppress(ValueError):
            self._idle.remove(pooled)
            self._retire(pooled)

    def _retire(self, pooled: Pooled) -> None:
        if pooled.idle_timer is not None:
            pooled.idle_timer.cancel()
            pooled.idle_timer = None
        closer = asyncio.get_running_loop().create_task(_close_quietly(pooled.connection))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)


async def _close_quietly(connection: asyncpg.Connection) -> None:
    """Close politely when the connection still works; cut it when it does not (a cut socket, a dead server)."""
    if connection.is_closed():
        return
    try:
        async with asyncio.timeout(2.0):
            await connection.close()
    except (Exception, asyncio.CancelledError):
        connection.terminate()
