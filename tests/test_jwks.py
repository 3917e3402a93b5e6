"""The provider's keys through the HTTP API: caching, refetching on an unknown
kid at a bounded rate, rotation, and a provider that is down or serves nonsense.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from starlette.applications import Starlette

from backend.jwks import COLD_REFETCH_INTERVAL
from backend.keyset import MAX_JWKS_BYTES
from backend.settings import Settings
from tests.support.apps import ready_server, running_client
from tests.support.jwks_server import JWKSServer, generate_key, sign
from tests.support.tokens import (
    Tokens,
    assert_provider_unavailable,
    assert_unauthorized,
    b64url,
    hmac_token,
    me,
    provider_key,
    use_key_cache,
)

# -- the provider's keys: caching, refetching, rotation -------------------------------------------


async def test_unknown_kid_refetches_the_jwks_once_then_401(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, refetch_interval=0.05)
    assert (await me(client, tokens.signed("alice"))).status_code == 200
    await asyncio.sleep(0.1)
    before = provider.requests

    impostor = generate_key("EdDSA", "ed-unknown")
    response = await me(client, sign(impostor, "EdDSA", tokens.claims("alice")))

    assert_unauthorized(response, detail="No signing key with kid 'ed-unknown'")
    assert provider.requests - before == 1


async def test_known_kid_is_served_from_the_cache(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    assert (await me(client, tokens.signed("alice"))).status_code == 200
    before = provider.requests

    for kid in ("ed-1", "es-1", "rs-1", "ed-1"):
        assert (await me(client, tokens.signed("alice", kid=kid))).status_code == 200

    assert provider.requests == before


async def test_many_unknown_kid_tokens_cause_one_fetch(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    before = provider.requests
    forged = [sign(generate_key("EdDSA", f"unknown-{n}"), "EdDSA", tokens.claims("alice")) for n in range(5)]

    concurrent = await asyncio.gather(*(me(client, forged[n % 5]) for n in range(20)))
    sequential = [await me(client, forged[n % 5]) for n in range(20)]

    for response in [*concurrent, *sequential]:
        assert_unauthorized(response, detail="No signing key with kid 'unknown-")
    assert provider.requests - before == 1


async def test_concurrent_unknown_kids_share_one_slow_fetch(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    tokens: Tokens,
    provider: JWKSServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No rate limit at all: only the lock makes callers that queued behind a fetch reuse it.
    await use_key_cache(app, settings, refetch_interval=0)
    answer = provider._answer

    def slow_answer() -> tuple[int, bytes]:
        time.sleep(0.3)
        return answer()

    monkeypatch.setattr(provider, "_answer", slow_answer)
    before = provider.requests
    token = sign(generate_key("ES256", "es-unknown"), "ES256", tokens.claims("alice"))

    responses = await asyncio.gather(*(me(client, token) for _ in range(10)))

    for response in responses:
        assert_unauthorized(response, detail="No signing key")
    assert provider.requests - before == 1


async def test_rotated_key_is_picked_up_without_a_restart(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, refetch_interval=0.05)
    assert (await me(client, tokens.signed("alice"))).status_code == 200

    provider.add_key("EdDSA", "ed-2")
    await asyncio.sleep(0.1)
    response = await me(client, tokens.signed("alice", kid="ed-2"))

    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"
    assert (await me(client, tokens.signed("alice", kid="ed-1"))).status_code == 200


async def test_removed_key_stops_working_after_the_cache_expires(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, refetch_interval=0.05, max_age=0.05)
    removed = provider_key(provider, "es-1")
    token = sign(removed, "ES256", tokens.claims("alice"))
    assert (await me(client, token)).status_code == 200

    provider.keys.remove(removed)
    await asyncio.sleep(0.1)
    # Stale: this request is served from the cache and refreshes it in the background.
    assert (await me(client, tokens.signed("alice", kid="ed-1"))).status_code == 200
    for _ in range(50):
        response = await me(client, token)
        if response.status_code != 200:
            break
        await asyncio.sleep(0.02)

    assert_unauthorized(response, detail="No signing key with kid 'es-1'")


async def test_token_without_kid_uses_the_only_key_from_the_first_request(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    key = provider_key(provider, "es-1")
    provider.keys[:] = [key]
    token = jwt.encode({"alg": "ES256"}, tokens.claims("alice"), key, algorithms=["ES256"])
    assert "kid" not in json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))

    first, second = await me(client, token), await me(client, token)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text


async def test_token_without_kid_is_401_when_the_provider_has_several_keys(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    token = hmac_token({"alg": "EdDSA"}, tokens.claims("alice"), b"whatever")

    response = await me(client, token)

    assert_unauthorized(response, detail="no kid")


# -- the provider down or serving nonsense -------------------------------------------------------


@pytest.mark.parametrize(("mode", "retry"), [("error", True), ("garbage", False)])
async def test_provider_down_with_unknown_kid_is_503_with_retry_after(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, mode: str, retry: bool
) -> None:
    provider.mode = mode

    response = await me(client, tokens.signed("alice"))

    # A 500 may pass; a web page where the keys should be will not without a change of configuration.
    assert_provider_unavailable(response, retry=retry)


async def test_hanging_provider_is_503_after_the_timeout(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, timeout=0.2)
    provider.mode = "hang"

    started = time.monotonic()
    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response)
    assert time.monotonic() - started < 3


async def test_provider_that_drips_its_answer_is_cut_off_at_the_timeout(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    # Each byte arrives well within the read timeout; only a deadline on the whole fetch ends it.
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(100):  # 5 s of dripping
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        await use_key_cache(app, settings, f"http://127.0.0.1:{port}/api/auth/jwks", timeout=0.3)
        started = time.monotonic()

        response = await asyncio.wait_for(me(client, tokens.signed("alice")), timeout=10)

        assert_provider_unavailable(response)
        assert time.monotonic() - started < 2
    finally:
        server.close()
        await server.wait_closed()


async def test_cached_key_keeps_working_while_the_provider_is_down(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, refetch_interval=0.05, max_age=0.05)
    assert (await me(client, tokens.signed("alice", kid="rs-1"))).status_code == 200

    provider.mode = "error"
    await asyncio.sleep(0.1)
    # Stale now: each request starts a background refresh, which fails.
    for _ in range(3):
        response = await me(client, tokens.signed("alice", kid="rs-1"))
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.06)

    unknown = sign(generate_key("EdDSA", "ed-new"), "EdDSA", tokens.claims("alice"))
    assert_provider_unavailable(await me(client, unknown))


async def test_provider_back_up_serves_again(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    await use_key_cache(app, settings, refetch_interval=0.05)
    provider.mode = "error"
    assert_provider_unavailable(await me(client, tokens.signed("alice")))

    provider.mode = "ok"
    await asyncio.sleep(0.1)
    response = await me(client, tokens.signed("alice"))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "document",
    [[], {"keys": "nope"}, {"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, {"nokeys": 1}, "keys", 42],
    ids=["list", "keys-a-string", "empty-keys", "only-oct", "no-keys", "a-string", "a-number"],
)
async def test_jwks_that_is_not_a_usable_key_set_is_503(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, document: Any
) -> None:
    provider.document = document

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False)


async def test_deeply_nested_jwks_is_503_not_500(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider, "_answer", lambda: (200, b"[" * 100_000 + b"]" * 100_000))

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False)


async def test_jwks_larger_than_the_cap_is_503(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    padding = " " * (MAX_JWKS_BYTES + 1)
    body = json.dumps({"keys": [key.as_dict(private=False) for key in provider.keys]}) + padding
    monkeypatch.setattr(provider, "_answer", lambda: (200, body.encode()))

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False)


async def test_oct_key_in_the_jwks_is_never_used(
    client: httpx.AsyncClient,
    tokens: Tokens,
    provider: JWKSServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    oct_secret = b"symmetric-key-published-by-mistake-0123456789"
    oct_jwk = {"kty": "oct", "kid": "oct-1", "k": b64url(oct_secret)}
    provider.document = {
        "keys": [
            oct_jwk,
            {**oct_jwk, "kid": "oct-rs", "alg": "RS256"},
            *(key.as_dict(private=False) for key in provider.keys),
        ]
    }
    claims = tokens.claims("alice")

    as_hs256 = await me(client, hmac_token({"alg": "HS256", "kid": "oct-1"}, claims, oct_secret))
    as_rs256 = await me(client, hmac_token({"alg": "RS256", "kid": "oct-rs"}, claims, oct_secret))
    as_eddsa = await me(client, hmac_token({"alg": "EdDSA", "kid": "oct-1"}, claims, oct_secret))

    assert_unauthorized(as_hs256, detail="signature does not verify")
    assert_unauthorized(as_rs256, detail="No signing key with kid 'oct-rs'")
    assert_unauthorized(as_eddsa, detail="No signing key with kid 'oct-1'")
    assert "symmetric (oct) key" in caplog.text
    assert (await me(client, tokens.signed("alice", kid="es-1"))).status_code == 200


async def test_oct_key_in_the_jwks_is_not_used_even_without_a_secret(
    client_without_secret: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    oct_secret = b"symmetric-key-published-by-mistake-0123456789"
    provider.document = {
        "keys": [
            {"kty": "oct", "kid": "oct-1", "k": b64url(oct_secret)},
            *(key.as_dict(private=False) for key in provider.keys),
        ]
    }

    response = await me(
        client_without_secret, hmac_token({"alg": "HS256", "kid": "oct-1"}, tokens.claims("alice"), oct_secret)
    )

    assert_unauthorized(response, detail="BETTER_AUTH_SECRET")


async def test_unusable_entries_in_the_jwks_are_skipped_and_the_rest_work(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    encryption_key = generate_key("ES256", "enc-1")
    x25519 = {"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": b64url(b"\x01" * 32)}
    provider.document = {
        "keys": [
            "junk",
            42,
            None,
            {},
            {"kty": "RSA", "kid": "broken"},
            {"kty": "EC", "crv": "P-256", "kid": "bad-point", "x": "AAAA", "y": "AAAA"},
            x25519,
            {**encryption_key.as_dict(private=False), "use": "enc"},
            {**provider_key(provider, "rs-1").as_dict(private=False), "kid": "rs-declared-es", "alg": "ES256"},
            provider_key(provider, "ed-1").as_dict(private=False),
        ]
    }

    valid = await me(client, tokens.signed("alice", kid="ed-1"))
    for_encryption = await me(client, sign(encryption_key, "ES256", tokens.claims("alice")))
    misdeclared = await me(
        client, sign(provider_key(provider, "rs-1"), "RS256", tokens.claims("alice"), kid="rs-declared-es")
    )

    assert valid.status_code == 200, valid.text
    assert_unauthorized(for_encryption, detail="No signing key with kid 'enc-1'")
    assert_unauthorized(misdeclared, detail="No signing key with kid 'rs-declared-es'")


async def test_key_declaring_its_alg_accepts_only_that_alg(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer
) -> None:
    rsa = provider_key(provider, "rs-1")
    provider.document = {"keys": [{**rsa.as_dict(private=False), "alg": "PS256"}]}

    ps256 = await me(client, sign(rsa, "PS256", tokens.claims("alice")))
    rs256 = await me(client, sign(rsa, "RS256", tokens.claims("alice")))

    assert ps256.status_code == 200, ps256.text
    assert_unauthorized(rs256, detail="does not match its key (PS256)")


# -- redirects: followed within the origin only ---------------------------------------------------


@pytest.fixture
def origin(jwks: JWKSServer) -> Iterator[JWKSServer]:
    """A JWKS server of this test's own (its redirects set per test), holding the suite's keys."""
    server = JWKSServer()
    server.keys[:] = jwks.keys
    yield server
    server.close()


@pytest.fixture
def attacker() -> Iterator[JWKSServer]:
    """Another host's JWKS server, holding only the attacker's key."""
    server = JWKSServer()
    server.add_key("EdDSA", "attacker-1")
    yield server
    server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_another_host_serving_an_attackers_key_is_refused(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    tokens: Tokens,
    origin: JWKSServer,
    attacker: JWKSServer,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    location = f"http://localhost:{attacker.port}/api/auth/jwks"  # another host, and another port
    origin.redirects["/api/auth/jwks"] = (status, location)
    await use_key_cache(app, settings, origin.url)
    forged = sign(provider_key(attacker, "attacker-1"), "EdDSA", tokens.claims("alice"))

    response = await me(client, forged)

    said = (
        f"GET {origin.url} answered HTTP {status} with Location '{location}', another origin than "
        f"{origin.base_url}; keys are never fetched from another origin"
    )
    assert_provider_unavailable(response, retry=False, detail=said)
    assert attacker.requests == 0
    assert said in caplog.text  # the log names what came back, not only the configured URL


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{attacker}/api/auth/jwks",
        "https://127.0.0.1:{origin}/api/auth/jwks",
        "//localhost:{origin}/x",
        "http://[oops/api/auth/jwks",
    ],
    ids=["other-port", "other-scheme", "scheme-relative-other-host", "not-a-url"],
)
async def test_redirect_to_any_other_origin_is_refused(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    tokens: Tokens,
    origin: JWKSServer,
    attacker: JWKSServer,
    target: str,
) -> None:
    location = target.format(attacker=attacker.port, origin=origin.port)
    origin.redirects["/api/auth/jwks"] = (302, location)
    await use_key_cache(app, settings, origin.url)

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False, detail=f"answered HTTP 302 with Location '{location}'")
    assert attacker.requests == 0


async def test_redirect_elsewhere_in_production_keeps_the_addresses_to_the_log(
    settings: Settings, tokens: Tokens, origin: JWKSServer, attacker: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    origin.redirects["/api/auth/jwks"] = (302, attacker.url)
    production = dataclasses.replace(settings, app_env="production", jwks_url=origin.url)
    forged = sign(provider_key(attacker, "attacker-1"), "EdDSA", tokens.claims("alice"))

    async with running_client(production) as client:
        response = await me(client, forged)

    assert_provider_unavailable(response, retry=False)
    assert response.json()["detail"] == (
        "The auth provider's keys cannot be fetched (AUTH_JWKS_REDIRECTED; the server log says why)"
    )
    assert f"with Location '{attacker.url}'" in caplog.text
    assert attacker.requests == 0


async def test_same_origin_redirects_are_followed_up_to_three(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, origin: JWKSServer
) -> None:
    origin.redirects = {
        "/api/auth/jwks": (301, "/api/auth/jwks/"),
        "/api/auth/jwks/": (302, f"{origin.base_url}/keys"),
        "/keys": (308, "/keys.json"),
    }
    await use_key_cache(app, settings, origin.url)

    response = await me(client, tokens.signed("alice"))

    assert response.status_code == 200, response.text
    assert origin.requests == 4


async def test_a_fourth_redirect_is_refused_naming_the_last_hop(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, origin: JWKSServer
) -> None:
    origin.redirects = {f"/{n}": (302, f"/{n + 1}") for n in range(1, 5)} | {"/api/auth/jwks": (302, "/1")}
    await use_key_cache(app, settings, origin.url)

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(
        response,
        retry=False,
        detail=f"GET {origin.url} was redirected more than 3 times (last to {origin.base_url}/4). "
        "Fix: set BETTER_AUTH_URL to the address that answers the keys itself",
    )


# -- the 503's detail: the URL tried, the cause, the setting, and "retry" only when it helps -------


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/auth/jwks"


async def test_refused_keys_name_the_url_and_better_auth_url_and_no_retry(settings: Settings, tokens: Tokens) -> None:
    url = closed_url()
    async with running_client(dataclasses.replace(settings, jwks_url=url)) as client:
        response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False)
    assert response.json()["detail"] == (
        f"Cannot fetch the auth provider's keys: GET {url} failed: connection refused (nothing listens on "
        f"{url.split('/')[2]}). Fix: start the frontend (`npm run dev`) so Better Auth serves its keys, or set "
        "BETTER_AUTH_URL to the address it runs at (the same value as in the frontend's .env)"
    )


async def test_fix_names_better_auth_jwks_url_when_that_was_set(settings: Settings, tokens: Tokens) -> None:
    url = closed_url()
    configured = dataclasses.replace(settings, jwks_url=url, explicit=frozenset({"BETTER_AUTH_JWKS_URL"}))
    async with running_client(configured) as client:
        response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=False)
    assert response.json()["detail"].endswith("or set BETTER_AUTH_JWKS_URL to the address it runs at")
    assert "BETTER_AUTH_URL" not in response.json()["detail"]


@pytest.mark.parametrize(
    ("mode", "retry", "said"),
    [
        (
            "missing",
            False,
            "answered HTTP 404. Fix: enable Better Auth's jwt() plugin (it serves the keys at /api/auth/jwks) "
            "and check that BETTER_AUTH_URL is its address",
        ),
        (
            "garbage",
            False,
            "did not answer JSON. Fix: BETTER_AUTH_URL must be the address of the app that runs Better Auth "
            "(a web page answered instead)",
        ),
        ("error", True, "answered HTTP 500. Fix: Better Auth failed to answer (its log says why); retry shortly"),
    ],
)
async def test_answer_that_is_not_keys_names_the_cause_and_retry_only_for_5xx(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    tokens: Tokens,
    origin: JWKSServer,
    mode: str,
    retry: bool,
    said: str,
) -> None:
    origin.mode = mode
    await use_key_cache(app, settings, origin.url)

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response, retry=retry, detail=f"GET {origin.url} {said}")


@pytest.mark.live
async def test_keys_url_leading_to_this_backend_itself_says_so(
    settings: Settings, tokens: Tokens, database_url: str, jwks: JWKSServer
) -> None:
    with ready_server(database_url, jwks) as server:
        url = f"{server.url}/api/auth/jwks"
        async with running_client(dataclasses.replace(settings, jwks_url=url)) as client:
            response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(
        response,
        retry=False,
        detail=f"GET {url} answered HTTP 404 from this backend itself, not from Better Auth. Fix: set "
        "BETTER_AUTH_URL to the frontend's address, where Better Auth runs (e.g. http://localhost:3000), not ours",
    )


async def test_provider_that_served_keys_and_then_refuses_is_an_outage_worth_retrying(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, jwks: JWKSServer
) -> None:
    provider = JWKSServer()
    provider.keys[:] = jwks.keys
    await use_key_cache(app, settings, provider.url, refetch_interval=0.05)
    assert (await me(client, tokens.signed("alice"))).status_code == 200
    provider.close()
    await asyncio.sleep(0.1)

    unknown = sign(generate_key("EdDSA", "ed-new"), "EdDSA", tokens.claims("alice"))
    response = await me(client, unknown)

    assert_provider_unavailable(response, retry=True, detail="connection refused")
    assert (await me(client, tokens.signed("alice"))).status_code == 200  # the cached keys still work


# -- before any key was loaded: no 10 s wait, and still no flood -----------------------------------


async def test_keys_load_as_soon_as_the_provider_answers_when_none_were_ever_loaded(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, origin: JWKSServer
) -> None:
    origin.mode = "error"  # Better Auth not up yet
    keys = await use_key_cache(app, settings, origin.url)
    assert keys.refetch_interval == 10  # the default window for unknown kids stays

    first = await me(client, tokens.signed("alice"))
    assert_provider_unavailable(first)
    assert first.headers["retry-after"] == "1"
    origin.mode = "ok"
    await asyncio.sleep(COLD_REFETCH_INTERVAL + 0.05)
    second = await me(client, tokens.signed("alice"))

    assert second.status_code == 200, second.text


async def test_flood_before_any_key_is_loaded_is_one_fetch_per_cold_interval(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, origin: JWKSServer
) -> None:
    origin.mode = "error"
    await use_key_cache(app, settings, origin.url, cold_refetch_interval=3600)
    forged = [sign(generate_key("EdDSA", f"cold-{n}"), "EdDSA", tokens.claims("alice")) for n in range(5)]

    responses = [*await asyncio.gather(*(me(client, forged[n % 5]) for n in range(50)))]
    responses += [await me(client, forged[n % 5]) for n in range(50)]

    for response in responses:
        assert_provider_unavailable(response)
    assert origin.requests == 1


# -- the startup check: a warning when the key endpoint does not answer ----------------------------


@pytest.mark.live
@pytest.mark.parametrize("workers", ["1", "2"])
def test_server_warns_at_startup_when_the_keys_do_not_answer(database_url: str, jwks: JWKSServer, workers: str) -> None:
    url = closed_url()
    auth_url = url.removesuffix("/api/auth/jwks")
    with ready_server(database_url, jwks, BETTER_AUTH_URL=auth_url, BETTER_AUTH_JWKS_URL="", WORKERS=workers) as server:
        server.wait_for_output("AUTH_JWKS_UNREACHABLE")
        log = server.stderr

    assert (
        f"WARNING backend.diagnostics.auth_check [-] AUTH_JWKS_UNREACHABLE: GET {url} failed: connection refused "
        f"(nothing listens on {auth_url.removeprefix('http://')}); requests with tokens will get 503 until it "
        "answers (fix: start the frontend (`npm run dev`) so Better Auth serves its keys, or set BETTER_AUTH_URL to "
        "the address it runs at (the same value as in the frontend's .env))"
    ) in log
    assert log.count("AUTH_JWKS_UNREACHABLE") == 1  # the parent checks; the workers do not again


@pytest.mark.live
def test_server_says_at_startup_which_keys_it_found(database_url: str, jwks: JWKSServer) -> None:
    with ready_server(database_url, jwks) as server:
        server.wait_for_output("Better Auth's keys")
        log = server.stderr

    assert (
        f"INFO    backend.diagnostics.auth_check [-] Better Auth's keys: {jwks.url}: 3 usable key(s) "
        "(ES256, EdDSA, RS256); HS256 with BETTER_AUTH_SECRET too"
    ) in log
