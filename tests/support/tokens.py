"""Tokens for the tests: the suite's provider (its URL and shared secret),
tokens shaped like Better Auth's, hand-made ones, and the answers to expect."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import Key, OctKey
from starlette.applications import Starlette

from backend.jwks import KeyCache
from backend.settings import Settings
from backend.verifier import TokenVerifier
from tests.support.jwks_server import JWKSServer, sign
from tests.support.protocol import CHALLENGE, PROBLEM, bearer

# Random-looking on purpose: production refuses a guessable secret (backend/secretstrength.py).
SECRET = "test-shared-secret-Vb7Qm2xK9pLz4RwT8nHc3JdY6fGs1EaU0oIk5"
AUTH_URL = "http://localhost:3000"


@dataclasses.dataclass
class Tokens:
    """Tokens shaped like Better Auth's: sub, iss, aud, iat, exp (15 min), user fields."""

    jwks: JWKSServer

    def claims(self, sub: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": AUTH_URL,
            "aud": AUTH_URL,
            "iat": now,
            "exp": now + 900,
            "id": sub,
            "email": f"{sub}@example.com",
            "name": sub.title(),
            "emailVerified": False,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def hs256(self, sub: str, secret: str = SECRET, **overrides: Any) -> str:
        return jwt.encode(
            {"alg": "HS256"}, self.claims(sub, **overrides), OctKey.import_key(secret), algorithms=["HS256"]
        )

    def signed(self, sub: str, kid: str = "ed-1", **overrides: Any) -> str:
        key = provider_key(self.jwks, kid)
        alg = {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}[key.key_type]
        return sign(key, alg, self.claims(sub, **overrides))

    def headers(self, sub: str) -> dict[str, str]:
        return bearer(self.signed(sub))


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
