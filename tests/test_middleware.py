"""CORS, request ids and security headers on every response; then the one middleware on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import httpx
import pytest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.app import create_app
from backend.cors import CorsPolicy
from backend.logs import configure_logging
from backend.middleware import RequestIds, RequestMiddleware
from backend.settings import Settings
from tests.support.apps import running_client
from tests.support.protocol import PROBLEM
from tests.support.suite import ROOT

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


async def preflight(client: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await client.options("/api/alice/tasks", headers={"Origin": origin, **PREFLIGHT})


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://localhost:3001", "http://127.0.0.1:5173", "http://[::1]:3000"]
)
async def test_preflight_from_frontend_or_loopback_origin_is_allowed_in_development(
    client: httpx.AsyncClient, origin: str
) -> None:
    response = await preflight(client, origin)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_preflight_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    response = await preflight(client, "https://evil.example")

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:3000.evil.example"])
async def test_refused_origin_gets_no_cors_header_at_all(
    client: httpx.AsyncClient, alice: dict[str, str], origin: str
) -> None:
    simple = await client.get("/api/alice/tasks", headers={**alice, "Origin": origin})
    refused_preflight = await preflight(client, origin)

    assert simple.status_code == 200
    assert refused_preflight.status_code == 400
    for response in (simple, refused_preflight):
        assert [name for name in response.headers if name.startswith("access-control-")] == []
        assert "Origin" in response.headers["vary"]


async def test_allowed_origin_gets_credentials_alongside_the_origin(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get("/api/alice/tasks", headers={**alice, "Origin": "http://localhost:3000"})

    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_real_request_exposes_total_count_to_the_browser(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get("/api/alice/tasks", headers={**alice, "Origin": "http://localhost:3000"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-total-count" in exposed
    assert "location" in exposed


async def test_never_wildcard_origin_with_credentials(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.get("/health", headers={"Origin": "http://localhost:3000"})

    assert response.headers["access-control-allow-origin"] != "*"


@pytest.fixture
async def production_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    production = dataclasses.replace(settings, app_env="production", cors_origins=("https://app.example.com",))
    async with running_client(production) as client:
        yield client


async def test_production_allows_only_configured_origins(production_client: httpx.AsyncClient) -> None:
    allowed = await preflight(production_client, "https://app.example.com")
    loopback = await preflight(production_client, "http://localhost:3001")

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert loopback.status_code == 400


async def test_every_response_has_request_id_and_safety_headers(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nope"), await client.get("/api/me")):
        assert len(response.headers["x-request-id"]) == 32
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


async def test_sane_incoming_request_id_is_kept_and_odd_one_replaced(client: httpx.AsyncClient) -> None:
    kept = await client.get("/health", headers={"X-Request-ID": "frontend-abc.123"})
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert kept.headers["x-request-id"] == "frontend-abc.123"
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"


@pytest.fixture
def configured_logging() -> Iterator[list[str]]:
    """The server's logging setup, writing to a list; the root logger restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("info")
    lines: list[str] = []
    (handler,) = root.handlers
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    yield lines
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_log_lines_carry_the_request_id(client: httpx.AsyncClient, configured_logging: list[str]) -> None:
    response = await client.get("/api/me", headers={"X-Request-ID": "trace-42"})

    assert response.status_code == 401
    assert any("[trace-42] GET /api/me -> 401 TOKEN_MISSING" in line for line in configured_logging)


async def test_unexpected_error_is_500_problem_with_request_id_and_no_internals(settings: Settings) -> None:
    app = create_app(settings)

    async def broken(request: object) -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    app.add_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/broken", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "req-500"
    problem = response.json()
    assert problem["code"] == "INTERNAL_ERROR"
    assert problem["request_id"] == "req-500"
    assert "req-500" in problem["detail"]
    assert "internals" not in response.text
    assert "Traceback" not in response.text


# -- the one middleware on its own ------------------------------------------------------------------


def test_request_ids_are_32_hex_characters_and_never_repeat() -> None:
    ids = RequestIds()

    drawn = [ids.next() for _ in range(10_000)]

    assert len(set(drawn)) == len(drawn)
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in drawn)


_FORKED_IDS = """
import os
from backend.middleware import RequestIds

ids = RequestIds()
parent = ids.next()
reader, writer = os.pipe()
pid = os.fork()
if pid == 0:  # what a worker forked from this process would draw
    os.write(writer, ids.next().encode())
    os._exit(0)
os.close(writer)
child = os.read(reader, 64).decode()
os.waitpid(pid, 0)
print(parent, child, ids.next())
"""


def test_request_ids_of_two_processes_differ_even_when_forked_from_one() -> None:
    # In a process of its own: forking this one, whose test servers run threads, is unsafe.
    run = subprocess.run(
        [sys.executable, "-c", _FORKED_IDS], check=False, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    parent, child, parent_again = run.stdout.split()
    other_process = RequestIds().next()

    assert len(child) == 32
    assert child[:16] != parent[:16]
    assert parent_again[:16] == parent[:16]
    assert other_process[:16] not in (parent[:16], child[:16])


async def test_responses_carry_distinct_request_ids(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/health") for _ in range(20)]

    assert len({response.headers["x-request-id"] for response in answers}) == 20


def _call(app: ASGIApp, scope: dict[str, Any], body: list[Message]) -> Awaitable[list[Message]]:
    """Run `app` on `scope` with these request messages; the messages it sends."""
    sent: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in body:
        queue.put_nowait(message)

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> list[Message]:
        await app(scope, queue.get, send)
        return sent

    return run()


def _scope(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/x", "headers": headers or []}


def _headers(message: Message) -> list[tuple[bytes, bytes]]:
    return list(message["headers"])


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[tuple[str, Message]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["type"], await receive()))

    await _call(RequestMiddleware(app, cors=CorsPolicy([])), {"type": "lifespan"}, [{"type": "lifespan.startup"}])

    assert seen == [("lifespan", {"type": "lifespan.startup"})]


async def test_answer_keeps_its_own_headers_and_gets_ours_once() -> None:
    app = Response(
        "x",
        headers={
            "Vary": "Accept",
            "Cache-Control": "max-age=60",
            "X-Request-ID": "from-the-app",
            "Access-Control-Max-Age": "99",
            "Access-Control-Allow-Origin": "*",
        },
    )
    origin = b"http://localhost:3000"
    middleware = RequestMiddleware(app, cors=CorsPolicy(["http://localhost:3000"]))

    allowed = (await _call(middleware, _scope(headers=[(b"origin", origin)]), []))[0]
    refused = (await _call(middleware, _scope(headers=[(b"origin", b"https://evil.example")]), []))[0]

    for start in (allowed, refused):
        headers = _headers(start)
        names = [name for name, _ in headers]
        assert names.count(b"x-request-id") == 1
        assert (b"x-request-id", b"from-the-app") not in headers
        assert (b"x-content-type-options", b"nosniff") in headers
        assert (b"cache-control", b"max-age=60") in headers
        assert b"no-store" not in dict(headers).values()
        assert (b"vary", b"Accept, Origin") in headers
        assert (b"access-control-max-age", b"99") not in headers
    assert [(name, value) for name, value in _headers(allowed) if name.startswith(b"access-control-")] == [
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"Location, Retry-After, X-Request-ID, X-Total-Count"),
        (b"access-control-allow-origin", origin),
    ]
    assert [name for name, _ in _headers(refused) if name.startswith(b"access-control-")] == []


async def test_preflight_for_an_allowed_origin_with_a_refused_method_names_it() -> None:
    middleware = RequestMiddleware(Response("never"), cors=CorsPolicy(["http://localhost:3000"]))
    scope = _scope(
        "OPTIONS",
        [(b"origin", b"http://localhost:3000"), (b"access-control-request-method", b"TRACE")],
    )

    start, body = await _call(middleware, scope, [])

    assert start["status"] == 400
    assert body["body"] == b"Disallowed CORS method"
    assert (b"access-control-allow-origin", b"http://localhost:3000") in _headers(start)


async def test_request_cancelled_before_its_answer_gets_503_with_our_headers_and_stays_cancelled() -> None:
    started = asyncio.Event()

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    middleware = RequestMiddleware(stuck, cors=CorsPolicy(["http://localhost:3000"]))
    scope = {**_scope(headers=[(b"origin", b"http://localhost:3000"), (b"x-request-id", b"cut-1")]), "app": None}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(middleware(scope, asyncio.Queue().get, send))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    headers = dict(_headers(sent[0]))
    assert sent[0]["status"] == 503
    assert headers[b"x-request-id"] == b"cut-1"
    assert headers[b"access-control-allow-origin"] == b"http://localhost:3000"
    assert headers[b"retry-after"]
    assert b'"code":"SHUTTING_DOWN"' in sent[1]["body"]
