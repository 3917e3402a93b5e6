"""The backend against a real Better Auth: its JWT plugin's tokens, keys and rotation.

Each test starts `node interop/server.mjs` (Better Auth with the JWT plugin,
email and password sign-up) and a real backend whose BETTER_AUTH_URL points
at it, signs users up over HTTP and sends the JWTs that `/api/auth/token`
hands out to the backend, as a Next.js app does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from backend.jwks import KeyCache
from tests.interop.betterauth import BetterAuthServer, User, jose_header
from tests.support.live import LiveServer
from tests.support.protocol import bearer
from tests.support.tokens import assert_provider_unavailable, assert_unauthorized

pytestmark = pytest.mark.interop

StartProvider = Callable[..., BetterAuthServer]
StartBackend = Callable[[BetterAuthServer], LiveServer]

# The backend refetches the JWKS for an unknown kid at most this often.
REFETCH_SECONDS: float = (KeyCache.__init__.__kwdefaults__ or {})["refetch_interval"]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def me(http: httpx.Client, server: LiveServer, token: str) -> httpx.Response:
    return http.get(f"{server.url}/api/me", headers=bearer(token))


def assert_me(response: httpx.Response, user: User) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user.id, "email": user.email, "name": user.name}


def sleep_until(moment: float) -> None:
    """Sleep until time.monotonic() reaches `moment` (a little past it)."""
    time.sleep(max(0.0, moment - time.monotonic()) + 0.2)


def create_task(http: httpx.Client, server: LiveServer, user: User, token: str, title: str) -> dict[str, Any]:
    response = http.post(f"{server.url}/api/{user.id}/tasks", headers=bearer(token), json={"title": title})
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/{user.id}/tasks/{task['id']}"
    return task


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "PS256"])
def test_better_auth_token_reaches_its_own_tasks_and_is_refused_other_users_path(
    alg: str, better_auth: StartProvider, backend: StartBackend, http: httpx.Client
) -> None:
    provider = better_auth(alg=alg)
    server = backend(provider)
    alice, bob = provider.sign_up("Alice"), provider.sign_up("Bob")
    token = provider.token(alice)
    header = jose_header(token)
    assert header["alg"] == alg
    assert header["kid"] in provider.kids()

    assert_me(me(http, server, token), alice)
    task = create_task(http, server, alice, token, f"Signed with {alg}")
    assert task["user_id"] == alice.id
    assert task["title"] == f"Signed with {alg}"
    assert task["completed"] is False

    listed = http.get(f"{server.url}/api/{alice.id}/tasks", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert listed.json() == [task]
    assert listed.headers["x-total-count"] == "1"

    foreign = http.get(f"{server.url}/api/{bob.id}/tasks", headers=bearer(token))
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["code"] == "USER_MISMATCH"
    bobs = http.get(f"{server.url}/api/{bob.id}/tasks", headers=bearer(provider.token(bob)))
    assert bobs.status_code == 200, bobs.text
    assert bobs.json() == []


def test_better_auth_url_pasted_with_its_api_path_works_on_both_sides(
    better_auth: StartProvider, backend: StartBackend, http: httpx.Client
) -> None:
    # BETTER_AUTH_URL=http://host/api/auth on both sides: Better Auth signs with
    # the origin and serves its keys under that path; the backend derives both.
    provider = better_auth(base_path="/api/auth")
    server = backend(provider)
    alice = provider.sign_up("Alice")
    token = provider.token(alice)

    assert_me(me(http, server, token), alice)
    assert server.stderr.count("Loaded 1 signing key(s)") == 1


def test_token_signed_with_a_rotated_key_is_accepted_without_restarting_the_backend(
    better_auth: StartProvider, backend: StartBackend, http: httpx.Client
) -> None:
    # jwks.rotationInterval: once the key is older than this, Better Auth signs
    # with a new kid and keeps publishing the old key for its grace period.
    provider = better_auth(rotation_seconds=1)
    server = backend(provider)
    alice = provider.sign_up("Alice")
    old_token = provider.token(alice)
    assert_me(me(http, server, old_token), alice)
    first_fetch = time.monotonic()

    sleep_until(first_fetch + REFETCH_SECONDS)
    new_token = provider.token(alice)
    old_kid, new_kid = jose_header(old_token)["kid"], jose_header(new_token)["kid"]
    assert new_kid != old_kid
    assert set(provider.kids()) == {old_kid, new_kid}

    assert_me(me(http, server, new_token), alice)
    assert_me(me(http, server, old_token), alice)
    assert server.running()
    assert server.stderr.count("Loaded 2 signing key(s)") == 1


def test_token_from_another_better_auth_with_the_same_url_is_rejected_with_401(
    better_auth: StartProvider, backend: StartBackend, http: httpx.Client
) -> None:
    provider = better_auth()
    # Same baseURL, so the same iss and aud: only the signing key differs.
    impostor = better_auth(base_url=provider.base_url)
    server = backend(provider)
    alice = provider.sign_up("Alice")
    assert_me(me(http, server, provider.token(alice)), alice)

    mallory = impostor.sign_up("Mallory")
    forged = impostor.token(mallory)
    assert jose_header(forged)["kid"] not in provider.kids()
    response = me(http, server, forged)
    assert_unauthorized(response, detail=f"No signing key with kid {jose_header(forged)['kid']!r} at the provider")

    mine = http.get(f"{server.url}/api/{mallory.id}/tasks", headers=bearer(forged))
    assert_unauthorized(mine)


def test_provider_down_keeps_known_kids_working_and_answers_503_for_an_unknown_kid(
    better_auth: StartProvider, backend: StartBackend, http: httpx.Client
) -> None:
    provider = better_auth(rotation_seconds=1)
    server = backend(provider)
    alice = provider.sign_up("Alice")
    known = provider.token(alice)
    assert_me(me(http, server, known), alice)
    first_fetch = time.monotonic()
    time.sleep(1.2)  # past the rotation interval: the next token has a kid the backend never saw
    unknown = provider.token(alice)
    assert jose_header(unknown)["kid"] != jose_header(known)["kid"]

    provider.stop()
    assert_me(me(http, server, known), alice)
    sleep_until(first_fetch + REFETCH_SECONDS)
    response = me(http, server, unknown)
    assert_provider_unavailable(response)
    assert_me(me(http, server, known), alice)
    created = http.post(f"{server.url}/api/{alice.id}/tasks", headers=bearer(known), json={"title": "Offline"})
    assert created.status_code == 201, created.text
    assert "Traceback" not in server.stderr
