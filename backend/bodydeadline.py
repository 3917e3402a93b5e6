"""A total deadline for reading a request body, whoever sends it.

Hypercorn's read timeout (10 s, backend/server.py) restarts with every byte,
so a client dripping one byte every few seconds would hold its connection
and its request for as long as it likes, once its token has let it reach the
body. `BodyReader` bounds the whole body: counted from the app's first
read, a piece of body that arrives after BODY_DEADLINE seconds, while the
body is still incomplete, fails the read with 408 BODY_TIMEOUT. The body was
not read to its end, so the answer carries `Connection: close`
(backend/middleware.py) and Hypercorn closes the connection after it.

The deadline is checked as each piece arrives rather than by a timer: a
client that sends nothing more is closed by the read timeout anyway, so a
body holds its connection for at most BODY_DEADLINE plus that timeout, and a
request pays a clock read instead of an asyncio timeout per read (about 8 us
each with uvloop here, and a body is read in two messages or more).
The one middleware (backend/middleware.py) gives the app a `BodyReader` as
its `receive`.

A body is at most 64 KiB (backend/payloads.py): even a poor mobile link
sends that in a few seconds, so the deadline is a constant, not a setting.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.types import Message, Receive

from backend.errors import RequestTimeoutError

BODY_DEADLINE: Final = 20.0
"""Seconds from the app's first read of a body to its last piece."""


class BodyReader:
    """One request's ASGI `receive`: a body still arriving `seconds` after the app's first read is a 408.

    `complete` tells whether the body has been read to its end (from the start
    when the request has none): an answer given before that closes the
    connection (backend/middleware.py).
    """

    __slots__ = ("_deadline", "_receive", "_seconds", "complete")

    def __init__(self, receive: Receive, *, has_body: bool, seconds: float = BODY_DEADLINE) -> None:
        self._receive = receive
        self._seconds = seconds
        self._deadline = 0.0
        self.complete = not has_body

    async def __call__(self) -> Message:
        if self.complete:  # after the body, a read waits for the client to leave: not a body read
            return await self._receive()
        self._deadline = self._deadline or time.monotonic() + self._seconds
        message = await self._receive()
        self.complete = message["type"] != "http.request" or not message.get("more_body", False)
        if not self.complete and time.monotonic() > self._deadline:
            raise RequestTimeoutError(self._seconds)
        return message
