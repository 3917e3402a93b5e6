"""A user's hands on the example app: DevTools calls that fill, click and read its pages.

Nothing here knows the app's code, only what it shows: headings, the forms'
field names, buttons by their text, and one `<li>` per task with its title,
its checkbox and its buttons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.browser.devtools import TIMEOUT, DevTools, DevToolsError, NavigatingError

# What the page shows a user.
SNAPSHOT = """(() => {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((node) => node.textContent);
  const form = document.querySelector("main form");
  return {
    path: location.pathname,
    heading: document.querySelector("h1")?.textContent ?? null,
    alert: document.querySelector("[role=alert]")?.textContent ?? null,
    signed_in_as: texts("main p").find((text) => text.startsWith("Signed in as ")) ?? null,
    count: texts("main p").find((text) => /^[0-9]+ tasks?$/.test(text)) ?? null,
    tasks: [...document.querySelectorAll("main li")].map((item) => ({
      title: item.querySelector("span")?.textContent ?? null,
      done: item.querySelector("input[type=checkbox]")?.checked ?? null,
      struck: item.querySelector("span")?.classList.contains("done") ?? false,
    })),
    // React marks the elements it has hydrated; a click before that would be lost.
    hydrated: form !== null && Object.keys(form).some((key) => key.startsWith("__reactProps")),
  };
})()"""


def snapshot(page: DevTools) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(SNAPSHOT)
    return state


def until(page: DevTools, condition: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
    """The page's snapshot once `condition` holds for it."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while True:
        try:
            state = snapshot(page)
        except NavigatingError:
            state = {}
        if state and condition(state):
            return state
        if time.monotonic() > deadline:
            raise DevToolsError(f"the page never got there; it shows {state}", page.log)
        time.sleep(0.05)


def titles(state: dict[str, Any]) -> list[str]:
    return [task["title"] for task in state["tasks"]]


def open_form(page: DevTools, url: str) -> dict[str, Any]:
    page.navigate(url)
    return until(page, lambda state: state["hydrated"])


def fill(page: DevTools, fields: dict[str, str], form: str = "main form") -> None:
    """Type each value into the field of that name in `form`, then submit it."""
    for name, value in fields.items():
        field = f"document.querySelector({json.dumps(form)}).elements[{json.dumps(name)}]"
        page.evaluate(f"{field}.value = {json.dumps(value)}")
    page.evaluate(f"document.querySelector({json.dumps(form)}).requestSubmit()")


def click(page: DevTools, button: str, row: str | None = None) -> None:
    """Click the button labelled `button`, in the task titled `row` when given."""
    scope = "document" if row is None else _row(row)
    buttons = f"[...{scope}.querySelectorAll('button, input[type=checkbox]')]"
    target = f"{buttons}.find((node) => (node.textContent || node.getAttribute('aria-label')) === {json.dumps(button)})"
    clicked = page.evaluate(f"((node) => node !== undefined && (node.click(), true))({target})")
    assert clicked, f"no {button!r} button" + ("" if row is None else f" in the task {row!r}")


def _row(title: str) -> str:
    items = "[...document.querySelectorAll('main li')]"
    return f"{items}.find((item) => item.querySelector('span')?.textContent === {json.dumps(title)})"


def sign_up(page: DevTools, app_url: str, name: str, email: str, password: str) -> dict[str, Any]:
    open_form(page, f"{app_url}/sign-up")
    fill(page, {"name": name, "email": email, "password": password})
    return until(page, _on_tasks)


def sign_in(page: DevTools, app_url: str, email: str, password: str) -> dict[str, Any]:
    open_form(page, f"{app_url}/sign-in")
    fill(page, {"email": email, "password": password})
    return until(page, _on_tasks)


def _on_tasks(state: dict[str, Any]) -> bool:
    return bool(state["path"] == "/tasks" and state["hydrated"] and state["count"] is not None)


def sign_out(page: DevTools) -> dict[str, Any]:
    click(page, "Sign out")
    return until(page, lambda state: state["path"] == "/sign-in" and state["hydrated"])


def add(page: DevTools, title: str) -> dict[str, Any]:
    fill(page, {"title": title})
    return until(page, lambda state: title in titles(state))


def toggle(page: DevTools, title: str) -> dict[str, Any]:
    before = next(task["done"] for task in snapshot(page)["tasks"] if task["title"] == title)
    click(page, "Done", row=title)
    return until(page, lambda state: any(t["title"] == title and t["done"] is not before for t in state["tasks"]))


def rename(page: DevTools, title: str, new_title: str) -> dict[str, Any]:
    click(page, "Edit", row=title)
    page.wait_for("document.querySelector('main li form') !== null")
    fill(page, {"title": new_title}, form="main li form")
    return until(page, lambda state: new_title in titles(state) and title not in titles(state))


def delete(page: DevTools, title: str) -> dict[str, Any]:
    click(page, "Delete", row=title)
    return until(page, lambda state: title not in titles(state))
