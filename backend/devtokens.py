"""Development tokens: HS256, signed with BETTER_AUTH_SECRET, for curl and tests.

Shaped like Better Auth's own tokens (`sub`, `iss`, `aud`, `iat`, `exp`, plus
`email` and `name`), so the backend treats them exactly as it would a real
one in shared-secret mode. Refused in production.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

from joserfc import jwt
from joserfc.jwk import OctKey

from backend.errors import AppError
from backend.settings import Settings

_DURATION: Final = re.compile(r"(\d+)([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenRequestError(AppError):
    code = "TOKEN_REQUEST_INVALID"


def parse_duration(text: str) -> int:
    """Seconds in '90', '15m', '1h' or '7d'."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise TokenRequestError(f"--ttl {text!r} is not a duration", "write it like 15m, 1h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def mint_token(settings: Settings, sub: str, *, ttl_seconds: int = 3600, **claims: Any) -> str:
    """An HS256 token for `sub` that this backend accepts with these settings."""
    if settings.is_production:
        raise TokenRequestError("dev tokens are refused when APP_ENV=production", "sign in through Better Auth")
    if settings.secret is None:
        raise TokenRequestError("BETTER_AUTH_SECRET is not set", "set it in .env (at least 32 characters)")
    if not sub.strip() or not sub.isprintable():
        raise TokenRequestError(f"--sub {sub!r} is not a usable user id", "pass printable text, e.g. --sub alice")
    now = int(time.time())
    payload = {
        "sub": sub,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        **{key: value for key, value in claims.items() if value is not None},
    }
    key = OctKey.import_key(settings.secret.reveal())
    return jwt.encode({"alg": "HS256"}, payload, key, algorithms=["HS256"])
