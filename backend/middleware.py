"""The one ASGI middleware around the app: request ids, safe headers, CORS, the body deadline, shutdown.

One layer, with one wrapper of `receive` and one of `send`, where five
stacked layers each wrapped them again (each adding an await per message) and
two parsed the request's headers. Per request it:

- names it: the caller's `X-Request-ID` if sane, else a new id (`RequestIds`),
  set for the log lines (backend/logs.py) and the 500 handler;
- answers a CORS preflight itself (backend/cors.py);
- reads the body through `BodyReader` (backend/bodydeadline.py): the body
  deadline, and whether the body was read to its end;
- gives every answer `X-Request-ID`, `X-Content-Type-Options: nosniff`,
  `Cache-Control: no-store` (unless the answer set its own), `Vary: Origin`,
  the CORS headers for an allowed origin and no `Access-Control-*` header
  otherwise, and `Connection: close` when it came before the body was read;
- answers 503 for a request cut at the graceful timeout before its answer
  started (backend/shutdown.py).

Starlette's own error middlewares stay where Starlette puts them: the 500
handler outside this one (so it reads the request id from the context), the
handler of our errors inside (so a 401 or a 408 gets the headers above).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
from collections.abc import Iterable
from typing import Final

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.bodydeadline import BODY_DEADLINE, BodyReader
from backend.cors import CorsPolicy, Header
from backend.logs import REQUEST_ID
from backend.settings import Settings
from backend.shutdown import answer_cut_request

_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_READ: Final = frozenset(
    {
        b"x-request-id",
        b"origin",
        b"content-length",
        b"transfer-encoding",
        b"access-control-request-method",
        b"access-control-request-headers",
        b"access-control-request-private-network",
    }
)
_OURS: Final = frozenset({b"x-request-id", b"x-content-type-options"})  # replaced, never doubled
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_NO_STORE: Final = (b"cache-control", b"no-store")
_CLOSE: Final = (b"connection", b"close")


class RequestIds:
    """Request ids unique across requests, workers and restarts, without a random draw per request.

    Each id is a 64-bit prefix drawn from the OS's random source once per
    process, then a 64-bit counter, both in hex: 32 characters like a UUID's.
    Within a process the counter never repeats. Two processes (the workers,
    and every process that ever restarted) share ids only if they drew the
    same prefix: for a million processes over a deployment's life, a chance
    of about 3 in 100 million (the birthday bound, n^2 / 2^65), and then only
    for the counts both reached. A forked child draws its own prefix (so
    workers forked from one parent differ). `uuid4()` draws 16 random bytes
    and builds a UUID per request instead. The counter tells a client how
    many requests this process answered before its own; ids were never
    secrets, and that count is not one.
    """

    def __init__(self) -> None:
        self._prefix = ""
        self._count = itertools.count()
        if sys.platform != "win32":  # Windows never forks: its workers are spawned and import anew.
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._prefix = ""

    def next(self) -> str:
        if not self._prefix:
            self._prefix, self._count = os.urandom(8).hex(), itertools.count()
        return f"{self._prefix}{next(self._count):016x}"


# The process's ids; drawing its prefix waits for the first request (and a fork hook is all importing does).
REQUEST_IDS: Final = RequestIds()


class RequestMiddleware:
    """See the module's docstring: everything every request gets, in one ASGI layer."""

    def __init__(
        self, app: ASGIApp, *, cors: CorsPolicy, body_deadline: float = BODY_DEADLINE, ids: RequestIds = REQUEST_IDS
    ) -> None:
        self.app = app
        self.cors = cors
        self.body_deadline = body_deadline
        self.ids = ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = _head(scope["headers"])
        incoming = head.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else self.ids.next()
        # Not reset afterwards: the 500 handler runs outside this middleware and needs it.
        REQUEST_ID.set(request_id)
        has_body = head.get(b"content-length", b"0").strip() not in (b"", b"0") or b"transfer-encoding" in head
        exchange = _Exchange(send, BodyReader(receive, has_body=has_body, seconds=self.body_deadline), request_id)
        origin = head.get(b"origin")
        if origin is not None and scope["method"] == "OPTIONS" and b"access-control-request-method" in head:
            exchange.preflight = True
            await _preflight(self.cors, head, origin)(scope, exchange.body, exchange.send)
            return
        if origin is not None and self.cors.allows(origin.decode("latin-1")):
            exchange.cors = self.cors.answer_headers(origin)
        await self._serve(scope, exchange)

    async def _serve(self, scope: Scope, exchange: _Exchange) -> None:
        try:
            await self.app(scope, exchange.body, exchange.send)
        except asyncio.CancelledError:
            if not exchange.started:
                await answer_cut_request(scope, exchange.body, exchange.send)
            raise


def _head(headers: list[Header]) -> dict[bytes, bytes]:
    """The request headers this middleware reads, the first of each (as Starlette's `Headers.get`)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _READ and name not in found:
            found[name] = value
    return found


def _preflight(cors: CorsPolicy, head: dict[bytes, bytes], origin: bytes) -> ASGIApp:
    requested = head.get(b"access-control-request-headers")
    return cors.preflight(
        origin.decode("latin-1"),
        head[b"access-control-request-method"].decode("latin-1"),
        None if requested is None else requested.decode("latin-1"),
        b"access-control-request-private-network" in head,
    )


class _Exchange:
    """One request's `receive` (`body`) and `send`, and what its answer's headers need."""

    __slots__ = ("_send", "body", "cors", "preflight", "request_id", "started")

    def __init__(self, send: Send, body: BodyReader, request_id: str) -> None:
        self._send = send
        self.body = body
        self.request_id = request_id.encode("latin-1")
        self.cors: tuple[Header, ...] = ()  # the CORS headers of an allowed origin's answers
        self.preflight = False  # answered here: its CORS headers are its own
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            message["headers"] = self._headers(message.get("headers", ()))
        await self._send(message)

    def _headers(self, answer: Iterable[Header]) -> list[Header]:
        """The answer's headers, less any `Access-Control-*` we do not grant, plus ours (see the module)."""
        headers: list[Header] = []
        cors: list[Header] = []
        vary: list[bytes] = []
        for name, value in answer:
            key = name.lower()
            if key.startswith(b"access-control-"):
                cors.append((key, value))
            elif key == b"vary":
                vary.append(value)
            elif key not in _OURS and (key != b"connection" or self.body.complete):
                headers.append((name, value))
        if not self.preflight:
            cors, vary = list(self.cors), [*vary, b"Origin"]
        elif all(key != b"access-control-allow-origin" for key, _ in cors):
            cors = []
        headers.extend(cors)
        if vary:
            headers.append((b"vary", b", ".join(vary)))
        headers += ((b"x-request-id", self.request_id), _NOSNIFF)
        if all(key.lower() != b"cache-control" for key, _ in headers):
            headers.append(_NO_STORE)
        if not self.body.complete:
            # Answered before the body was read (a 401, a 413...): the rest of the body may still be on
            # its way, so Hypercorn closes this connection after the answer. Saying so keeps a client
            # from sending its next request into that close.
            headers.append(_CLOSE)
        return headers


def middleware(settings: Settings) -> list[Middleware]:
    return [Middleware(RequestMiddleware, cors=CorsPolicy.from_settings(settings))]
