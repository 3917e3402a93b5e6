"""The demo page at /dev/ in headless Chromium, clicked through as a user would.

The test drives the page over the DevTools protocol (tests/browser/devtools.py):
it pastes a token, adds, completes and deletes tasks with the page's own
controls, then checks what the page shows, what the database holds, that the
page talked to its own origin only, and that nothing broke its CSP.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.database import Database
from backend.settings import Settings
from tests.browser.chromium import open_driven
from tests.browser.devtools import DevTools
from tests.support.apps import ready_server
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer
from tests.support.protocol import bearer
from tests.support.tokens import Tokens

pytestmark = pytest.mark.browser

TOKEN_KEY = "todo-backend-dev-token"
# What a user sees: the tasks section, the list and the problem box.
SNAPSHOT = """(() => {
  const $ = (id) => document.getElementById(id);
  return {
    busy: $("tasks").getAttribute("aria-busy"),
    visible: !$("tasks").hidden,
    user: $("user").textContent,
    count: $("count").textContent,
    problem: $("problem").hidden ? null : {
      title: $("problem-title").textContent,
      status: $("problem-status").textContent,
      code: $("problem-code").textContent,
      detail: $("problem-detail").textContent,
      errors: [...$("problem-errors").children].map((item) => item.textContent),
    },
    tasks: [...document.querySelectorAll("#list li")].map((item) => ({
      title: item.querySelector(".title").textContent,
      completed: item.querySelector("input[type=checkbox]").checked,
      struck: item.classList.contains("done"),
      elements_in_title: item.querySelector(".title").childElementCount,
    })),
  };
})()"""


@pytest.fixture(scope="module")
def backend(database_url: str, jwks: JWKSServer) -> Iterator[LiveServer]:
    with ready_server(database_url, jwks) as server:
        yield server


def fill(page: DevTools, selector: str, value: str) -> None:
    page.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")


def click(page: DevTools, selector: str) -> None:
    page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def click_in_row(page: DevTools, title: str, selector: str) -> None:
    """Click `selector` in the list item whose title is `title`."""
    rows = "[...document.querySelectorAll('#list li')]"
    row = f"{rows}.find((li) => li.querySelector('.title').textContent === {json.dumps(title)})"
    clicked = page.evaluate(
        f"((row) => row !== undefined && (row.querySelector({json.dumps(selector)}).click(), true))({row})"
    )
    assert clicked, f"no task titled {title!r} in the list"


def settled(page: DevTools, condition: str = "true") -> dict[str, Any]:
    """What the page shows once no request is in flight and `condition` (on `state`) holds."""
    done = f"((state) => state.busy === 'false' && ({condition}) && state)({SNAPSHOT})"
    state: dict[str, Any] = page.wait_for(done)
    return state


def use_token(page: DevTools, token: str) -> None:
    fill(page, "#token", token)
    click(page, "#token-form button[type=submit]")


def create_task(backend: LiveServer, user: str, token: str, title: str) -> None:
    response = httpx.post(f"{backend.url}/api/{user}/tasks", json={"title": title}, headers=bearer(token))
    assert response.status_code == 201, response.text


def stored_tasks(database_url: str, user: str) -> list[tuple[str, bool]]:
    async def query() -> list[tuple[str, bool]]:
        db = Database(Settings(database_url=database_url))
        await db.connect()
        try:
            rows = await db.fetch_all(
                "SELECT title, completed FROM tasks WHERE user_id = :user ORDER BY id", {"user": user}
            )
        finally:
            await db.disconnect()
        return [(row["title"], bool(row["completed"])) for row in rows]

    return asyncio.run(query())


def assert_page_behaved(page: DevTools, backend: LiveServer) -> None:
    """Every request went to the backend; no script error; no CSP violation (HTTP errors are the test's to judge)."""
    assert page.requests
    assert [url for url in page.requests if not url.startswith(f"{backend.url}/")] == []
    assert page.exceptions == []
    assert [entry for entry in page.console_errors if entry.get("source") != "network"] == []


def test_page_lists_adds_completes_and_deletes_tasks_with_a_pasted_token(
    chromium: str, backend: LiveServer, tokens: Tokens, database_url: str
) -> None:
    user = f"demo-{uuid.uuid4().hex[:12]}"
    token = tokens.hs256(user)
    create_task(backend, user, token, "Made with curl")
    title = "Buy <b>milk</b> & eggs"

    with open_driven(chromium) as page:
        page.navigate(f"{backend.url}/dev/")
        use_token(page, token)
        listed = settled(page, "state.visible && state.tasks.length === 1")
        fill(page, "#title", title)
        click(page, "#add-form button[type=submit]")
        added = settled(page, "state.tasks.length === 2")
        click_in_row(page, title, "input[type=checkbox]")
        completed = settled(page, "state.tasks.some((task) => task.completed)")
        click_in_row(page, "Made with curl", "button.delete")
        deleted = settled(page, "state.tasks.length === 1")
        kept = page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_KEY)})")
        assert_page_behaved(page, backend)
        network_errors = [entry["url"] for entry in page.console_errors if entry.get("source") == "network"]

    assert listed["user"] == f"{user} ({user}@example.com)"
    assert listed["tasks"] == [{"title": "Made with curl", "completed": False, "struck": False, "elements_in_title": 0}]
    assert listed["count"] == "1 task"
    assert sorted(task["title"] for task in added["tasks"]) == sorted([title, "Made with curl"])
    assert added["count"] == "2 tasks"
    assert [task["title"] for task in completed["tasks"] if task["completed"]] == [title]
    # The title is text: its markup was not parsed into elements.
    assert deleted["tasks"] == [{"title": title, "completed": True, "struck": True, "elements_in_title": 0}]
    assert deleted["count"] == "1 task"
    assert deleted["problem"] is None
    assert stored_tasks(database_url, user) == [(title, True)]
    assert kept == token
    assert set(network_errors) <= {f"{backend.url}/favicon.ico"}


def test_page_shows_the_apis_problems_verbatim(
    chromium: str, backend: LiveServer, tokens: Tokens, database_url: str
) -> None:
    user = f"demo-{uuid.uuid4().hex[:12]}"
    now = int(time.time())
    expired = tokens.hs256(user, iat=now - 7200, exp=now - 3600)
    answer = httpx.get(f"{backend.url}/api/me", headers=bearer(expired))
    assert answer.status_code == 401
    problem = answer.json()

    with open_driven(chromium) as page:
        page.navigate(f"{backend.url}/dev/")
        use_token(page, tokens.hs256(user))
        settled(page, "state.visible")
        fill(page, "#title", "   ")
        click(page, "#add-form button[type=submit]")
        invalid = settled(page, "state.problem !== null")
        use_token(page, expired)
        refused = settled(page, "state.problem !== null && state.problem.code !== 'VALIDATION_FAILED'")
        assert_page_behaved(page, backend)

    assert invalid["problem"]["status"] == "HTTP 422"
    assert invalid["problem"]["code"] == "VALIDATION_FAILED"
    assert [error.split(":")[0] for error in invalid["problem"]["errors"]] == ["title"]
    assert refused["problem"] == {
        "title": problem["title"],
        "status": "HTTP 401",
        "code": "TOKEN_EXPIRED",
        "detail": problem["detail"],
        "errors": [],
    }
    assert stored_tasks(database_url, user) == []


def test_page_keeps_the_token_for_the_tab_until_it_is_forgotten(
    chromium: str, backend: LiveServer, tokens: Tokens
) -> None:
    user = f"demo-{uuid.uuid4().hex[:12]}"
    token = tokens.hs256(user)
    create_task(backend, user, token, "Still here")

    with open_driven(chromium) as page:
        page.navigate(f"{backend.url}/dev/")
        use_token(page, token)
        settled(page, "state.tasks.length === 1")
        page.navigate(f"{backend.url}/dev/")
        reloaded = settled(page, "state.tasks.length === 1")
        click(page, "#forget")
        forgotten = page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_KEY)})")
        after = settled(page)
        field = page.evaluate("document.getElementById('token').value")
        assert_page_behaved(page, backend)

    assert reloaded["tasks"][0]["title"] == "Still here"
    assert forgotten is None
    assert field == ""
    assert after["visible"] is False
    assert after["tasks"] == []
