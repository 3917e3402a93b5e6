"""Who is calling: the bearer token of a request, verified by the app's `TokenVerifier`.

This module reads the `Authorization` header and names what is wrong with
it; backend/verifier.py verifies the token (joserfc). The verifier, and with
it joserfc and cryptography, is imported once the port answers (the app's
startup loads it in a thread) or by the first request that needs it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from starlette.requests import Request

from backend.errors import UnauthorizedError
from backend.state import app_state

GET_THE_JWT: Final = (
    "get the JWT from Better Auth's jwt plugin: `authClient.token()` in the browser, the `set-auth-jwt` header "
    "of a session fetch, or `auth.api.getToken({ headers })` on the server"
)
# Better Auth's session cookie: `better-auth.session_token`, with `__Secure-` over https, or another prefix.
_SESSION_COOKIE: Final = re.compile(r"(?:__Secure-)?[\w.-]+\.session_token")


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, from the token's claims."""

    user_id: str
    email: str | None
    name: str | None


async def authenticate(request: Request) -> Principal:
    """The caller of `request`, from exactly one `Authorization: Bearer` header."""
    headers = request.headers.getlist("authorization")
    if not headers:
        raise UnauthorizedError(_missing_detail(request), code="TOKEN_MISSING", oauth_error=None)
    if len(headers) > 1:
        raise UnauthorizedError("Send one Authorization header, not several", oauth_error="invalid_request")
    scheme, _, token = headers[0].strip().partition(" ")
    token = token.strip()
    # RFC 7235: the scheme is case-insensitive.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise UnauthorizedError("The Authorization header must be: Bearer <token>", oauth_error="invalid_request")
    # A rejection is logged (reason only, never the token) by the problem handler.
    return await app_state(request.app).verifier.verify(token)


def _missing_detail(request: Request) -> str:
    sent = "Send the Better Auth token as Authorization: Bearer <token>"
    cookies = sorted(name for name in request.cookies if _SESSION_COOKIE.fullmatch(name))
    if not cookies:
        return sent
    return (
        f"No Authorization header; the request carries Better Auth's session cookie ({cookies[0]}), which this API "
        f"ignores. {sent}: {GET_THE_JWT}"
    )
