"""A page in headless Chromium calls the backend with fetch and a Bearer token.

The page comes from a real HTTP server on http://localhost:3000 (Next.js's
default origin, the backend's default CORS_ORIGINS) or from a name under
`.example.test` that Chromium maps to 127.0.0.1: a non-loopback origin, which
the backend allows only when CORS_ORIGINS lists it, even in development.
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.chromium import open_page
from tests.browser.pages import PageServer
from tests.support.live import LiveServer
from tests.support.protocol import bearer
from tests.support.tokens import SECRET, Tokens

pytestmark = pytest.mark.browser

REPORT_TIMEOUT = 60.0
LISTED_ORIGIN = "app.example.test"
UNLISTED_ORIGIN = "elsewhere.example.test"


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    server = PageServer(preferred=3000)
    yield server
    server.close()


@pytest.fixture(scope="module")
def backend(database_url: str, pages: PageServer) -> Iterator[LiveServer]:
    origins = f"http://localhost:{pages.port},http://{LISTED_ORIGIN}:{pages.port}"
    with LiveServer(
        APP_ENV="development",
        DATABASE_URL=database_url,
        BETTER_AUTH_SECRET=SECRET,
        CORS_ORIGINS=origins,
        LOG_LEVEL="info",
        DB_CONNECT_RETRY_SECONDS="0",
    ) as server:
        server.start()
        server.wait_ready()
        yield server


def visit(chromium: str, pages: PageServer, host: str, config: dict[str, Any]) -> dict[str, Any]:
    """Load the page from http://host:port/ with `config`; the report it POSTed back."""
    pages.config = config
    with open_page(chromium, pages.url(host)) as log:
        try:
            return pages.reports.get(timeout=REPORT_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no report from {pages.url(host)} in {REPORT_TIMEOUT}s:\n{log.read_text()}") from None


def page_config(backend: LiveServer, tokens: Tokens, user: str) -> dict[str, Any]:
    return {"api": backend.url, "user": user, "token": tokens.hs256(user), "title": f"From {user}'s browser"}


def stored_titles(backend: LiveServer, tokens: Tokens, user: str) -> list[str]:
    response = httpx.get(f"{backend.url}/api/{user}/tasks", headers=bearer(tokens.hs256(user)))
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()]


@pytest.mark.parametrize("host", ["localhost", LISTED_ORIGIN])
def test_page_from_an_allowed_origin_creates_and_lists_tasks_with_a_bearer_token(
    host: str, chromium: str, pages: PageServer, backend: LiveServer, tokens: Tokens
) -> None:
    user = f"browser-{uuid.uuid4().hex[:12]}"
    config = page_config(backend, tokens, user)

    report = visit(chromium, pages, host, config)

    assert report["origin"] == f"http://{host}:{pages.port}"
    assert "error" not in report, report
    created = report["created"]
    assert created["status"] == 201
    assert created["body"]["user_id"] == user
    assert created["body"]["title"] == config["title"]
    # Readable only because the backend exposes these headers to the page.
    assert created["location"] == f"/api/{user}/tasks/{created['body']['id']}"
    assert report["listed"] == {"status": 200, "total": "1", "body": [created["body"]]}
    assert stored_titles(backend, tokens, user) == [config["title"]]


def test_page_from_an_origin_not_in_cors_origins_is_refused_before_the_request_is_sent(
    chromium: str, pages: PageServer, backend: LiveServer, tokens: Tokens
) -> None:
    user = f"browser-{uuid.uuid4().hex[:12]}"

    report = visit(chromium, pages, UNLISTED_ORIGIN, page_config(backend, tokens, user))

    assert report == {"origin": f"http://{UNLISTED_ORIGIN}:{pages.port}", "error": "TypeError: Failed to fetch"}
    # The preflight failed, so the POST never reached the backend.
    assert stored_titles(backend, tokens, user) == []
