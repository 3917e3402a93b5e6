"""The SQL the API runs: async functions over `Database`; no Request, no Response.

Every function takes the owner's `user_id` and puts it in the WHERE clause:
isolation is enforced here, in the query, not only by the endpoint's checks.
Each change is one statement, so it is atomic without an explicit transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from msgspec import UNSET

from backend.database import Database, Row
from backend.schemas import Task, TaskCreate, TaskListQuery, TaskUpdate
from backend.tables import tasks

MAX_ID: Final = 2**63 - 1  # ids beyond a BIGINT cannot exist; do not send them to the database

_STATUS_FILTERS: Final = {
    "pending": tasks.c.completed.is_(False),
    "completed": tasks.c.completed.is_(True),
}
_SORT_COLUMNS: Final[dict[str, Any]] = {
    "created_at": tasks.c.created_at,
    "updated_at": tasks.c.updated_at,
    "title": sa.func.lower(tasks.c.title),
}


async def list_tasks(db: Database, user_id: str, query: TaskListQuery) -> tuple[list[Task], int]:
    """One page of the user's tasks and the total that match, in one round trip."""
    conditions = _list_conditions(user_id, query)
    statement = (
        sa.select(tasks, sa.func.count().over().label("total_count"))
        .where(*conditions)
        .order_by(*_ordering(query.sort))
        .limit(query.limit)
        .offset(query.offset)
    )
    rows = await db.fetch_all(statement)
    if rows:
        return [_task(row) for row in rows], int(rows[0]["total_count"])
    if query.offset == 0:
        return [], 0
    # Past the last page the window count has no row to ride on.
    total = await db.fetch_val(sa.select(sa.func.count()).select_from(tasks).where(*conditions))
    return [], int(total or 0)


async def get_task(db: Database, user_id: str, task_id: int) -> Task | None:
    if not 0 < task_id <= MAX_ID:
        return None
    row = await db.fetch_one(sa.select(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id))
    return _task(row) if row is not None else None


async def create_task(db: Database, user_id: str, data: TaskCreate) -> Task:
    now = _now()
    statement = (
        sa.insert(tasks)
        .values(
            user_id=user_id,
            title=data.title,
            description=data.description,
            completed=data.completed,
            created_at=now,
            updated_at=now,
        )
        .returning(*tasks.c)
    )
    row = await db.fetch_one(statement)
    assert row is not None  # INSERT ... RETURNING always returns the row
    return _task(row)


async def update_task(db: Database, user_id: str, task_id: int, data: TaskUpdate) -> Task | None:
    values: dict[str, Any] = {"title": data.title, "updated_at": _now()}
    if data.description is not UNSET:
        values["description"] = data.description
    if data.completed is not UNSET:
        values["completed"] = data.completed
    return await _update(user_id, task_id, values, db)


async def set_completed(db: Database, user_id: str, task_id: int, completed: bool | None) -> Task | None:
    """Set `completed`, or toggle it when `completed` is None (one atomic statement)."""
    value = sa.not_(tasks.c.completed) if completed is None else completed
    return await _update(user_id, task_id, {"completed": value, "updated_at": _now()}, db)


async def delete_task(db: Database, user_id: str, task_id: int) -> bool:
    if not 0 < task_id <= MAX_ID:
        return False
    statement = sa.delete(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id).returning(tasks.c.id)
    return await db.fetch_one(statement) is not None


async def _update(user_id: str, task_id: int, values: dict[str, Any], db: Database) -> Task | None:
    if not 0 < task_id <= MAX_ID:
        return None
    statement = (
        sa.update(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id).values(**values).returning(*tasks.c)
    )
    row = await db.fetch_one(statement)
    return _task(row) if row is not None else None


def _list_conditions(user_id: str, query: TaskListQuery) -> list[Any]:
    conditions: list[Any] = [tasks.c.user_id == user_id]
    if query.status in _STATUS_FILTERS:
        conditions.append(_STATUS_FILTERS[query.status])
    if query.q:
        # The pattern is a bound value: `databases` cannot take a literal % in SQL on SQLite.
        pattern = "%" + _escape_like(query.q.lower()) + "%"
        conditions.append(
            sa.or_(
                sa.func.lower(tasks.c.title).like(pattern, escape="\\"),
                sa.func.lower(tasks.c.description).like(pattern, escape="\\"),
            )
        )
    return conditions


def _ordering(sort: str) -> list[Any]:
    descending = sort.startswith("-")
    column = _SORT_COLUMNS[sort.lstrip("-")]
    if descending:
        return [column.desc(), tasks.c.id.desc()]
    return [column.asc(), tasks.c.id.asc()]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _now() -> datetime:
    return datetime.now(UTC)


def _task(row: Row) -> Task:
    return Task(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        description=row["description"],
        completed=bool(row["completed"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
