"""Can tokens be verified: is Better Auth's JWKS endpoint there, with usable keys?

The key set is read exactly as the server reads it (`read_key_set` in
backend/keyset.py: one GET with a short timeout, redirects only within the
URL's origin, the same parsing), so "usable" means what the server means and
a failure gets the same cause and fix. A JWKS endpoint on this machine that
is refused in development is a warning (the frontend may not be started
yet); anywhere else it is a failure. And since Better Auth's JWT plugin never
signs with BETTER_AUTH_SECRET, a secret without working JWKS is called out:
tokens from Better Auth would all be rejected.

The server logs the same findings once it is ready (`log_auth_check`), and
serves meanwhile: Better Auth may well start after it.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from backend.diagnostics.results import Result, fail, found, ok, warn
from backend.keyset import KeySet, ProviderUnavailableError, new_client, read_key_set, this_backend_fix
from backend.settings import Settings, is_loopback_host

CHECK: Final = "auth"

logger = logging.getLogger(__name__)


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
                fix=f"make {_setting(settings)} lead to Better Auth's keys; keep the secret only for tokens you mint "
                "yourself",
            )
        )
    return results


async def log_auth_check(settings: Settings) -> None:
    """Log what `check_auth` finds: the server runs this once ready, without waiting for it."""
    for result in await check_auth(settings):
        if result.status == "ok":
            logger.info("Better Auth's keys: %s", result.message)
        else:
            logger.warning("%s: %s (fix: %s)", result.code, result.message, result.fix)


def _setting(settings: Settings) -> str:
    return settings.setting_for("BETTER_AUTH_JWKS_URL")


async def _check_jwks(settings: Settings, seconds: float) -> list[Result]:
    try:
        async with new_client(seconds, settings.jwks_url) as client:
            key_set = await read_key_set(client, settings.jwks_url, seconds=seconds, setting=_setting(settings))
    except ProviderUnavailableError as error:
        return [_failure(settings, error)]
    return _keys_results(key_set, settings)


def _keys_results(key_set: KeySet, settings: Settings) -> list[Result]:
    url = settings.jwks_url
    algorithms = sorted({algorithm for key in key_set.keys.values() for algorithm in key.algorithms[:1]})
    secret = "; HS256 with BETTER_AUTH_SECRET too" if settings.secret and not settings.secret_is_generated else ""
    results = [ok(CHECK, f"{url}: {len(key_set.keys)} usable key(s) ({', '.join(algorithms)}){secret}")]
    results.extend(
        warn(
            CHECK,
            code="AUTH_JWKS_KEY_SKIPPED",
            message=f"{url}: {reason}",
            fix="tokens signed with this key will be rejected; rotate it in Better Auth",
        )
        for reason in key_set.skipped
    )
    return results


def _failure(settings: Settings, error: ProviderUnavailableError) -> Result:
    parts = urlsplit(settings.jwks_url)
    local = is_loopback_host(parts.hostname or "")
    if error.code == "AUTH_JWKS_UNREACHABLE" and local and parts.port == settings.port:
        return fail(
            CHECK,
            code="AUTH_JWKS_IS_THIS_BACKEND",
            message=f"{error.message}; that is this backend's own port (PORT={settings.port})",
            fix=this_backend_fix(_setting(settings)),
        )
    if error.code == "AUTH_JWKS_UNREACHABLE" and local and not settings.is_production:
        message = f"{error.message}; requests with tokens will get 503 until it answers"
        return warn(CHECK, code=error.code, message=message, fix=error.fix)
    return found(CHECK, error.problem)
