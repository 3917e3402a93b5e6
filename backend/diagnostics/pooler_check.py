"""Is there a transaction pooler between us and PostgreSQL, and does it keep prepared statements?

No URL has to say so: `inv env-check` asks the database itself, with two
connections opened as the server opens them. A direct connection (or a
session pooler) keeps one backend for its whole life, so:

1. the first connection prepares a named statement and runs it (pid A);
2. the second opens a transaction: a transaction pooler hands it a free
   server connection, often A itself, which the first just gave back;
3. while it is held, the first runs its statement again, by name.

Through a transaction pooler the second got A, or the first now runs on
another backend: each is impossible on a direct connection. The statement
either ran there (the pooler prepared it again: PgBouncer 1.21+ with
`max_prepared_statements`, as Neon's) or was refused (`does not exist`:
unnamed statements are what works). With a single server connection the
first waits for the second instead: that the statements share it tells the
pooler apart, not whether it keeps statements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg

from backend.dburl import DatabaseTarget
from backend.diagnostics.results import Result, ok, warn

CHECK: Final = "pooler"
_HOLD: Final = 0.5  # how long the second connection holds its server before giving it back
_PID: Final = "SELECT pg_backend_pid()"


@dataclasses.dataclass(frozen=True)
class PoolerFinding:
    found: bool  # two statements of one connection ran on different backends, or two connections on one
    keeps_statements: bool | None  # None: not found, or it could not be told


async def find_pooler(open_connection: Callable[[], Awaitable[asyncpg.Connection]]) -> PoolerFinding:
    """Run the three steps above; close both connections."""
    first = await open_connection()
    try:
        second = await open_connection()
        try:
            return await _probe(first, second)
        finally:
            await second.close()
    finally:
        await first.close()


async def _probe(first: asyncpg.Connection, second: asyncpg.Connection) -> PoolerFinding:
    statement = await first.prepare(_PID, name=f"__todo_check_{uuid.uuid4().hex}")
    before = await statement.fetchval()
    transaction = second.transaction()
    await transaction.start()
    held = await second.fetchval(_PID)
    again = asyncio.ensure_future(statement.fetchval())
    try:
        finished, _ = await asyncio.wait({again}, timeout=_HOLD)
        await transaction.commit()
        after = await again
    except asyncpg.exceptions.InvalidSQLStatementNameError:
        return PoolerFinding(found=True, keeps_statements=False)
    finally:
        again.cancel()
    if held == before or after != before:
        # It waited for the one server connection the second held: shared, but nothing ran elsewhere.
        keeps = None if not finished else after != before
        return PoolerFinding(found=True, keeps_statements=keeps)
    return PoolerFinding(found=False, keeps_statements=None)


def pooler_result(target: DatabaseTarget, finding: PoolerFinding) -> Result | None:
    """What env-check says about it: fine as the URL stands, or what to add; nothing for a plain direct one."""
    if not finding.found:
        if target.pooled:
            return ok(CHECK, f"DATABASE_URL names a transaction pooler ({target.pooler}); it acts like a direct one")
        return None
    if finding.keeps_statements:
        return ok(
            CHECK,
            "a transaction pooler that keeps prepared statements (PgBouncer 1.21+ max_prepared_statements):"
            " one round trip per statement with named statements",
        )
    if not target.named_statements:
        named = f" ({target.pooler})" if target.pooler else ""
        return ok(CHECK, f"a transaction pooler{named}: statements are sent unnamed, as it needs")
    found = "client connections take turns on its server connections"
    refused = " and it does not keep prepared statements" if finding.keeps_statements is False else ""
    return warn(
        CHECK,
        code="DB_POOLER_UNDECLARED",
        message=f"DATABASE_URL leads to a transaction pooler ({found}){refused}; the server switches to unnamed"
        " statements on the first statement it refuses",
        fix="add ?pgbouncer=true to DATABASE_URL so the server starts with unnamed statements",
    )
