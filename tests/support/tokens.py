"""Helpers for the token tests: hand-made tokens and the answers to expect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from joserfc.jwk import Key
from starlette.applications import Starlette

from backend.app import create_app
from backend.auth import TokenVerifier
from backend.jwks import KeyCache
from backend.settings import Settings
from tests.support.jwks_server import JWKSServer

PROBLEM = "application/problem+json"
CHALLENGE = 'Bearer realm="api"'


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def forge(header: Any, claims: Any, signature: bytes = b"") -> str:
    """A compact JWS assembled by hand, with whatever signature bytes we like."""
    return f"{b64json(header)}.{b64json(claims)}.{b64url(signature)}"


def hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed by hand, so any bytes at all can serve as the secret."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def provider_key(jwks: JWKSServer, kid: str) -> Key:
    return next(key for key in jwks.keys if key.kid == kid)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/me", headers=bearer(token))


def assert_unauthorized(
    response: httpx.Response, *, code: str = "TOKEN_INVALID", error: str = "invalid_token", detail: str = ""
) -> dict[str, Any]:
    """A 401 problem whose challenge carries the RFC 6750 error code; returns the body."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'{CHALLENGE}, error="{error}", error_description="'), challenge
    problem: dict[str, Any] = response.json()
    assert problem["status"] == 401
    assert problem["title"] == "Unauthorized"
    assert problem["code"] == code
    assert problem["type"] == f"urn:todo-backend:problem:{code.lower().replace('_', '-')}"
    assert detail in problem["detail"], problem["detail"]
    return problem


def assert_provider_unavailable(response: httpx.Response, *, retry: bool = True, detail: str = "") -> None:
    """A 503 AUTH_PROVIDER_UNAVAILABLE; its detail says "retry" exactly when retrying can help (`retry`)."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["code"] == "AUTH_PROVIDER_UNAVAILABLE"
    assert problem["status"] == 503
    assert ("retry" in problem["detail"]) is retry, problem["detail"]
    assert detail in problem["detail"], problem["detail"]


async def use_key_cache(app: Starlette, settings: Settings, url: str = "", **options: float) -> KeyCache:
    """Give the app a fresh verifier whose KeyCache has these options (the lifespan closes it)."""
    await app.state.backend.verifier.aclose()
    keys = KeyCache(url or settings.jwks_url, **options)
    app.state.backend.verifier = TokenVerifier(settings, keys=keys)
    return keys


@contextlib.asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from `settings`, its lifespan running and its database ready."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        async with asyncio.timeout(10):
            while not application.state.backend.startup.ready:
                assert application.state.backend.startup.error is None, application.state.backend.startup.error
                await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
