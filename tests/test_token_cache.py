"""The verified-token cache (backend/tokencache.py) against the real JWKS server.

Each rule of docs/security.md's "Verified tokens" in turn: a hit is counted
(so the other tests know the cache was in play), a forged variant of a cached
token is refused every time and never stored, the clock is moved past `exp`,
back before `nbf` or `iat`, keys are removed, replaced or kept by a refetch,
the size bound evicts, and what comes back cannot be changed. Then the same
token, forged and valid, over a real socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.auth import Principal
from backend.errors import ApiError, SettingsError
from backend.jwks import KeyCache
from backend.settings import Settings, build_settings
from backend.verifier import LEEWAY_SECONDS, TokenVerifier
from tests.support.jwks_server import JWKSServer, generate_key, sign
from tests.support.live import LiveServer
from tests.support.protocol import bearer
from tests.support.tokens import Tokens, assert_unauthorized, b64json, me


class Clock:
    """The wall clock the verifier reads, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def use_verifier(
    app: Starlette, settings: Settings, *, clock: Clock | None = None, size: int = 4096, **key_options: float
) -> TokenVerifier:
    """Give the app a fresh verifier with this clock, cache size and key-cache options (the lifespan closes it)."""
    await app.state.backend.verifier.aclose()
    keys = KeyCache(settings.jwks_url, **key_options)
    verifier = TokenVerifier(dataclasses.replace(settings, token_cache_size=size), keys=keys, clock=clock or time.time)
    app.state.backend.verifier = verifier
    return verifier


def user(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    found: str = response.json()["user_id"]
    return found


# -- hits, and what never hits ---------------------------------------------------------------------


async def test_token_is_verified_once_then_answered_from_the_cache(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings)
    token = tokens.signed("alice")

    answers = [user(await me(client, token)) for _ in range(3)]

    assert answers == ["alice"] * 3
    assert (verifier.verified.misses, verifier.verified.hits, len(verifier.verified)) == (1, 2, 1)


def _segments(token: str) -> list[str]:
    return token.split(".")


def _changed(segment: str) -> str:
    """`segment` with one character in its middle changed (the last may carry only padding bits)."""
    middle = len(segment) // 2
    return segment[:middle] + ("A" if segment[middle] != "A" else "B") + segment[middle + 1 :]


def _forgeries(valid: str, other: str, tokens: Tokens) -> dict[str, str]:
    header, payload, signature = _segments(valid)
    return {
        "signature changed": f"{header}.{payload}.{_changed(signature)}",
        "claims changed, signature kept": f"{header}.{b64json(tokens.claims('bob'))}.{signature}",
        "another token's signature": f"{header}.{payload}.{_segments(other)[2]}",
        "header says HS256": f"{b64json({'alg': 'HS256', 'kid': 'ed-1'})}.{payload}.{signature}",
        "header without kid": f"{b64json({'alg': 'EdDSA'})}.{payload}.{signature}",
    }


async def test_forged_variants_of_a_cached_token_are_refused_every_time_and_never_stored(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings)
    valid, other = tokens.signed("alice"), tokens.signed("bob")
    assert user(await me(client, valid)) == "alice"

    for name, forged in _forgeries(valid, other, tokens).items():
        for _ in range(2):
            assert (await me(client, forged)).status_code == 401, name

    assert len(verifier.verified) == 1
    assert user(await me(client, valid)) == "alice"


async def test_forged_variant_of_a_cached_hs256_token_is_refused(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings)
    valid = tokens.hs256("alice")
    header, payload, signature = _segments(valid)
    assert user(await me(client, valid)) == "alice"

    changed = await me(client, f"{header}.{payload}.{_changed(signature)}")
    as_jwks = await me(client, f"{b64json({'alg': 'EdDSA', 'kid': 'ed-1'})}.{payload}.{signature}")

    assert_unauthorized(changed, detail="signature does not verify")
    assert_unauthorized(as_jwks, detail="signature does not verify")
    assert len(verifier.verified) == 1


async def test_hs256_and_jwks_tokens_with_the_same_claims_get_entries_of_their_own(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings)

    for _ in range(2):
        assert user(await me(client, tokens.hs256("alice"))) == "alice"
        assert user(await me(client, tokens.signed("alice"))) == "alice"

    assert (verifier.verified.misses, verifier.verified.hits, len(verifier.verified)) == (2, 2, 2)


# -- the clock: exp, nbf, iat ----------------------------------------------------------------------


async def test_cached_token_is_checked_afresh_past_exp_and_refused_past_the_leeway(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    clock = Clock()
    verifier = await use_verifier(app, settings, clock=clock)
    exp = int(clock.now) + 60
    token = tokens.signed("alice", exp=exp)
    assert user(await me(client, token)) == "alice"

    clock.now = exp + 1  # past exp, within the leeway: accepted, but never from the cache
    assert user(await me(client, token)) == "alice"
    assert (verifier.verified.hits, len(verifier.verified)) == (1, 0)

    clock.now = exp + LEEWAY_SECONDS + 1
    assert_unauthorized(await me(client, token), code="TOKEN_EXPIRED")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_cached_token_is_refused_when_the_clock_steps_back_before_its_nbf_or_iat(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, claim: str
) -> None:
    clock = Clock()
    verifier = await use_verifier(app, settings, clock=clock)
    token = tokens.signed("alice", **{claim: int(clock.now) + 20})
    assert user(await me(client, token)) == "alice"
    assert user(await me(client, token)) == "alice"
    assert verifier.verified.hits == 1

    clock.now -= 15  # an NTP step back: now the claim is more than the leeway ahead

    assert_unauthorized(await me(client, token), detail=f"({claim} is in the future)")


async def _outcome(verifier: TokenVerifier, token: str) -> Principal | tuple[str, str]:
    try:
        return await verifier.verify(token)
    except ApiError as error:
        return (error.code, error.detail)


async def test_cached_answer_is_a_fresh_verifications_at_every_moment(
    settings: Settings, tokens: Tokens, jwks: JWKSServer
) -> None:
    clock = Clock()
    start = int(clock.now)
    cached = TokenVerifier(settings, clock=clock)
    fresh = TokenVerifier(dataclasses.replace(settings, token_cache_size=0), clock=clock)
    token = tokens.signed("alice", iat=start, nbf=start + 10, exp=start + 100)
    moments = [start + offset for offset in range(-45, 140, 1)] + [start + 99.5, start + 99.999, start + 130.5]
    try:
        clock.now = start
        await cached.verify(token)  # cached from here on
        for moment in [*moments, *reversed(moments)]:
            clock.now = moment
            assert await _outcome(cached, token) == await _outcome(fresh, token), moment
        assert cached.verified.hits > 0
    finally:
        await cached.aclose()
        await fresh.aclose()


# -- the key that verified it ----------------------------------------------------------------------


async def test_token_whose_key_left_the_jwks_is_dropped_at_the_refetch_and_refused(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    verifier = await use_verifier(app, settings, refetch_interval=0.05)
    leaving, staying = tokens.signed("alice", kid="es-1"), tokens.signed("alice", kid="ed-1")
    assert user(await me(client, leaving)) == "alice"
    assert user(await me(client, staying)) == "alice"
    assert len(verifier.verified) == 2

    provider.keys[:] = [key for key in provider.keys if key.kid != "es-1"]
    await asyncio.sleep(0.1)
    unknown = sign(generate_key("EdDSA", "ed-unknown"), "EdDSA", tokens.claims("alice"))
    assert_unauthorized(await me(client, unknown), detail="No signing key with kid 'ed-unknown'")

    assert len(verifier.verified) == 1  # dropped by the refetch, before it is ever sent again
    assert_unauthorized(await me(client, leaving), detail="No signing key with kid 'es-1'")
    hits = verifier.verified.hits
    assert user(await me(client, staying)) == "alice"
    assert verifier.verified.hits == hits + 1


async def test_token_whose_key_was_replaced_under_the_same_kid_is_refused(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens, provider: JWKSServer
) -> None:
    verifier = await use_verifier(app, settings, refetch_interval=0.05, max_age=0.05)
    old = tokens.signed("alice", kid="ed-1")
    assert user(await me(client, old)) == "alice"

    replacement = generate_key("EdDSA", "ed-1")
    provider.keys[:] = [replacement if key.kid == "ed-1" else key for key in provider.keys]
    await asyncio.sleep(0.1)
    # Stale: this request is answered with the keys held and refreshes them behind itself.
    assert user(await me(client, tokens.signed("bob", kid="rs-1"))) == "bob"
    for _ in range(50):
        if verifier.keys.fetch_count >= 2 and len(verifier.verified) == 1:
            break
        await asyncio.sleep(0.02)

    assert_unauthorized(await me(client, old), detail="signature does not verify")
    assert user(await me(client, sign(replacement, "EdDSA", tokens.claims("carol")))) == "carol"


async def test_refetch_that_returns_the_same_keys_keeps_the_cached_tokens(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings, refetch_interval=0.05)
    token = tokens.signed("alice", kid="rs-1")
    assert user(await me(client, token)) == "alice"
    held = await verifier.keys.get("rs-1")

    await asyncio.sleep(0.1)
    unknown = sign(generate_key("EdDSA", "ed-unknown"), "EdDSA", tokens.claims("alice"))
    assert (await me(client, unknown)).status_code == 401

    assert verifier.keys.fetch_count == 2
    assert await verifier.keys.get("rs-1") is held
    assert user(await me(client, token)) == "alice"
    assert (verifier.verified.misses, verifier.verified.hits) == (2, 1)  # the unknown kid's miss, then a hit


# -- bounds and immutability -----------------------------------------------------------------------


async def test_cache_holds_at_most_its_size_and_evicts_the_least_recently_used(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings, size=3)
    signed = {name: tokens.signed(name) for name in ("ann", "ben", "cat", "dan", "eve")}

    for name, token in signed.items():
        assert user(await me(client, token)) == name
    assert len(verifier.verified) == 3

    misses = verifier.verified.misses
    assert user(await me(client, signed["eve"])) == "eve"  # among the last three: a hit
    assert user(await me(client, signed["ann"])) == "ann"  # evicted: verified again
    assert verifier.verified.misses == misses + 1
    assert len(verifier.verified) == 3


async def test_size_0_verifies_every_request(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, tokens: Tokens
) -> None:
    verifier = await use_verifier(app, settings, size=0)
    token = tokens.signed("alice")

    for _ in range(3):
        assert user(await me(client, token)) == "alice"

    assert (verifier.verified.hits, len(verifier.verified)) == (0, 0)


async def test_cached_principal_cannot_be_changed_by_the_request_that_gets_it(
    settings: Settings, tokens: Tokens
) -> None:
    verifier = TokenVerifier(settings)
    token = tokens.signed("alice")
    try:
        first = await verifier.verify(token)
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.user_id = "bob"  # type: ignore[misc]
        with pytest.raises((AttributeError, TypeError)):
            first.role = "admin"  # type: ignore[attr-defined]
        again = await verifier.verify(token)
    finally:
        await verifier.aclose()

    assert again == Principal("alice", "alice@example.com", "Alice")
    assert verifier.verified.hits == 1


@pytest.mark.parametrize(("value", "problem"), [("-1", "outside 0..1000000"), ("lots", "not a whole number")])
def test_token_cache_size_must_be_a_whole_number_from_0(value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        build_settings({"TOKEN_CACHE_SIZE": value}.get)

    assert f"TOKEN_CACHE_SIZE is {value}" in str(raised.value) or f"TOKEN_CACHE_SIZE is '{value}'" in str(raised.value)
    assert problem in str(raised.value)


def test_token_cache_size_defaults_to_4096_and_0_turns_it_off() -> None:
    assert build_settings({}.get).token_cache_size == 4096
    assert build_settings({"TOKEN_CACHE_SIZE": "0"}.get).token_cache_size == 0


# -- over a real socket ----------------------------------------------------------------------------


@pytest.mark.live
def test_over_the_wire_a_forged_copy_of_a_cached_token_is_refused_each_time(live: LiveServer, tokens: Tokens) -> None:
    valid = tokens.signed("alice")
    header, payload, signature = _segments(valid)
    forged = f"{header}.{payload}.{_changed(signature)}"
    answers: list[Any] = []
    with httpx.Client(base_url=live.url, timeout=10) as http:
        for token in (valid, forged, valid, forged, valid, forged):
            answers.append(http.get("/api/me", headers=bearer(token)).status_code)

    assert answers == [200, 401, 200, 401, 200, 401]
    assert live.stderr.count("-> 401 TOKEN_INVALID: The token's signature does not verify") == 3
