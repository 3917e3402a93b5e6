"""Malformed requests: each is a 4xx problem+json, never a 500 or a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.payloads import MAX_BODY_BYTES
from tests.support.protocol import PROBLEM

JSON = {"Content-Type": "application/json"}


async def post(client: httpx.AsyncClient, headers: dict[str, str], content: Any, **extra: str) -> httpx.Response:
    return await client.post("/api/alice/tasks", content=content, headers={**headers, **JSON, **extra})


async def count_tasks(app: Starlette) -> int:
    return int(await app.state.backend.db.fetch_val("SELECT COUNT(*) FROM tasks"))


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]
    return problem


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "title", "is required"),
        ({"title": ""}, "title", "must not be blank"),
        ({"title": "   \t\n "}, "title", "must not be blank"),
        ({"title": "x" * 201}, "title", "must be at most 200 characters (got 201)"),
        ({"title": 5}, "title", "must be a string, not a whole number"),
        ({"title": None}, "title", "must be a string, not null"),
        ({"title": "ok", "completed": "yes"}, "completed", "must be true or false, not a string"),
        ({"title": "ok", "completed": 1}, "completed", "must be true or false, not a whole number"),
        ({"title": "ok", "description": 7}, "description", "must be a string or null, not a whole number"),
        ({"title": "ok", "description": "d" * 1001}, "description", "must be at most 1000 characters (got 1001)"),
        ({"title": ["ok"]}, "title", "must be a string, not an array"),
        ({"title": "ok", "user_id": "mallory"}, "user_id", "is not a known field (the user comes from the token)"),
        ({"title": "a\x00b"}, "title", "must be text without NUL characters or lone surrogates"),
    ],
)
async def test_invalid_task_body_is_422_naming_the_field(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str], body: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post("/api/alice/tasks", json=body, headers=alice)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"] == [{"field": field, "location": "body", "message": message}]
    assert await count_tasks(app) == 0


async def test_title_of_200_characters_after_trimming_is_accepted(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post("/api/alice/tasks", json={"title": "  " + "x" * 200 + "  "}, headers=alice)

    assert response.status_code == 201
    assert response.json()["title"] == "x" * 200


async def test_description_over_1000_characters_is_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.post("/api/alice/tasks", json={"title": "t", "description": "d" * 1001}, headers=alice)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["field"] == "description"


async def test_lone_surrogate_is_422_not_500(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await post(client, alice, b'{"title": "bad \\ud800 text"}')

    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    ("content", "field"),
    [(b'{"title": "x", "\\ud800": 1}', "\\ud800"), (b'{"completed": true, "a\\udfffb": 1}', "a\\udfffb")],
    ids=["high", "low-inside-a-key"],
)
async def test_lone_surrogate_in_a_key_is_422_naming_it_escaped(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str], method: str, content: bytes, field: str
) -> None:
    created = await client.post("/api/alice/tasks", json={"title": "kept"}, headers=alice)
    task = created.json()["id"]
    path = {"POST": "/api/alice/tasks", "PUT": f"/api/alice/tasks/{task}", "PATCH": f"/api/alice/tasks/{task}/complete"}

    response = await client.request(method, path[method], content=content, headers={**alice, **JSON})

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    unknown = {
        "field": field,
        "location": "body",
        "message": "is not a known field (it holds a lone surrogate, which is not text)",
    }
    assert unknown in problem["errors"]
    assert problem["detail"].startswith(f"{problem['errors'][0]['field']}: ")
    assert await count_tasks(app) == 1
    assert (await client.get(f"/api/alice/tasks/{task}", headers=alice)).json()["title"] == "kept"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"title": "x", "completed": "\\ud800"}', ("completed", "must be true or false, not a string")),
        (
            b'{"title": "x", "description": "\\udc00"}',
            ("description", "must be text without NUL characters or lone surrogates"),
        ),
    ],
    ids=["where-a-bool-goes", "in-the-description"],
)
async def test_lone_surrogate_in_a_value_is_422_naming_the_field(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str], content: bytes, error: tuple[str, str]
) -> None:
    response = await post(client, alice, content)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"] == [{"field": error[0], "location": "body", "message": error[1]}]
    assert await count_tasks(app) == 0


async def test_body_that_is_not_an_object_is_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await post(client, alice, b'["title"]')

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["message"] == "must be a JSON object"


@pytest.mark.parametrize(
    "content",
    [
        b'{"title": ',
        b"not json",
        b'{"title": "a", "title": "b"}',
        b'{"title": "x", "completed": NaN}',
        b'{"title": "x", "completed": Infinity}',
        b'{"title": "\xff\xfe"}',
        b"\xc3\x28",
        b'{"title": "x", "n": ' + b"9" * 5000 + b"}",
        b"[" * 32_000 + b"]" * 32_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"",
    ],
    ids=[
        "truncated",
        "not-json",
        "duplicate-keys",
        "nan",
        "infinity",
        "invalid-utf8-in-string",
        "invalid-utf8",
        "5000-digit-number",
        "deep-arrays",
        "deep-objects",
        "empty",
    ],
)
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str], content: bytes
) -> None:
    response = await post(client, alice, content)

    assert_problem(response, 400, "INVALID_JSON")
    assert await count_tasks(app) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""])
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, alice: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        "/api/alice/tasks", content=b'{"title": "x"}', headers={**alice, "Content-Type": content_type}
    )

    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_content_type_with_charset_is_accepted(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await post(client, alice, b'{"title": "x"}', **{"Content-Type": "application/json; charset=utf-8"})

    assert response.status_code == 201


async def test_50000_deep_nesting_is_a_4xx(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await post(client, alice, b"[" * 50_000 + b"]" * 50_000)

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == PROBLEM


async def test_body_over_limit_is_413(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    content = b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}'

    response = await post(client, alice, content)

    assert_problem(response, 413, "BODY_TOO_LARGE")


async def test_chunked_2mb_body_is_413_without_reading_it_all(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"title": "'
        for _ in range(2 * 1024):
            sent += 1024
            yield b"x" * 1024
        yield b'"}'

    response = await client.post("/api/alice/tasks", content=chunks(), headers={**alice, **JSON})

    assert_problem(response, 413, "BODY_TOO_LARGE")
    assert sent < 2 * 1024 * 1024
    assert await count_tasks(app) == 0


async def test_patch_complete_with_malformed_body_is_400(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    created = await client.post("/api/alice/tasks", json={"title": "t"}, headers=alice)

    response = await client.patch(
        f"/api/alice/tasks/{created.json()['id']}/complete", content=b"{oops", headers={**alice, **JSON}
    )

    assert_problem(response, 400, "INVALID_JSON")


async def test_percent_encoded_nul_in_path_user_is_403_not_500(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get("/api/alice%00/tasks", headers=alice)

    assert_problem(response, 403, "USER_MISMATCH")


async def test_every_invalid_field_is_listed_at_once(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    body = {"title": " ", "description": 7, "completed": "yes", "colour": "red"}

    response = await client.post("/api/alice/tasks", json=body, headers=alice)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"] == [
        {"field": "title", "location": "body", "message": "must not be blank"},
        {"field": "description", "location": "body", "message": "must be a string or null, not a whole number"},
        {"field": "completed", "location": "body", "message": "must be true or false, not a string"},
        {"field": "colour", "location": "body", "message": "is not a known field"},
    ]
    assert problem["detail"] == "title: must not be blank (and 3 more)"
