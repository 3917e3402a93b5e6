"""The request structs' rules: stated once, kept by the structs themselves, agreed by the database."""

from __future__ import annotations

import re

import msgspec
import pytest
from msgspec import inspect

from backend.endpoints import health, me
from backend.endpoints import tasks as task_endpoints
from backend.migrations.versions import MIGRATIONS
from backend.routing import ApiRoute
from backend.schemas import DESCRIPTION_MAX, NOT_TEXT, TITLE_MAX, TITLE_MIN, Payload, RuleError, TaskCreate, Trimmed
from backend.tables import tasks
from backend.validation import accepted_kinds

app_routes = [*task_endpoints.routes, *me.routes, *health.routes]

# Every struct a route reads from a request: its body or its query string.
REQUEST_SCHEMAS = sorted(
    {
        schema
        for route in app_routes
        if isinstance(route, ApiRoute)
        for operation in route.operations.values()
        for schema in (operation.body, operation.query)
        if schema is not None
    },
    key=lambda schema: schema.__name__,
)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_migrated_columns_agree_with_the_limits(dialect: str) -> None:
    # A migration is never edited, so it cannot read the constants: a new one that changes
    # these columns must change this test too.
    (create,) = (sql for sql in MIGRATIONS[0].statements(dialect) if "CREATE TABLE tasks" in sql)
    columns = {line.split()[0]: line.strip().rstrip(",") for line in create.splitlines()[2:-2]}

    assert TITLE_MIN == 1  # what CHECK (title <> '') refuses: the empty title
    assert columns["title"] == f"title VARCHAR({TITLE_MAX}) NOT NULL CHECK (title <> '')"
    assert columns["description"] == f"description VARCHAR({DESCRIPTION_MAX})"


def test_table_definitions_agree_with_the_limits() -> None:
    assert tasks.c.title.type.length == TITLE_MAX
    assert tasks.c.description.type.length == DESCRIPTION_MAX


def test_every_struct_read_from_a_request_keeps_its_rules() -> None:
    assert {schema.__name__ for schema in REQUEST_SCHEMAS} == {
        "CompletionSet",
        "TaskCreate",
        "TaskListQuery",
        "TaskUpdate",
    }
    assert all(issubclass(schema, Payload) for schema in REQUEST_SCHEMAS)


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS, ids=lambda schema: schema.__name__)
def test_request_structs_declare_only_limits_the_api_can_name(schema: type[msgspec.Struct]) -> None:
    # backend/validation.py words a refused value from its type: text lengths, number ranges and
    # literal choices. A limit it has no words for (a pattern, gt, multiple_of) must not slip in.
    named = {
        inspect.StrType: {"min_length", "max_length"},
        inspect.IntType: {"ge", "le"},
        inspect.FloatType: {"ge", "le"},
        inspect.BoolType: set(),
        inspect.NoneType: set(),
        inspect.LiteralType: {"values"},
    }
    for field in msgspec.structs.fields(schema):
        for kind in accepted_kinds(field.type):
            assert type(kind) in named, (field.name, kind)
            declared = {name for name in kind.__struct_fields__ if getattr(kind, name) is not None}
            assert declared <= named[type(kind)], (field.name, kind)


def test_decoding_a_task_trims_its_title() -> None:
    task = msgspec.json.decode(b'{"title": "  Buy milk\\n"}', type=TaskCreate)

    assert task.title == "Buy milk"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"title": " "}', "title: must not be blank"),
        (b'{"title": "ok", "description": "a\\u0000b"}', f"description: {NOT_TEXT}"),
    ],
)
def test_decoding_a_task_that_breaks_a_rule_is_msgspecs_validation_error(document: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(document, type=TaskCreate)

    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "kept", "message"),
    [
        ("  abc ", "abc", None),
        ("\t\n ", None, "must not be blank"),
        (" ab ", None, "must be at least 3 characters (got 2)"),
        ("abcdef", None, "must be at most 5 characters (got 6)"),
    ],
)
def test_trimmed_counts_after_trimming(text: str, kept: str | None, message: str | None) -> None:
    rule = Trimmed(3, 5)
    if message is None:
        assert rule(text) == kept
        return
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        rule(text)


def test_rule_error_names_the_field() -> None:
    error = RuleError("title", "must not be blank")

    assert (error.field, error.message, str(error)) == ("title", "must not be blank", "title: must not be blank")
