"""ASGI middleware: request ids and security headers, then CORS (its headers only for allowed origins)."""

from __future__ import annotations

import re
import uuid
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.logs import REQUEST_ID
from backend.settings import Settings

_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Next.js moves from port 3000 to 3001 when 3000 is taken: in development any
# loopback origin is allowed so that never breaks the app.
_LOOPBACK_ORIGIN: Final = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"


class RequestContextMiddleware:
    """Give every request an id (the caller's X-Request-ID if sane) and safe headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        incoming = request_headers.get("x-request-id", "")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        # Not reset afterwards: the 500 handler runs outside this middleware and needs it.
        REQUEST_ID.set(request_id)
        body_read = not _has_body(request_headers)

        async def receive_tracking() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Cache-Control", "no-store")
                if not body_read:
                    # Answered before the body was read (a 401, a 413...): the rest of the body may
                    # still be on its way, so Hypercorn closes this connection after the answer.
                    # Saying so keeps a client from sending its next request into that close.
                    headers["Connection"] = "close"
            await send(message)

        await self.app(scope, receive_tracking, send_with_headers)


class CorsOnlyForAllowedOrigins:
    """No `Access-Control-*` header unless the origin was allowed.

    Starlette's CORSMiddleware sends `Access-Control-Allow-Credentials: true`
    (and its preflight's methods, headers and max age) to any origin, allowed or
    not, leaving it to the missing `Allow-Origin` to refuse. Browsers do refuse,
    but an answer that grants credentials to nobody in particular invites a
    proxy or a future change to pair it with the wrong origin. Wraps the CORS
    middleware and drops them from an answer that names no allowed origin.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_checked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "access-control-allow-origin" not in headers:
                    for name in {key for key in headers if key.startswith("access-control-")}:
                        del headers[name]
            await send(message)

        await self.app(scope, receive, send_checked)


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


def middleware(settings: Settings) -> list[Middleware]:
    return [
        Middleware(RequestContextMiddleware),
        Middleware(CorsOnlyForAllowedOrigins),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_origin_regex=None if settings.is_production else _LOOPBACK_ORIGIN,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["Location", "Retry-After", "X-Request-ID", "X-Total-Count"],
            max_age=600,
        ),
    ]
