"""Can tokens be verified: is Better Auth's JWKS endpoint there, with usable keys?

One GET with a short timeout, the answer parsed by backend/jwks.py's own
`parse_key_set` (so "usable" means what the server means). A JWKS endpoint on
this machine that is down in development is a warning (the frontend may not be
started yet); anywhere else it is a failure. And since Better Auth's JWT
plugin never signs with BETTER_AUTH_SECRET, a secret without working JWKS is
called out: tokens from Better Auth would all be rejected.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final
from urllib.parse import urlsplit

import httpx

from backend.diagnostics.results import Result, fail, ok, warn
from backend.jwks import MAX_JWKS_BYTES, ProviderUnavailableError, parse_key_set
from backend.settings import Settings, is_loopback_host

CHECK: Final = "auth"
_URL_FIX: Final = (
    "set BETTER_AUTH_JWKS_URL (or BETTER_AUTH_URL) to your Better Auth server; "
    "its jwt() plugin serves the keys at /api/auth/jwks"
)


class _UnreachableError(Exception):
    pass


async def check_auth(settings: Settings, *, seconds: float = 3.0) -> list[Result]:
    """The JWKS result, and the shared-secret note when it applies."""
    jwks = await _check_jwks(settings, seconds)
    results = list(jwks)
    secret_set = settings.secret is not None and not settings.secret_is_generated
    if secret_set and jwks[0].status != "ok":
        results.append(
            warn(
                CHECK,
                code="AUTH_SECRET_ONLY",
                message="only BETTER_AUTH_SECRET can verify tokens now, but Better Auth's JWT plugin never signs "
                "with it: its tokens (EdDSA, from JWKS) will be rejected",
                fix="make BETTER_AUTH_JWKS_URL reachable; keep the secret only for tokens you mint yourself",
            )
        )
    return results


async def _check_jwks(settings: Settings, seconds: float) -> list[Result]:
    url = settings.jwks_url
    try:
        status, body = await _get(url, seconds)
    except _UnreachableError as error:
        return [_unreachable(settings, f"GET {url} failed: {error}")]
    if status != 200:
        return [fail(CHECK, code="AUTH_JWKS_HTTP_ERROR", message=f"GET {url} answered HTTP {status}", fix=_URL_FIX)]
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return [fail(CHECK, code="AUTH_JWKS_NOT_JSON", message=f"GET {url} did not answer JSON", fix=_URL_FIX)]
    return _keys_results(url, document, settings)


def _keys_results(url: str, document: object, settings: Settings) -> list[Result]:
    try:
        keys, skipped = parse_key_set(document)
    except ProviderUnavailableError as error:
        return [fail(CHECK, code="AUTH_JWKS_NO_KEYS", message=f"GET {url}: {error}", fix=_URL_FIX)]
    if not keys:
        reasons = "; ".join(skipped[:3]) or "the key set is empty"
        return [
            fail(
                CHECK,
                code="AUTH_JWKS_NO_KEYS",
                message=f"GET {url} holds no usable signing key ({reasons})",
                fix="Better Auth's keys are Ed25519 (OKP) by default; EC P-256 and RSA work too",
            )
        ]
    algorithms = sorted({algorithm for key in keys.values() for algorithm in key.algorithms[:1]})
    secret = "; HS256 with BETTER_AUTH_SECRET too" if settings.secret and not settings.secret_is_generated else ""
    results = [ok(CHECK, f"{url}: {len(keys)} usable key(s) ({', '.join(algorithms)}){secret}")]
    results.extend(
        warn(
            CHECK,
            code="AUTH_JWKS_KEY_SKIPPED",
            message=f"{url}: {reason}",
            fix="tokens signed with this key will be rejected; rotate it in Better Auth",
        )
        for reason in skipped
    )
    return results


async def _get(url: str, seconds: float) -> tuple[int, bytes]:
    """Status and body (at most MAX_JWKS_BYTES), within `seconds` in all; `_UnreachableError` otherwise."""
    try:
        async with (
            asyncio.timeout(seconds),
            httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise _UnreachableError(f"the answer is larger than {MAX_JWKS_BYTES} bytes")
            return response.status_code, bytes(body)
    except TimeoutError:
        raise _UnreachableError(f"no answer within {seconds:g}s") from None
    except httpx.HTTPError as error:
        raise _UnreachableError(f"{type(error).__name__}: {error}") from None


def _unreachable(settings: Settings, message: str) -> Result:
    host = urlsplit(settings.jwks_url).hostname or ""
    if not settings.is_production and is_loopback_host(host):
        return warn(
            CHECK,
            code="AUTH_JWKS_UNREACHABLE",
            message=f"{message}; requests with tokens will get 503 until it answers",
            fix="start the frontend (`npm run dev`) so Better Auth serves its keys, or fix BETTER_AUTH_JWKS_URL",
        )
    return fail(CHECK, code="AUTH_JWKS_UNREACHABLE", message=message, fix=_URL_FIX)
