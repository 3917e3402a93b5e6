"""Property tests for the request parsers, backend/payloads.py and backend/validation.py (hypothesis).

Whatever bytes, JSON documents or query strings arrive, `read_body` and
`read_query` either return a valid struct or raise one of the documented API
errors (400, 413, 415, 422), whose field errors fit the documented schema.
Nothing else escapes: no KeyError, no RecursionError, no UnicodeError, and
lone surrogates in keys and values are drawn on purpose (msgspec cannot
encode a key "\\ud800", which must still be a 422, not a 500).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from backend.errors import (
    ApiError,
    MalformedJSONError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from backend.logs import printable
from backend.payloads import MAX_BODY_BYTES, read_body, read_query
from backend.schemas import (
    DESCRIPTION_MAX,
    QUERY_MAX,
    TITLE_MAX,
    CompletionSet,
    FieldError,
    TaskCreate,
    TaskListQuery,
    TaskUpdate,
)

DOCUMENTED = (MalformedJSONError, PayloadTooLargeError, UnsupportedMediaTypeError, ValidationFailedError)
SCHEMAS = [TaskCreate, TaskUpdate, CompletionSet]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as JSON can carry it: any character, lone surrogates ("\ud800", which st.text() never draws) included.
# (Built from a list: st.text() given a union of character strategies still drew no surrogate.)
any_text = st.lists(st.characters() | st.characters(categories=["Cs"])).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10) | any_text.filter(lambda key: len(key) <= 10), children, max_size=5)
    ),
    max_leaves=30,
)
# Bodies that look like tasks, with every field sometimes wrong, missing or extra.
task_like = st.dictionaries(
    st.sampled_from(["title", "description", "completed", "user_id", "id", "extra"])
    | st.text(max_size=8)
    | any_text.filter(lambda key: len(key) <= 8),
    any_text | st.booleans() | st.none() | st.integers() | json_values,
    max_size=5,
)


def request(body: bytes, *, content_type: bytes = b"application/json", chunk: int = 0, query: bytes = b"") -> Request:
    """A Starlette request whose body arrives in chunks of `chunk` bytes (all at once when 0)."""
    size = chunk or max(len(body), 1)
    parts = [body[start : start + size] for start in range(0, len(body), size)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1} for index, part in enumerate(parts)
    ]
    headers = [(b"content-type", content_type)] if content_type else []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": query}
    return Request(scope, receive)


def parse(schema: type[msgspec.Struct], body: bytes, **options: Any) -> msgspec.Struct | ApiError | None:
    """The parsed struct, or the documented error raised; anything else fails the test."""
    try:
        return asyncio.run(read_body(request(body, **options), schema))
    except DOCUMENTED as error:
        assert_well_formed(error)
        return error


def assert_well_formed(error: ApiError) -> None:
    assert error.detail
    assert error.status in (400, 413, 415, 422)
    msgspec.json.encode(error.detail)  # UTF-8 text: no lone surrogate left in it
    if isinstance(error, ValidationFailedError):
        assert error.errors
        fields = msgspec.convert(error.errors, list[FieldError])
        assert all(field.message for field in fields)
        msgspec.json.encode(error.errors)  # the problem document can be written


def assert_valid_task(value: msgspec.Struct) -> None:
    title = getattr(value, "title", None)
    if isinstance(title, str):
        assert title == title.strip()
        assert 1 <= len(title) <= TITLE_MAX
        assert "\x00" not in title
    description = getattr(value, "description", None)
    if isinstance(description, str):
        assert len(description) <= DESCRIPTION_MAX
        assert "\x00" not in description


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
@PROPERTY
@given(body=st.binary(max_size=512))
def test_arbitrary_bytes_give_a_struct_or_a_documented_error(schema: type[msgspec.Struct], body: bytes) -> None:
    result = parse(schema, body)

    if isinstance(result, msgspec.Struct):
        assert_valid_task(result)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
@PROPERTY
@given(document=json_values | task_like)
def test_arbitrary_json_gives_a_struct_or_a_422_naming_fields(schema: type[msgspec.Struct], document: Any) -> None:
    result = parse(schema, json.dumps(document).encode())

    assert not isinstance(result, MalformedJSONError | PayloadTooLargeError | UnsupportedMediaTypeError)
    if isinstance(result, msgspec.Struct):
        assert_valid_task(result)
    else:
        assert isinstance(result, ValidationFailedError)


def as_sent(value: Any) -> Any:
    """`value` as the server reads it from JSON: "\\ud800\\udc00" is one character, U+10000."""
    return json.loads(json.dumps(value))


VALID = {TaskCreate: {"title": "ok"}, TaskUpdate: {"title": "ok"}, CompletionSet: {"completed": True}}


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
@PROPERTY
@given(key=any_text, value=json_values)
def test_any_unknown_key_beside_a_valid_body_is_a_422_naming_it_escaped(
    schema: type[msgspec.Struct], key: str, value: Any
) -> None:
    assume(as_sent(key) not in schema.__struct_fields__)

    result = parse(schema, json.dumps({**VALID[schema], key: value}).encode())

    assert isinstance(result, ValidationFailedError), result
    assert [error["field"] for error in result.errors or []] == [printable(as_sent(key)[:100])]


@PROPERTY
@given(
    title=st.text(max_size=TITLE_MAX + 20) | any_text.filter(lambda text: len(text) <= TITLE_MAX + 20),
    description=st.none() | any_text.filter(lambda text: len(text) <= DESCRIPTION_MAX + 20),
)
def test_task_is_accepted_exactly_when_its_fields_keep_the_rules(title: str, description: str | None) -> None:
    result = parse(TaskCreate, json.dumps({"title": title, "description": description}).encode())
    title, description = as_sent(title), as_sent(description)  # a surrogate pair arrives as one character

    storable = all(
        "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text) for text in (title, description or "")
    )
    expected = storable and 1 <= len(title.strip()) <= TITLE_MAX and len(description or "") <= DESCRIPTION_MAX
    assert isinstance(result, TaskCreate) == expected, result
    if isinstance(result, TaskCreate):
        assert result.title == title.strip()
        assert result.description == description


@PROPERTY
@given(body=st.binary(min_size=1, max_size=256), chunk=st.integers(min_value=1, max_value=64))
def test_a_body_read_in_chunks_parses_like_one_read_at_once(body: bytes, chunk: int) -> None:
    whole, chunked = parse(TaskCreate, body), parse(TaskCreate, body, chunk=chunk)

    assert type(whole) is type(chunked)
    if isinstance(whole, msgspec.Struct):
        assert whole == chunked


@PROPERTY
@given(extra=st.integers(min_value=1, max_value=4096), chunk=st.sampled_from([1024, 4096, 65536]))
def test_any_body_over_the_limit_is_413_however_it_is_chunked(extra: int, chunk: int) -> None:
    result = parse(TaskCreate, b"x" * (MAX_BODY_BYTES + extra), chunk=chunk)

    assert isinstance(result, PayloadTooLargeError)


@PROPERTY
@given(content_type=st.binary(max_size=40))
def test_any_content_type_is_accepted_only_when_it_says_json(content_type: bytes) -> None:
    result = parse(TaskCreate, b'{"title": "ok"}', content_type=content_type)

    media = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
    says_json = media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
    assert isinstance(result, TaskCreate) == says_json, (content_type, result)
    if not says_json:
        assert isinstance(result, UnsupportedMediaTypeError)


@PROPERTY
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["status", "q", "sort", "limit", "offset", "other"]) | st.text(max_size=5), st.text()
        ),
        max_size=6,
    )
)
def test_any_query_string_gives_a_query_or_a_422(params: list[tuple[str, str]]) -> None:
    result = query_of(urlencode(params).encode())

    if isinstance(result, ValidationFailedError):
        assert all(item["location"] == "query" for item in result.errors or [])
    else:
        assert len(result.q) <= QUERY_MAX
        assert 1 <= result.limit <= 200
        assert result.offset >= 0


def query_of(query: bytes) -> TaskListQuery | ValidationFailedError:
    try:
        return read_query(request(b"", query=query), TaskListQuery)
    except ValidationFailedError as error:
        assert_well_formed(error)
        return error
