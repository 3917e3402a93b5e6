"""The provider's keys through the HTTP API: caching, refetching on an unknown
kid at a bounded rate, rotation, and a provider that is down or serves nonsense.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from starlette.applications import Starlette

from backend.jwks import MAX_JWKS_BYTES
from backend.settings import Settings
from tests.conftest import Tokens
from tests.support.jwks_server import JWKSServer, generate_key, sign
from tests.support.tokens import (
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


@pytest.mark.parametrize("mode", ["error", "garbage"])
async def test_provider_down_with_unknown_kid_is_503_with_retry_after(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, mode: str
) -> None:
    provider.mode = mode

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response)


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

    assert_provider_unavailable(response)


async def test_deeply_nested_jwks_is_503_not_500(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider, "_answer", lambda: (200, b"[" * 100_000 + b"]" * 100_000))

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response)


async def test_jwks_larger_than_the_cap_is_503(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    padding = " " * (MAX_JWKS_BYTES + 1)
    body = json.dumps({"keys": [key.as_dict(private=False) for key in provider.keys]}) + padding
    monkeypatch.setattr(provider, "_answer", lambda: (200, body.encode()))

    response = await me(client, tokens.signed("alice"))

    assert_provider_unavailable(response)


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
