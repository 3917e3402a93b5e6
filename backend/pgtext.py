"""SQL text on PostgreSQL, handed to asyncpg as it is.

`databases` turns every query, plain text included, into a SQLAlchemy construct,
compiles it on every call and wraps every row; on the API's hot path that cost
as much CPU as the round trip itself (docs/performance.md). Here SQL text with
`:name` parameters is rewritten once to asyncpg's `$1, $2...` and run on the
connection `databases` holds for the current task, so its pool, its
transactions and backend/database.py's error handling stay as they are.
SQLAlchemy constructs still go through `databases`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import asyncpg
import databases
from sqlalchemy.sql import ClauseElement

# The rule of SQLAlchemy's text(): `:name`, not `::type` casts nor `\:` escapes.
_PARAMETER: Final = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


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


class Record(asyncpg.Record):  # type: ignore[misc]
    """asyncpg's row; `row._mapping` works as on a `databases` row."""

    @property
    def _mapping(self) -> Record:
        return self


class DirectPostgres:
    """The read/write calls of `databases.Database`, with SQL text sent straight to asyncpg."""

    def __init__(self, database: databases.Database) -> None:
        self._database = database

    async def fetch_all(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> list[Any]:
        if not isinstance(query, str):
            return list(await self._database.fetch_all(query, values))
        sql, args = _bind(query, values)
        async with self._database.connection() as connection:
            return list(await connection.raw_connection.fetch(sql, *args, record_class=Record))

    async def fetch_one(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> Any:
        if not isinstance(query, str):
            return await self._database.fetch_one(query, values)
        sql, args = _bind(query, values)
        async with self._database.connection() as connection:
            return await connection.raw_connection.fetchrow(sql, *args, record_class=Record)

    async def fetch_val(self, query: ClauseElement | str, values: dict[str, Any] | None = None) -> Any:
        if not isinstance(query, str):
            return await self._database.fetch_val(query, values)
        sql, args = _bind(query, values)
        async with self._database.connection() as connection:
            return await connection.raw_connection.fetchval(sql, *args)


def _bind(query: str, values: dict[str, Any] | None) -> tuple[str, list[Any]]:
    sql, names = numbered(query)
    return sql, [(values or {})[name] for name in names]
