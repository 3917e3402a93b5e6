"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.

Messages are JSON objects separated by a NUL byte, commands on one pipe and
replies and events on the other: no websocket, no port, no dependency. The
client attaches to the tab (flat sessions), runs JavaScript in it, and keeps
what the page reported on its own: console errors (a CSP violation is one),
uncaught exceptions, and the URL of every request the page sent.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import time
from pathlib import Path
from typing import Any

TIMEOUT = 30.0
POLL_INTERVAL = 0.05


class DevToolsError(AssertionError):
    """The browser did not answer, or answered with an error; carries Chromium's output."""

    def __init__(self, what: str, log: Path | None) -> None:
        output = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
        super().__init__(f"{what}\nChromium's output:\n{output}")


class NavigatingError(DevToolsError):
    """The page's JavaScript context went away mid-call: it is navigating; ask again."""


# What Chromium answers when an evaluation meets a navigation.
_NAVIGATING = ("Execution context was destroyed", "Cannot find default execution context")


class DevTools:
    """One tab of a Chromium started with `--remote-debugging-pipe`; owns both pipe ends."""

    def __init__(self, commands: int, replies: int) -> None:
        self._commands = commands
        self._replies = replies
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self.log: Path | None = None
        self.console_errors: list[dict[str, Any]] = []
        self.exceptions: list[str] = []
        self.requests: list[str] = []
        self._added_headers: dict[str, str] = {}
        # Ids of the commands sent from inside the event loop, never awaited: apart from call()'s.
        self._unanswered_ids = itertools.count(1 << 30)

    def attach(self, log: Path) -> None:
        """Open a tab of our own, attach to it, and start collecting its console, exceptions and requests."""
        self.log = log
        tab = self.call("Target.createTarget", session=False, url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", session=False, targetId=tab, flatten=True)
        self._session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        self._send(self._next_id, method, params, session)
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    navigating = any(text in str(reply["error"]) for text in _NAVIGATING)
                    raise (NavigatingError if navigating else DevToolsError)(f"{method}: {reply['error']}", self.log)
                result: dict[str, Any] = reply["result"]
                return result
            self._record(reply)

    def add_headers(self, url_pattern: str, headers: dict[str, str]) -> None:
        """Send `headers` with every request whose URL matches `url_pattern` (`*` wildcards), and no other.

        Network.setExtraHTTPHeaders would add them to cross-origin calls too,
        whose CORS preflight may not allow them.
        """
        self._added_headers = headers
        self.call("Fetch.enable", patterns=[{"urlPattern": url_pattern, "requestStage": "Request"}])

    def navigate(self, url: str) -> None:
        """Load `url` in the tab (again, if it shows it already) and wait until it has loaded."""
        # A mark on the old document: the wait cannot end on it, even for the same URL.
        self.evaluate("window.leftByDevTools = true")
        self.call("Page.navigate", url=url)
        loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        self.wait_for(f"!window.leftByDevTools && {loaded}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails']}", self.log)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = TIMEOUT) -> Any:
        """Evaluate `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except NavigatingError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"{expression!r} still false after {timeout}s", self.log)
            time.sleep(POLL_INTERVAL)

    def close(self) -> None:
        os.close(self._commands)
        os.close(self._replies)

    def _send(self, message_id: int, method: str, params: dict[str, Any], session: bool) -> None:
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._replies, 1 << 16) if ready else b""
            if not chunk:
                what = "no answer" if not ready else "the pipe closed: Chromium exited"
                raise DevToolsError(f"DevTools: {what}", self.log)
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        event: dict[str, Any] = json.loads(message)
        return event

    def _record(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console_errors.append(params["entry"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.console_errors.append(params)
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(json.dumps(params["exceptionDetails"]))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Fetch.requestPaused":
            headers = {**params["request"]["headers"], **self._added_headers}
            entries = [{"name": name, "value": value} for name, value in headers.items()]
            continued = {"requestId": params["requestId"], "headers": entries}
            self._send(next(self._unanswered_ids), "Fetch.continueRequest", continued, session=True)
