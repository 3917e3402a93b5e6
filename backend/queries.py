"""The SQL the API runs: async functions over `Database`; no Request, no Response.

Every function takes the owner's `user_id` and puts it in the WHERE clause:
isolation is enforced here, in the query, not only by the endpoint's checks.
Each change is one statement, so it is atomic without an explicit transaction.

The statements are SQL text written once, valid on PostgreSQL and SQLite
alike, with named parameters; on PostgreSQL each is prepared once per
connection (backend/pgstatements.py). Text, not SQLAlchemy Core: compiling
Core on every call costs more than the round trip to PostgreSQL
(docs/performance.md has the profile). backend/tables.py is the schema's
description in Python, which a test checks against the migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from msgspec import UNSET

from backend.database import Database, Row
from backend.schemas import Task, TaskCreate, TaskListQuery, TaskUpdate

MAX_ID: Final = 2**63 - 1  # ids beyond a BIGINT cannot exist; do not send them to the database

# Rows are read by position, in this order (`_task`); the list adds total_count.
_COLUMNS: Final = "id, user_id, title, description, completed, created_at, updated_at"
_STATUS_FILTERS: Final = {"all": "", "pending": " AND NOT completed", "completed": " AND completed"}
# The pattern is a bound value: `databases` cannot take a literal % in SQL on SQLite.
_SEARCH: Final = " AND (lower(title) LIKE :pattern ESCAPE '\\' OR lower(description) LIKE :pattern ESCAPE '\\')"
_SORT_COLUMNS: Final = {"created_at": "created_at", "updated_at": "updated_at", "title": "lower(title)"}

_GET: Final = (
    "SELECT id, user_id, title, description, completed, created_at, updated_at"
    " FROM tasks WHERE id = :id AND user_id = :user_id"
)
_INSERT: Final = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)"
    " VALUES (:user_id, :title, :description, :completed, :now, :now)"
    " RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
_TOGGLE: Final = (
    "UPDATE tasks SET completed = NOT completed, updated_at = :now WHERE id = :id AND user_id = :user_id"
    " RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
_DELETE: Final = "DELETE FROM tasks WHERE id = :id AND user_id = :user_id RETURNING id"


async def list_tasks(db: Database, user_id: str, query: TaskListQuery) -> tuple[list[Task], int]:
    """One page of the user's tasks and the total that match, in one round trip."""
    values: dict[str, Any] = {"user_id": user_id, "limit": query.limit, "offset": query.offset}
    if query.q:
        values["pattern"] = "%" + _escape_like(query.q.lower()) + "%"
    rows = await db.fetch_all(_list_sql(query.status, bool(query.q), query.sort), values)
    if rows:
        return [_task(row) for row in rows], int(rows[0][7])
    if query.offset == 0:
        return [], 0
    # Past the last page the window count has no row to ride on.
    del values["limit"], values["offset"]
    total = await db.fetch_val(_count_sql(query.status, bool(query.q)), values)
    return [], int(total or 0)


async def get_task(db: Database, user_id: str, task_id: int) -> Task | None:
    if not 0 < task_id <= MAX_ID:
        return None
    row = await db.fetch_one(_GET, {"id": task_id, "user_id": user_id})
    return _task(row) if row is not None else None


async def create_task(db: Database, user_id: str, data: TaskCreate) -> Task:
    values = {
        "user_id": user_id,
        "title": data.title,
        "description": data.description,
        "completed": data.completed,
        "now": _now(),
    }
    row = await db.fetch_one(_INSERT, values)
    assert row is not None  # INSERT ... RETURNING always returns the row
    return _task(row)


async def update_task(db: Database, user_id: str, task_id: int, data: TaskUpdate) -> Task | None:
    values: dict[str, Any] = {"title": data.title}
    if data.description is not UNSET:
        values["description"] = data.description
    if data.completed is not UNSET:
        values["completed"] = data.completed
    return await _update(db, user_id, task_id, values)


async def set_completed(db: Database, user_id: str, task_id: int, completed: bool | None) -> Task | None:
    """Set `completed`, or toggle it when `completed` is None (one atomic statement)."""
    if completed is not None:
        return await _update(db, user_id, task_id, {"completed": completed})
    if not 0 < task_id <= MAX_ID:
        return None
    row = await db.fetch_one(_TOGGLE, {"id": task_id, "user_id": user_id, "now": _now()})
    return _task(row) if row is not None else None


async def delete_task(db: Database, user_id: str, task_id: int) -> bool:
    if not 0 < task_id <= MAX_ID:
        return False
    return await db.fetch_one(_DELETE, {"id": task_id, "user_id": user_id}) is not None


async def _update(db: Database, user_id: str, task_id: int, changes: dict[str, Any]) -> Task | None:
    if not 0 < task_id <= MAX_ID:
        return None
    row = await db.fetch_one(_update_sql(tuple(changes)), {**changes, "now": _now(), "id": task_id, "user_id": user_id})
    return _task(row) if row is not None else None


@cache
def _update_sql(columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    # Column names come from TaskUpdate's fields, never from the request.
    return (
        f"UPDATE tasks SET {assignments}, updated_at = :now WHERE id = :id AND user_id = :user_id"  # noqa: S608
        f" RETURNING {_COLUMNS}"
    )


@cache
def _list_sql(status: str, search: bool, sort: str) -> str:
    column = _SORT_COLUMNS[sort.lstrip("-")]
    direction = "DESC" if sort.startswith("-") else "ASC"
    # Every fragment comes from the dictionaries above, keyed by validated values.
    return (
        f"SELECT {_COLUMNS}, count(*) OVER () AS total_count FROM tasks"  # noqa: S608
        f" WHERE user_id = :user_id{_filters(status, search)}"
        f" ORDER BY {column} {direction}, id {direction} LIMIT :limit OFFSET :offset"
    )


@cache
def _count_sql(status: str, search: bool) -> str:
    return f"SELECT count(*) FROM tasks WHERE user_id = :user_id{_filters(status, search)}"  # noqa: S608


def _filters(status: str, search: bool) -> str:
    return _STATUS_FILTERS[status] + (_SEARCH if search else "")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _now() -> datetime:
    return datetime.now(UTC)


def _task(row: Row) -> Task:
    return Task(
        id=row[0],
        user_id=row[1],
        title=row[2],
        description=row[3],
        completed=bool(row[4]),
        created_at=_utc(row[5]),
        updated_at=_utc(row[6]),
    )


def _utc(value: datetime | str) -> datetime:
    # SQLite hands back text (backend/sqlitedriver.py); every stored time is UTC.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
