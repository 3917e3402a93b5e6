"""The guide's Next.js app (examples/nextjs), built and served, clicked through in headless Chromium.

Users sign up and in with Better Auth, and their tasks go through the real
backend: from the browser (CORS, the JWT from `authClient.token()`) and from
the `/tasks` server component (`auth.api.getToken`). Every test checks what
the page shows and what the backend's database holds.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.database import Database
from backend.settings import Settings
from tests.browser.chromium import open_driven
from tests.browser.devtools import DevTools
from tests.frontend import ui
from tests.frontend.conftest import Stack
from tests.frontend.nextapp import auth_user_id
from tests.support.suite import ROOT

pytestmark = pytest.mark.frontend

PASSWORD = "correct horse battery staple"
GUIDE_API_URL = "http://localhost:8000"
_ADDRESSES = itertools.count(1)  # TEST-NET-3 host numbers, one per test


@pytest.fixture
def page(chromium: str, stack: Stack) -> Iterator[DevTools]:
    with open_driven(chromium) as devtools:
        # Better Auth allows 3 sign-ups and 3 sign-ins per 10 s per client address, which it
        # reads from X-Forwarded-For (`next start` sets it to the peer when absent): each test
        # is a user on a machine of their own, not every test on 127.0.0.1.
        address = f"203.0.113.{next(_ADDRESSES)}"
        devtools.add_headers(f"{stack.app.url}/api/auth/*", {"X-Forwarded-For": address})
        yield devtools
    # Nothing on any page threw, and the console stayed clean but for the answers a test asked for.
    assert devtools.exceptions == []
    assert [entry for entry in devtools.console_errors if entry.get("source") != "network"] == []


def new_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def stored_rows(stack: Stack, user_id: str) -> list[Any]:
    """The backend's rows for the user, oldest first."""

    async def query() -> list[Any]:
        db = Database(Settings(database_url=stack.database_url))
        await db.connect()
        try:
            return list(await db.fetch_all("SELECT * FROM tasks WHERE user_id = :user ORDER BY id", {"user": user_id}))
        finally:
            await db.disconnect()

    return asyncio.run(query())


def stored_tasks(stack: Stack, user_id: str) -> list[tuple[str, bool]]:
    return [(row["title"], bool(row["completed"])) for row in stored_rows(stack, user_id)]


def task_ids(stack: Stack, user_id: str) -> list[int]:
    return [int(row["id"]) for row in stored_rows(stack, user_id)]


def api_requests(page: DevTools, stack: Stack) -> list[str]:
    return [url for url in page.requests if url.startswith(f"{stack.backend.url}/")]


def console_recipe() -> str:
    """The guide's browser-console lines that get a token and call the backend with it."""
    guide = (ROOT / "docs" / "frontend.md").read_text()
    section = guide.split("\n## Check it end to end\n", 1)[1]
    block = re.search(r"^```js\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block is not None, "docs/frontend.md: no ```js block under 'Check it end to end'"
    return block.group(1)


def in_console(page: DevTools, code: str) -> Any:
    """Run lines as typed into the DevTools console (top-level await); the last one's value."""
    result = page.call("Runtime.evaluate", expression=code, replMode=True, awaitPromise=True, returnByValue=True)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")


def test_new_user_adds_completes_renames_and_deletes_tasks_from_the_browser(page: DevTools, stack: Stack) -> None:
    email = new_email("alice")

    signed_up = ui.sign_up(page, stack.app.url, "Alice", email, PASSWORD)
    ui.add(page, "Buy milk")
    ui.add(page, "Call mum")
    added = ui.add(page, "Throw away")
    completed = ui.toggle(page, "Buy milk")
    renamed = ui.rename(page, "Call mum", "Call mum on Sunday")
    deleted = ui.delete(page, "Throw away")
    reopened = ui.toggle(page, "Buy milk")

    user_id = auth_user_id(stack.auth_database, email)
    assert signed_up["signed_in_as"] == f"Signed in as {email} Sign out"
    assert (signed_up["tasks"], signed_up["count"]) == ([], "0 tasks")
    # Newest first: the backend's default order.
    assert ui.titles(added) == ["Throw away", "Call mum", "Buy milk"]
    assert completed["tasks"][2] == {"title": "Buy milk", "done": True, "struck": True}
    assert ui.titles(renamed) == ["Throw away", "Call mum on Sunday", "Buy milk"]
    assert (ui.titles(deleted), deleted["count"]) == (["Call mum on Sunday", "Buy milk"], "2 tasks")
    assert reopened["tasks"][1] == {"title": "Buy milk", "done": False, "struck": False}
    assert reopened["alert"] is None
    assert stored_tasks(stack, user_id) == [("Buy milk", False), ("Call mum on Sunday", False)]
    # The browser itself called the backend, cross-origin, under the user's own id.
    assert api_requests(page, stack)
    assert {url.split("/tasks")[0] for url in api_requests(page, stack)} == {f"{stack.backend.url}/api/{user_id}"}


def test_tasks_come_back_after_a_reload_and_a_new_sign_in_listed_by_the_server(page: DevTools, stack: Stack) -> None:
    email = new_email("carol")
    ui.sign_up(page, stack.app.url, "Carol", email, PASSWORD)
    ui.add(page, "Water the plants")
    ui.toggle(page, "Water the plants")
    ui.add(page, "Book the dentist")

    page.requests.clear()
    page.navigate(f"{stack.app.url}/tasks")
    reloaded = ui.until(page, lambda state: state["count"] is not None)
    from_the_server = list(page.requests)
    ui.sign_out(page)
    signed_in = ui.sign_in(page, stack.app.url, email, PASSWORD)
    cookies = page.call("Network.getCookies", urls=[stack.app.url])["cookies"]

    expected = [
        {"title": "Book the dentist", "done": False, "struck": False},
        {"title": "Water the plants", "done": True, "struck": True},
    ]
    assert reloaded["tasks"] == expected
    assert signed_in["tasks"] == expected
    # The server component listed them: the browser sent nothing to the backend.
    assert [url for url in from_the_server if url.startswith(stack.backend.url)] == []
    # And the HTML it streams holds them, for a client that runs no script at all.
    cookie = "; ".join(f"{item['name']}={item['value']}" for item in cookies)
    html = httpx.get(f"{stack.app.url}/tasks", headers={"Cookie": cookie}, timeout=30.0).text
    assert "Book the dentist" in html
    assert "Water the plants" in html
    user_id = auth_user_id(stack.auth_database, email)
    assert stored_tasks(stack, user_id) == [("Water the plants", True), ("Book the dentist", False)]


def test_second_user_in_the_same_tab_sees_none_of_the_first_users_tasks(page: DevTools, stack: Stack) -> None:
    first, second = new_email("dave"), new_email("erin")
    ui.sign_up(page, stack.app.url, "Dave", first, PASSWORD)
    ui.add(page, "Dave's secret plan")
    ui.sign_out(page)

    erin_sees = ui.sign_up(page, stack.app.url, "Erin", second, PASSWORD)
    erins = ui.add(page, "Erin's errand")
    dave, erin = auth_user_id(stack.auth_database, first), auth_user_id(stack.auth_database, second)
    (dave_task,) = stored_tasks(stack, dave)
    forged = in_console(page, forged_calls(stack, dave, task_ids(stack, dave)[0], erin))

    assert (erin_sees["tasks"], erin_sees["count"]) == ([], "0 tasks")
    assert ui.titles(erins) == ["Erin's errand"]
    assert erins["alert"] is None  # Erin's token was used for Erin's path, not Dave's left in memory
    assert dave_task == ("Dave's secret plan", False)
    assert stored_tasks(stack, erin) == [("Erin's errand", False)]
    # Erin's token on Dave's path: 403; Dave's task id on Erin's path: 404, as for no task at all.
    assert forged == {"other_path": [403, "USER_MISMATCH"], "other_task": [404, "TASK_NOT_FOUND"]}


def forged_calls(stack: Stack, victim: str, victims_task: int, user: str) -> str:
    """Console lines in which `user`, signed in, tries `victim`'s tasks with a token of their own."""
    return f"""
const {{ token }} = await (await fetch("/api/auth/token")).json();
const call = async (path) => {{
  const response = await fetch("{stack.backend.url}" + path, {{ headers: {{ Authorization: `Bearer ${{token}}` }} }});
  return [response.status, (await response.json()).code];
}};
({{
  other_path: await call("/api/{victim}/tasks"),
  other_task: await call("/api/{user}/tasks/{victims_task}"),
}})
"""


def test_guides_console_recipe_gets_a_token_the_backend_accepts(page: DevTools, stack: Stack) -> None:
    email = new_email("frank")
    ui.sign_up(page, stack.app.url, "Frank", email, PASSWORD)

    me = in_console(page, console_recipe().replace(GUIDE_API_URL, stack.backend.url))

    assert me == {"user_id": auth_user_id(stack.auth_database, email), "email": email, "name": "Frank"}


def test_signed_out_visitor_of_tasks_is_sent_to_sign_in(page: DevTools, stack: Stack) -> None:
    page.navigate(f"{stack.app.url}/tasks")

    state = ui.until(page, lambda state: state["path"] == "/sign-in" and state["hydrated"])

    assert state["heading"] == "Sign in"
    assert api_requests(page, stack) == []


def test_wrong_password_is_refused_on_the_sign_in_page(page: DevTools, stack: Stack) -> None:
    email = new_email("grace")
    ui.sign_up(page, stack.app.url, "Grace", email, PASSWORD)
    ui.sign_out(page)

    ui.open_form(page, f"{stack.app.url}/sign-in")
    ui.fill(page, {"email": email, "password": "not the password"})
    refused = ui.until(page, lambda state: state["alert"] is not None)

    assert refused["path"] == "/sign-in"
    assert refused["alert"] == "Invalid email or password"
