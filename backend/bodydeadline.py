"""A total deadline for reading a request body, whoever sends it.

Hypercorn's read timeout (10 s, backend/server.py) restarts with every byte,
so a client dripping one byte every few seconds would hold its connection
and its request for as long as it likes, once its token has let it reach the
body. `BodyDeadline` bounds the whole body: counted from the app's first
read, a piece of body that arrives after BODY_DEADLINE seconds, while the
body is still incomplete, fails the read with 408 BODY_TIMEOUT. The body was
not read to its end, so the answer carries `Connection: close`
(backend/middleware.py) and Hypercorn closes the connection after it.

The deadline is checked as each piece arrives rather than by a timer: a
client that sends nothing more is closed by the read timeout anyway, so a
body holds its connection for at most BODY_DEADLINE plus that timeout, and a
request pays a clock read instead of an asyncio timeout per read (about 8 us
each with uvloop here, and a body is read in two messages or more).

A body is at most 64 KiB (backend/payloads.py): even a poor mobile link
sends that in a few seconds, so the deadline is a constant, not a setting.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import RequestTimeoutError

BODY_DEADLINE: Final = 20.0
"""Seconds from the app's first read of a body to its last piece."""


class BodyDeadline:
    """ASGI middleware: a body still arriving BODY_DEADLINE seconds after the first read is a 408."""

    def __init__(self, app: ASGIApp, seconds: float = BODY_DEADLINE) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = 0.0
        complete = False

        async def receive_by_deadline() -> Message:
            nonlocal deadline, complete
            if complete:  # after the body, a read waits for the client to leave: not a body read
                return await receive()
            deadline = deadline or time.monotonic() + self.seconds
            message = await receive()
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if not complete and time.monotonic() > deadline:
                raise RequestTimeoutError(self.seconds)
            return message

        await self.app(scope, receive_by_deadline, send)
