"""What one list query costs in our process: SQLAlchemy Core vs raw SQL text vs asyncpg.

    python -m benchmarks.sqlcost            (nox -s bench -- --sqlcost)

One connection, queries one after another, so the numbers are the client's
CPU plus one loopback round trip, not the server's concurrency. `databases`
compiles a Core statement on every call; with text it only binds parameters.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import databases
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from backend.tables import tasks
from benchmarks import postgres

ROUNDS = 2000
_CORE = (
    sa.select(tasks, sa.func.count().over().label("total_count"))
    .where(tasks.c.user_id == "alice")
    .order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
    .limit(20)
    .offset(0)
)
_TEXT = (
    "SELECT id, user_id, title, description, completed, created_at, updated_at, count(*) OVER () AS total_count"
    " FROM tasks WHERE user_id = :user_id ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"
)
_NUMBERED = _TEXT.replace(":user_id", "$1").replace(":limit", "$2").replace(":offset", "$3")


def main(argv: Sequence[str]) -> int:
    with postgres.BenchPostgres() as pg:
        url = pg.create("sqlcost")
        postgres.reseed(url)
        for line in asyncio.run(_measure(url)):
            print(line)
    return 0


async def _measure(url: str) -> list[str]:
    db = databases.Database(url, min_size=1, max_size=1)
    await db.connect()
    quiet = databases.Database(url, min_size=1, max_size=1, reset=_keep_session)
    await quiet.connect()
    raw = await asyncpg.connect(url)
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    values = {"user_id": "alice", "limit": 20, "offset": 0}

    async def core() -> Any:
        return [row["title"] for row in await db.fetch_all(_CORE)]

    async def text() -> Any:
        return [row["title"] for row in await db.fetch_all(_TEXT, values)]

    async def text_quiet() -> Any:
        return [row["title"] for row in await quiet.fetch_all(_TEXT, values)]

    async def core_quiet() -> Any:
        return [row["title"] for row in await quiet.fetch_all(_CORE)]

    async def direct() -> Any:
        return [row[2] for row in await raw.fetch(_NUMBERED, "alice", 20, 0)]

    async def compile_only() -> Any:
        return _CORE.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})

    lines = [f"per list query (20 rows), median of 3 x {ROUNDS} sequential calls on one connection:"]
    for name, call in (
        ("SQLAlchemy Core compile alone", compile_only),
        ("databases + Core", core),
        ("databases + text", text),
        ("databases + Core, no reset", core_quiet),
        ("databases + text, no reset", text_quiet),
        ("asyncpg, prepared text", direct),
    ):
        lines.append(f"  {name:<32} {await _per_call(call):7.1f} us")
    await raw.close()
    await db.disconnect()
    await quiet.disconnect()
    return lines


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing (asyncpg still rolls back an open transaction)."""


async def _per_call(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(200):
        await call()
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(ROUNDS):
            await call()
        timings.append((time.perf_counter() - began) / ROUNDS * 1e6)
    return sorted(timings)[1]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
