"""Prepared statements on one PostgreSQL connection: named uniquely, or unnamed for a pooler.

SQL text with `:name` parameters is rewritten once to asyncpg's `$1, $2...`
and prepared once per connection with asyncpg's public `prepare()`; later
calls run the kept statement, one round trip each (docs/performance.md).
asyncpg's own statement cache is off (`statement_cache_size=0`), so asyncpg
itself names nothing: every name on the server is one we chose.

Two ways to keep a statement, `NAMED` and `UNNAMED`:

- `NAMED` (a direct connection, or a pooler that keeps prepared statements,
  such as PgBouncer 1.21+ with `max_prepared_statements`, Neon's among them):
  the server keeps the statement and its plan; each run sends Bind/Execute.
  Each name holds a random part drawn per connection: behind a transaction
  pooler a statement outlives its client on the server connection it was
  prepared on, and asyncpg's names (`__asyncpg_stmt_1__`...) repeat in every
  process, so a restarted process could run another's `DELETE` by name.
- `UNNAMED` (a transaction pooler that does not keep them: PgBouncer before
  1.21, Supabase's Supavisor): asyncpg re-sends the text (Parse) with every
  Bind/Execute in one message, still one round trip, and nothing is left
  on the server to collide with. A pooler hands each such message to one
  server connection whole, so no other client's statement can be bound.
  asyncpg's answer to poolers, `statement_cache_size=0` alone, prepares again
  on every call: two round trips each.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import uuid
from typing import Any, Final

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

NAMED: Final = "named"
UNNAMED: Final = "unnamed"

# The rule of SQLAlchemy's text(): `:name`, not `::type` casts nor `\:` escapes.
_PARAMETER: Final = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
# An unnamed statement is described once and then trusted: describe it again now and then,
# as asyncpg does with its own cache, so a changed column type is seen within minutes.
_UNNAMED_LIFETIME: Final = 300.0


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `:name` parameters as `$n`, and the names in `$n` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAMETER.sub(number, sql), tuple(names)


def arguments(sql: str, values: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """The statement for asyncpg and its arguments in `$n` order."""
    text, names = numbered(sql)
    return text, [(values or {})[name] for name in names]


class Record(asyncpg.Record):  # type: ignore[misc]
    """asyncpg's row; `row._mapping` works as on a `databases` row."""

    @property
    def _mapping(self) -> Record:
        return self


class Statements:
    """The statements prepared on one connection, and the names it gives them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._prefix = f"__todo_{uuid.uuid4().hex}_"
        self._count = itertools.count(1)
        self._kept: dict[str, tuple[PreparedStatement, float]] = {}
        self.mode = NAMED

    async def get(self, connection: asyncpg.Connection, sql: str, mode: str) -> PreparedStatement:
        """The statement for `sql`, prepared now if this connection has not kept it (or kept it another way)."""
        if mode != self.mode:
            self.forget()
            self.mode = mode
        kept = self._kept.get(sql)
        if kept is not None and (mode == NAMED or time.monotonic() - kept[1] < _UNNAMED_LIFETIME):
            return kept[0]
        name = f"{self._prefix}{next(self._count):x}" if mode == NAMED else ""
        statement = await connection.prepare(sql, name=name, record_class=Record)
        if self._limit > 0:
            if len(self._kept) >= self._limit:
                self.forget()
            self._kept[sql] = (statement, time.monotonic())
        return statement

    def forget(self, sql: str | None = None) -> None:
        """Drop one kept statement, or all; asyncpg closes a dropped named one on the server later."""
        if sql is None:
            self._kept.clear()
        else:
            self._kept.pop(sql, None)
