"""The demo page at /dev/: served in development only, with its own CSP, outside the API contract.

What the page does in a browser is in tests/browser/test_dev_page.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from backend.app import create_app
from backend.endpoints.dev import CONTENT_SECURITY_POLICY, STATIC
from backend.settings import Settings
from tests.support.apps import ready_server
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer
from tests.support.protocol import PROBLEM

pytestmark = pytest.mark.live

DEV_PATHS = ["/dev", "/dev/", "/dev/dev.js", "/dev/dev.css"]


@pytest.fixture(scope="module")
def server(database_url: str, jwks: JWKSServer) -> Iterator[LiveServer]:
    with ready_server(database_url, jwks) as live:
        yield live


def get(server: LiveServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", follow_redirects=False)


def test_page_is_html_with_a_policy_that_allows_only_its_own_files(server: LiveServer) -> None:
    response = get(server, "/dev/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    directives = dict(item.strip().split(" ", 1) for item in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert '<script src="dev.js" defer></script>' in response.text
    assert "inv token --sub alice" in response.text


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("dev.js", "text/javascript; charset=utf-8"), ("dev.css", "text/css; charset=utf-8")],
)
def test_script_and_style_are_served_with_their_types(server: LiveServer, name: str, content_type: str) -> None:
    response = get(server, f"/dev/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.content == (STATIC / name).read_bytes()


def test_dev_without_the_slash_redirects_to_the_page(server: LiveServer) -> None:
    response = get(server, "/dev")

    assert response.status_code == 307
    assert response.headers["location"] == "/dev/"


def test_api_answers_keep_their_headers_without_the_page_policy(server: LiveServer) -> None:
    response = get(server, "/health")

    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_is_not_part_of_the_api_document(server: LiveServer) -> None:
    paths = get(server, "/openapi.json").json()["paths"]

    assert [path for path in paths if path.startswith("/dev")] == []


async def test_production_answers_the_page_paths_like_any_unknown_path(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, app_env="production"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        unknown = await client.get("/nowhere/")
        for path in DEV_PATHS:
            response = await client.get(path, follow_redirects=False)

            assert response.status_code == 404
            assert response.headers["content-type"] == PROBLEM
            assert "content-security-policy" not in response.headers
            assert response.json() == {**unknown.json(), "detail": f"No route matches {path!r}; see /openapi.json"}
    assert unknown.json()["code"] == "NOT_FOUND"


class _InlineCode(HTMLParser):
    """Collects what the policy would block: inline scripts and styles, event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if (tag == "script" and "src" not in names) or tag == "style" or "style" in names:
            self.found.append(tag)
        self.found.extend(f"{tag} {name}" for name in names if name.startswith("on"))


def test_page_has_no_inline_script_or_style_for_the_policy_to_block() -> None:
    parser = _InlineCode()
    parser.feed((STATIC / "dev.html").read_text())

    assert parser.found == []


def test_page_writes_data_only_as_text() -> None:
    script = (STATIC / "dev.js").read_text()

    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
