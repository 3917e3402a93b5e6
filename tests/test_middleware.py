"""CORS, request ids and security headers on every response."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from backend.app import create_app
from backend.logs import configure_logging
from backend.settings import Settings
from tests.conftest import wait_ready

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
    app = create_app(production)
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
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
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    problem = response.json()
    assert problem["code"] == "INTERNAL_ERROR"
    assert problem["request_id"] == "req-500"
    assert "req-500" in problem["detail"]
    assert "internals" not in response.text
    assert "Traceback" not in response.text
