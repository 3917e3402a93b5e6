"""Which browser origins may call the API, and the CORS headers that say so.

The policy Starlette's CORSMiddleware applied with our configuration, with one
difference kept from before: an answer to an origin that is not allowed
carries no `Access-Control-*` header at all. Starlette sent
`Access-Control-Allow-Credentials: true` (and its preflight's methods,
headers and max age) to any origin, leaving the missing `Allow-Origin` to
refuse; browsers do refuse, but an answer granting credentials to nobody in
particular is one proxy rule away from granting them to the wrong origin.

Credentials are always allowed, so an allowed origin is named, never `*`
(settings refuse `*` in CORS_ORIGINS). In development any loopback origin is
allowed too: Next.js moves from port 3000 to 3001 when 3000 is taken.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from starlette.responses import PlainTextResponse, Response

from backend.settings import Settings

Header = tuple[bytes, bytes]

LOOPBACK_ORIGIN: Final = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
# The CORS-safelisted request headers, which a preflight may always name, and ours.
REQUEST_HEADERS: Final = (
    "Accept",
    "Accept-Language",
    "Authorization",
    "Content-Language",
    "Content-Type",
    "X-Request-ID",
)
EXPOSED_HEADERS: Final = ("Location", "Retry-After", "X-Request-ID", "X-Total-Count")
MAX_AGE: Final = 600

_PREFLIGHT_VARY: Final = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
)
_ALLOWED_ANSWER: Final = (
    (b"access-control-allow-credentials", b"true"),
    (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
)


class CorsPolicy:
    """The allowed origins: a fixed list, and in development the loopback pattern."""

    def __init__(self, origins: Collection[str], *, pattern: str | None = None) -> None:
        self._origins = frozenset(origins)
        self._pattern = re.compile(pattern) if pattern is not None else None
        self._request_headers = frozenset(name.lower() for name in REQUEST_HEADERS)

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(settings.cors_origins, pattern=None if settings.is_production else LOOPBACK_ORIGIN)

    def allows(self, origin: str) -> bool:
        return origin in self._origins or (self._pattern is not None and self._pattern.fullmatch(origin) is not None)

    def answer_headers(self, origin: bytes) -> tuple[Header, ...]:
        """The CORS headers of an ordinary answer to a request from an allowed `origin` (Vary aside)."""
        return (*_ALLOWED_ANSWER, (b"access-control-allow-origin", origin))

    def preflight(self, origin: str, method: str, headers: str | None, private_network: bool) -> Response:
        """The answer to a preflight: 200 when origin, method and headers are all allowed, else 400 naming why."""
        failures = [] if self.allows(origin) else ["origin"]
        if method not in METHODS:
            failures.append("method")
        if headers is not None and any(
            name.strip() not in self._request_headers for name in headers.lower().split(",")
        ):
            failures.append("headers")
        if private_network:
            failures.append("private-network")
        answer = {"Vary": _PREFLIGHT_VARY}
        if "origin" not in failures:
            answer.update(self._preflight_grants(origin))
        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), status_code=400, headers=answer)
        return PlainTextResponse("OK", headers=answer)

    def _allows_headers(self, requested: str) -> bool:
        return all(name.strip() in self._request_headers for name in requested.lower().split(","))

    @staticmethod
    def _preflight_grants(origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Methods": ", ".join(METHODS),
            "Access-Control-Max-Age": str(MAX_AGE),
            "Access-Control-Allow-Headers": ", ".join(REQUEST_HEADERS),
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Origin": origin,
        }
