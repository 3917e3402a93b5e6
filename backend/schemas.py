"""The API's data shapes (msgspec): request bodies, query, responses.

These structs are the single source for validation and for /openapi.json.
Types are strict: `"completed": "yes"` is an error, not `true`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
QUERY_MAX = 200

Title = Annotated[str, Meta(description="Trimmed; 1 to 200 characters.", examples=["Buy milk"])]
Description = Annotated[str, Meta(max_length=DESCRIPTION_MAX, description="At most 1000 characters.")]


class TaskCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None
    completed: bool = False


class TaskUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of PUT /api/{user_id}/tasks/{task_id}: fields left out keep their value."""

    title: Title
    description: Description | UnsetType | None = UNSET
    completed: bool | UnsetType = UNSET


class CompletionSet(msgspec.Struct, forbid_unknown_fields=True):
    """Optional body of PATCH .../complete: sets the state instead of toggling it."""

    completed: bool


class Task(msgspec.Struct):
    """A task as the API returns it."""

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


SortKey = Literal["created_at", "-created_at", "updated_at", "-updated_at", "title", "-title"]


class TaskListQuery(msgspec.Struct, forbid_unknown_fields=False):
    """Query string of GET /api/{user_id}/tasks."""

    status: Literal["all", "pending", "completed"] = "all"
    q: Annotated[str, Meta(max_length=QUERY_MAX, description="Case-insensitive search in title and description.")] = ""
    sort: SortKey = "-created_at"
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    offset: Annotated[int, Meta(ge=0, le=1_000_000_000)] = 0


class Me(msgspec.Struct):
    """Who the token says the caller is."""

    user_id: str
    email: str | None
    name: str | None


class Check(msgspec.Struct):
    name: str
    ok: bool
    detail: str


class Health(msgspec.Struct):
    status: Literal["ok"]


class Readiness(msgspec.Struct):
    status: Literal["ready", "not_ready"]
    checks: list[Check]


class FieldError(msgspec.Struct):
    field: str
    location: Literal["body", "query", "path"]
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document; `code` is stable, see docs/troubleshooting.md."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    request_id: str | None = None
