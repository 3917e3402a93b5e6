"""The API's data shapes (msgspec): request bodies, query, responses.

These structs are the single source for validation and for /openapi.json.
Types are strict: `"completed": "yes"` is an error, not `true`. Limits that
msgspec's `Meta` can state are stated there; a rule it cannot (a title is
counted after trimming) is a `Trimmed` in the field's `Annotated` type, and
every request struct is a `Payload`, whose `__post_init__` applies it and
refuses text that cannot be stored.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

# The migration's column types and CHECKs agree with these (tests/test_schemas.py).
TITLE_MIN: Final = 1  # characters after trimming
TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 1000
QUERY_MAX: Final = 200
NOT_TEXT: Final = "must be text without NUL characters or lone surrogates"


class RuleError(ValueError):
    """A field's value breaks one of its rules; `message` is what the API's `errors` entry says.

    A ValueError so that msgspec, decoding a struct, turns it into a ValidationError.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclasses.dataclass(frozen=True)
class Trimmed:
    """Text kept without surrounding white space: never blank, `min_length..max_length` characters long.

    Not a `Meta` constraint: msgspec would count the spaces too.
    """

    min_length: int
    max_length: int

    def __call__(self, text: str) -> str:
        """The trimmed text; raises ValueError naming the limit it breaks."""
        trimmed = text.strip()
        if not trimmed:
            raise ValueError("must not be blank")
        if len(trimmed) < self.min_length:
            raise ValueError(f"must be at least {self.min_length} characters (got {len(trimmed)})")
        if len(trimmed) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters (got {len(trimmed)})")
        return trimmed


class Payload(msgspec.Struct):
    """A struct read from a request: after msgspec's checks, each text field keeps its rules."""

    def __post_init__(self) -> None:
        for name, rules in _rules(type(self)).items():
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, _kept(name, value, rules))


def checked(schema: type[msgspec.Struct], field: str, value: Any) -> Any:
    """`value` as `schema` keeps it in `field`; raises RuleError when it breaks a rule."""
    return _kept(field, value, _rules(schema)[field]) if isinstance(value, str) else value


def _kept(field: str, text: str, rules: tuple[Trimmed, ...]) -> str:
    if "\x00" in text or has_lone_surrogate(text):
        # PostgreSQL refuses NUL in text, and a lone surrogate is not UTF-8.
        raise RuleError(field, NOT_TEXT)
    try:
        for rule in rules:
            text = rule(text)
    except ValueError as error:
        raise RuleError(field, str(error)) from None
    return text


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds half a surrogate pair (`"\\ud800"` is valid JSON but not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@functools.cache
def _rules(schema: type[msgspec.Struct]) -> dict[str, tuple[Trimmed, ...]]:
    hints = typing.get_type_hints(schema, include_extras=True)
    return {name: tuple(_trims(hints[name])) for name in schema.__struct_fields__}


def _trims(hint: Any) -> list[Trimmed]:
    """The `Trimmed` rules in an annotation, inside a union (`Title | None`) too."""
    if typing.get_origin(hint) is Annotated:
        return [item for item in typing.get_args(hint)[1:] if isinstance(item, Trimmed)]
    return [rule for argument in typing.get_args(hint) for rule in _trims(argument)]


Title = Annotated[
    str,
    Meta(description=f"Trimmed; {TITLE_MIN} to {TITLE_MAX} characters.", examples=["Buy milk"]),
    Trimmed(TITLE_MIN, TITLE_MAX),
]
Description = Annotated[str, Meta(max_length=DESCRIPTION_MAX, description=f"At most {DESCRIPTION_MAX} characters.")]


class TaskCreate(Payload, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None
    completed: bool = False


class TaskUpdate(Payload, forbid_unknown_fields=True):
    """Body of PUT /api/{user_id}/tasks/{task_id}: fields left out keep their value."""

    title: Title
    description: Description | UnsetType | None = UNSET
    completed: bool | UnsetType = UNSET


class CompletionSet(Payload, forbid_unknown_fields=True):
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


class TaskListQuery(Payload, forbid_unknown_fields=False):
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
