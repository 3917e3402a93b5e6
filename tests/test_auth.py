"""Token verification through the HTTP API: Better Auth's JWKS keys, the shared
secret, and every way a token or an Authorization header can be wrong.

Every rejection is a 401 problem+json with a Bearer challenge; the only 5xx
is the deliberate 503 when the provider's keys cannot be fetched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import Key, OctKey

from backend.settings import Settings
from backend.verifier import MAX_TOKEN_LENGTH
from tests.support.apps import running_client
from tests.support.jwks_server import JWKSServer, generate_key, sign
from tests.support.protocol import CHALLENGE, PROBLEM, bearer
from tests.support.tokens import (
    SECRET,
    Tokens,
    assert_provider_unavailable,
    assert_unauthorized,
    b64json,
    b64url,
    forge,
    hmac_token,
    me,
    provider_key,
)

# -- valid tokens --------------------------------------------------------------------------------


async def test_me_with_hs256_token_signed_with_the_shared_secret(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await me(client, tokens.hs256("alice"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"user_id": "alice", "email": "alice@example.com", "name": "Alice"}


async def test_hand_signed_hs256_token_is_accepted_like_a_library_one(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    # The forgeries below are signed by hand; this shows the hand-signing itself is sound.
    claims = tokens.claims("alice")
    by_library = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(SECRET), algorithms=["HS256"])
    by_hand = hmac_token({"alg": "HS256"}, claims, SECRET.encode())

    assert (await me(client, by_library)).status_code == 200
    assert (await me(client, by_hand)).status_code == 200


@pytest.mark.parametrize("kid", ["ed-1", "es-1", "rs-1"])
async def test_me_with_token_signed_by_provider_key(client: httpx.AsyncClient, tokens: Tokens, kid: str) -> None:
    response = await me(client, tokens.signed("alice", kid=kid))

    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "alice", "email": "alice@example.com", "name": "Alice"}


async def test_me_with_ps256_token_from_rsa_key(client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer) -> None:
    token = sign(provider_key(jwks, "rs-1"), "PS256", tokens.claims("alice"))

    response = await me(client, token)

    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"


async def test_ed25519_alg_name_of_rfc_9864_is_accepted(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer
) -> None:
    token = sign(provider_key(jwks, "ed-1"), "Ed25519", tokens.claims("alice"))

    response = await me(client, token)

    assert response.status_code == 200, response.text


async def test_me_returns_null_email_and_name_when_claims_lack_them(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await me(client, tokens.signed("alice", email=None, name=None))

    assert response.status_code == 200
    assert response.json() == {"user_id": "alice", "email": None, "name": None}


async def test_token_with_typ_jwt_header_is_accepted(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer
) -> None:
    token = sign(provider_key(jwks, "ed-1"), "EdDSA", tokens.claims("alice"), typ="JWT")

    response = await me(client, token)

    assert response.status_code == 200, response.text


async def test_lower_case_bearer_scheme_is_accepted(client: httpx.AsyncClient, tokens: Tokens) -> None:
    # RFC 7235 section 2.1: the auth-scheme is case-insensitive.
    response = await client.get("/api/me", headers={"Authorization": f"bearer {tokens.signed('alice')}"})

    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"


async def test_aud_list_that_contains_our_audience_is_accepted(client: httpx.AsyncClient, tokens: Tokens) -> None:
    token = tokens.signed("alice", aud=["https://other.example", "http://localhost:3000"])

    response = await me(client, token)

    assert response.status_code == 200, response.text


async def test_clock_skew_within_leeway_is_accepted(client: httpx.AsyncClient, tokens: Tokens) -> None:
    now = int(time.time())
    token = tokens.signed("alice", iat=now + 10, nbf=now + 10, exp=now + 900)

    response = await me(client, token)

    assert response.status_code == 200, response.text


async def test_token_for_the_path_user_lists_their_tasks(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.get("/api/alice/tasks", headers=bearer(tokens.signed("alice", kid="es-1")))

    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_valid_token_for_another_user_is_403_not_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.get("/api/alice/tasks", headers=bearer(tokens.signed("bob")))

    assert response.status_code == 403
    assert response.json()["code"] == "USER_MISMATCH"


# -- the Authorization header --------------------------------------------------------------------


async def test_missing_authorization_is_401_token_missing_without_error_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    # RFC 6750 section 3.1: no error code when the request carried no credentials.
    assert response.headers["www-authenticate"] == CHALLENGE
    problem = response.json()
    assert problem["code"] == "TOKEN_MISSING"
    assert "Authorization: Bearer" in problem["detail"]


async def test_missing_authorization_on_tasks_path_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/alice/tasks")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.json()["code"] == "TOKEN_MISSING"


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc.def.ghi", "Bearer abc def", "Bearerabc.def.ghi"],
    ids=["bearer-without-token", "bearer-space", "basic", "other-scheme", "two-words", "no-space"],
)
async def test_malformed_authorization_header_is_invalid_request(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/me", headers={"Authorization": value})

    problem = assert_unauthorized(response, error="invalid_request")
    assert "Bearer <token>" in problem["detail"]


GET_THE_JWT = (
    "get the JWT from Better Auth's jwt plugin: `authClient.token()` in the browser, the `set-auth-jwt` header "
    "of a session fetch, or `auth.api.getToken({ headers })` on the server"
)


@pytest.mark.parametrize("value", ["undefined", "null"])
async def test_bearer_of_an_empty_variable_says_how_to_get_the_jwt(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/me", headers=bearer(value))

    problem = assert_unauthorized(response)
    assert problem["detail"] == (
        f"The bearer token is the text '{value}': the variable meant to hold the token is empty; {GET_THE_JWT}"
    )


async def test_better_auth_session_token_as_bearer_says_how_to_get_the_jwt(client: httpx.AsyncClient) -> None:
    session_token = "x3GvQ0PLyWc5aJ8hZtN2sUeR6mKd9FbA"  # the shape of Better Auth's session tokens

    response = await client.get("/api/me", headers=bearer(session_token))

    problem = assert_unauthorized(response)
    assert problem["detail"] == (
        "The token is not a compact JWT (three base64url parts joined by dots; this has 1). "
        f"A Better Auth session token is not a JWT: {GET_THE_JWT}"
    )
    assert session_token not in response.text


@pytest.mark.parametrize("cookie", ["better-auth.session_token", "__Secure-better-auth.session_token"])
async def test_session_cookie_without_authorization_says_it_is_ignored(client: httpx.AsyncClient, cookie: str) -> None:
    response = await client.get("/api/me", headers={"Cookie": f"{cookie}=abc.def; theme=dark"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE
    problem = response.json()
    assert problem["code"] == "TOKEN_MISSING"
    assert problem["detail"] == (
        f"No Authorization header; the request carries Better Auth's session cookie ({cookie}), which this API "
        f"ignores. Send the Better Auth token as Authorization: Bearer <token>: {GET_THE_JWT}"
    )


async def test_other_cookies_without_authorization_get_the_plain_token_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me", headers={"Cookie": "theme=dark"})

    assert response.json()["detail"] == "Send the Better Auth token as Authorization: Bearer <token>"


async def test_two_authorization_headers_are_invalid_request(client: httpx.AsyncClient, tokens: Tokens) -> None:
    token = tokens.signed("alice")
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]

    response = await client.get("/api/me", headers=headers)

    assert_unauthorized(response, error="invalid_request", detail="one Authorization header")


# -- claims --------------------------------------------------------------------------------------


async def test_expired_token_is_401_token_expired(client: httpx.AsyncClient, tokens: Tokens) -> None:
    now = int(time.time())
    response = await me(client, tokens.signed("alice", iat=now - 1000, exp=now - 100))

    assert_unauthorized(response, code="TOKEN_EXPIRED", detail="expired")


async def test_expired_hs256_token_is_401_token_expired(client: httpx.AsyncClient, tokens: Tokens) -> None:
    now = int(time.time())
    response = await me(client, tokens.hs256("alice", iat=now - 1000, exp=now - 100))

    assert_unauthorized(response, code="TOKEN_EXPIRED")


async def test_token_not_valid_before_a_future_nbf_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await me(client, tokens.signed("alice", nbf=int(time.time()) + 600))

    assert_unauthorized(response, detail="nbf is in the future")


async def test_token_issued_far_in_the_future_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    now = int(time.time())
    response = await me(client, tokens.signed("alice", iat=now + 3600, exp=now + 4500))

    assert_unauthorized(response, detail="iat is in the future")


async def test_wrong_issuer_shows_both_issuers_and_names_better_auth_url(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await me(client, tokens.signed("alice", iss="http://127.0.0.1:3000"))

    problem = assert_unauthorized(response)
    assert problem["detail"] == (
        "The token's issuer is 'http://127.0.0.1:3000', but this backend expects 'http://localhost:3000' "
        "(the origin of BETTER_AUTH_URL); use the same BETTER_AUTH_URL here and in the frontend "
        "(`localhost` and `127.0.0.1` differ)"
    )


async def test_wrong_audience_shows_both_audiences_and_names_better_auth_url(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await me(client, tokens.signed("alice", aud="https://other.example"))

    assert_unauthorized(
        response,
        detail="audience is 'https://other.example', but this backend expects 'http://localhost:3000' "
        "(the origin of BETTER_AUTH_URL); use the same BETTER_AUTH_URL",
    )


async def test_aud_list_without_our_audience_is_401_showing_the_list(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await me(client, tokens.signed("alice", aud=["https://a.example", "https://b.example"]))

    assert_unauthorized(response, detail='audience is ["https://a.example", "https://b.example"], but this backend')


@pytest.mark.parametrize(("claim", "name"), [("iss", "issuer"), ("aud", "audience")])
async def test_mismatch_names_jwt_issuer_or_audience_when_that_was_set(
    settings: Settings, tokens: Tokens, claim: str, name: str
) -> None:
    setting = {"iss": "JWT_ISSUER", "aud": "JWT_AUDIENCE"}[claim]
    configured = dataclasses.replace(
        settings, jwt_issuer="https://issuer.example", jwt_audience="todo-api", explicit=frozenset({setting})
    )
    expected = {"iss": "https://issuer.example", "aud": "todo-api"}[claim]
    claims = {"iss": "https://issuer.example", "aud": "todo-api", claim: "x"}
    async with running_client(configured) as client:
        response = await me(client, tokens.signed("alice", **claims))

    assert_unauthorized(
        response,
        detail=f"The token's {name} is 'x', but this backend expects '{expected}' ({setting}); set {setting} to the "
        f"{name} Better Auth signs with, or remove it to follow BETTER_AUTH_URL",
    )


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "aud"])
async def test_token_without_required_claim_is_401(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer, claim: str
) -> None:
    claims = tokens.claims("alice")
    del claims[claim]

    response = await me(client, sign(provider_key(jwks, "ed-1"), "EdDSA", claims))

    assert_unauthorized(response, detail=claim)


@pytest.mark.parametrize("sub", ["", "   ", "alice\nbob"], ids=["empty", "blank", "control-character"])
async def test_unusable_sub_is_401(client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer, sub: str) -> None:
    claims = {**tokens.claims("alice"), "sub": sub}

    response = await me(client, sign(provider_key(jwks, "ed-1"), "EdDSA", claims))

    assert_unauthorized(response, detail="sub")


@pytest.mark.parametrize("sub", [42, None, ["alice"]], ids=["number", "null", "list"])
async def test_sub_that_is_not_a_string_is_401(client: httpx.AsyncClient, tokens: Tokens, sub: object) -> None:
    claims = {**tokens.claims("alice"), "sub": sub}

    response = await me(client, hmac_token({"alg": "HS256"}, claims, SECRET.encode()))

    assert_unauthorized(response, detail="sub")


@pytest.mark.parametrize("exp", ["9999999999", None, True, 1e400], ids=["string", "null", "bool", "infinity"])
async def test_exp_that_is_not_a_number_is_401(client: httpx.AsyncClient, tokens: Tokens, exp: object) -> None:
    claims = {**tokens.claims("alice"), "exp": exp}

    response = await me(client, hmac_token({"alg": "HS256"}, claims, SECRET.encode()))

    assert_unauthorized(response)


# -- algorithms and signatures -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_alg_none_token_is_401(client: httpx.AsyncClient, tokens: Tokens, alg: str) -> None:
    token = forge({"alg": alg, "typ": "JWT"}, tokens.claims("alice"))
    assert token.endswith(".")

    response = await me(client, token)

    assert_unauthorized(response, detail=f"algorithm {alg!r} is not accepted")


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RSA-OAEP", "ES256K", "XYZ"])
async def test_algorithm_outside_the_allowed_set_is_401(client: httpx.AsyncClient, tokens: Tokens, alg: str) -> None:
    token = forge({"alg": alg, "kid": "rs-1"}, tokens.claims("alice"), b"x" * 32)

    response = await me(client, token)

    assert_unauthorized(response, detail="is not accepted")


@pytest.mark.parametrize(
    "secret_of",
    [
        lambda key: key.as_pem(private=False),
        lambda key: json.dumps(key.as_dict(private=False)).encode(),
        lambda key: key.as_dict(private=False)["n"].encode(),
    ],
    ids=["pem", "jwk-json", "modulus"],
)
async def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer, secret_of: Callable[[Key], bytes]
) -> None:
    # The classic alg-confusion forgery: HMAC keyed with public material the attacker can download.
    secret = secret_of(provider_key(jwks, "rs-1"))
    token = hmac_token({"alg": "HS256", "kid": "rs-1", "typ": "JWT"}, tokens.claims("alice"), secret)

    response = await me(client, token)

    assert_unauthorized(response, detail="signature does not verify")


async def test_hs256_signed_with_the_ed25519_public_key_is_rejected_without_secret(
    client_without_secret: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer
) -> None:
    public = provider_key(jwks, "ed-1").as_dict(private=False)["x"].encode()
    token = hmac_token({"alg": "HS256", "kid": "ed-1"}, tokens.claims("alice"), public)

    response = await me(client_without_secret, token)

    assert_unauthorized(response, detail="BETTER_AUTH_SECRET")


async def test_hs256_token_is_401_naming_the_secret_when_none_is_set(
    client_without_secret: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await me(client_without_secret, tokens.hs256("alice"))

    assert_unauthorized(response, detail="only when BETTER_AUTH_SECRET is set")


async def test_jwks_tokens_still_work_without_a_secret(
    client_without_secret: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await me(client_without_secret, tokens.signed("alice", kid="rs-1"))

    assert response.status_code == 200, response.text


async def test_hs256_signed_with_another_secret_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await me(client, tokens.hs256("alice", secret="another-secret-" + "x" * 40))

    assert_unauthorized(response, detail="signature does not verify")


@pytest.mark.parametrize("kid", ["ed-1", "es-1", "rs-1"])
async def test_token_signed_by_an_impostor_key_with_a_known_kid_is_401(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer, kid: str
) -> None:
    alg = {"ed-1": "EdDSA", "es-1": "ES256", "rs-1": "RS256"}[kid]
    impostor = generate_key(alg, kid)

    response = await me(client, sign(impostor, alg, tokens.claims("alice")))

    assert_unauthorized(response, detail="signature does not verify")


@pytest.mark.parametrize(
    ("signer", "alg", "kid"),
    [("ed-1", "EdDSA", "es-1"), ("ed-1", "EdDSA", "rs-1"), ("es-1", "ES256", "ed-1"), ("rs-1", "RS256", "es-1")],
)
async def test_token_whose_alg_does_not_fit_the_kid_key_is_401(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer, signer: str, alg: str, kid: str
) -> None:
    token = sign(provider_key(jwks, signer), alg, tokens.claims("alice"), kid=kid)

    response = await me(client, token)

    assert_unauthorized(response, detail=f"algorithm {alg} does not match its key")


async def test_es256_header_on_an_rsa_signature_is_401(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer
) -> None:
    _, payload, signature = sign(provider_key(jwks, "rs-1"), "RS256", tokens.claims("alice")).split(".")
    token = f"{b64json({'alg': 'ES256', 'kid': 'es-1'})}.{payload}.{signature}"

    response = await me(client, token)

    assert_unauthorized(response)


@pytest.mark.parametrize("field", ["jwk", "jku", "x5u"])
async def test_key_embedded_or_linked_in_the_header_is_ignored(
    client: httpx.AsyncClient, tokens: Tokens, field: str
) -> None:
    attacker = generate_key("RS256", "rs-1")
    value = attacker.as_dict(private=False) if field == "jwk" else "https://evil.example/jwks"
    token = sign(attacker, "RS256", tokens.claims("alice"), **{field: value})

    response = await me(client, token)

    assert_unauthorized(response)


async def test_tampered_payload_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    header, _, signature = tokens.signed("bob").split(".")
    token = f"{header}.{b64json(tokens.claims('alice'))}.{signature}"

    response = await me(client, token)

    assert_unauthorized(response, detail="signature does not verify")


async def test_tampered_hs256_payload_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    header, _, signature = tokens.hs256("bob").split(".")
    token = f"{header}.{b64json(tokens.claims('alice'))}.{signature}"

    response = await me(client, token)

    assert_unauthorized(response, detail="signature does not verify")


@pytest.mark.parametrize("cut", [1, 10, 40])
async def test_truncated_token_is_401(client: httpx.AsyncClient, tokens: Tokens, cut: int) -> None:
    response = await me(client, tokens.signed("alice", kid="es-1")[:-cut])

    assert_unauthorized(response)


async def test_token_without_signature_segment_is_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    header, payload, _ = tokens.signed("alice").split(".")

    response = await me(client, f"{header}.{payload}")

    assert_unauthorized(response, detail="not a compact JWT")


async def test_token_with_typ_other_than_jwt_is_401(
    client: httpx.AsyncClient, tokens: Tokens, jwks: JWKSServer
) -> None:
    token = sign(provider_key(jwks, "ed-1"), "EdDSA", tokens.claims("alice"), typ="dpop+jwt")

    response = await me(client, token)

    assert_unauthorized(response, detail="typ is not JWT")


async def test_token_longer_than_the_limit_is_401_before_parsing(client: httpx.AsyncClient, tokens: Tokens) -> None:
    token = tokens.signed("alice", padding="p" * 100_000)
    assert len(token) > 100_000

    response = await me(client, token)

    assert_unauthorized(response, detail=f"longer than {MAX_TOKEN_LENGTH} characters")


async def test_deeply_nested_payload_signed_with_the_secret_is_401(client: httpx.AsyncClient) -> None:
    # Only the secret's holder can get this far, but it must still be a 401, not a RecursionError.
    header = b64json({"alg": "HS256"})
    payload = b64url(b"[" * 2500 + b"]" * 2500)
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

    response = await me(client, f"{header}.{payload}.{b64url(signature)}")

    assert_unauthorized(response)


QUOTED_KID = 'k"\\\r\n' * 30
GARBAGE_TOKENS = {
    "not-base64": "not*base64.at*all.!!!",
    "one-segment": "abcdef",
    "empty-segments": "..",
    "four-segments": "a.b.c.d",
    "header-not-json": f"{b64url(b'not json')}.{b64json({})}.",
    "header-a-string": f"{b64json('alg')}.{b64json({'sub': 'alice'})}.c2ln",
    "header-a-list": f"{b64json(['alg'])}.{b64json({'sub': 'alice'})}.c2ln",
    "header-a-number": f"{b64json(5)}.{b64json({'sub': 'alice'})}.c2ln",
    "header-without-alg": f"{b64json({'kid': 'ed-1'})}.{b64json({'sub': 'alice'})}.c2ln",
    "alg-a-list": f"{b64json({'alg': ['HS256']})}.{b64json({'sub': 'alice'})}.c2ln",
    "alg-an-object": f"{b64json({'alg': {'HS256': 1}})}.{b64json({'sub': 'alice'})}.c2ln",
    "alg-null": f"{b64json({'alg': None})}.{b64json({'sub': 'alice'})}.c2ln",
    "kid-a-list": f"{b64json({'alg': 'EdDSA', 'kid': ['ed-1']})}.{b64json({'sub': 'alice'})}.c2ln",
    "kid-an-object": f"{b64json({'alg': 'RS256', 'kid': {'a': 1}})}.{b64json({'sub': 'alice'})}.c2ln",
    "typ-a-list": f"{b64json({'alg': 'HS256', 'typ': ['JWT']})}.{b64json({'sub': 'alice'})}.c2ln",
    "crit-unknown": f"{b64json({'alg': 'HS256', 'crit': ['x'], 'x': 1})}.{b64json({'sub': 'alice'})}.c2ln",
    "payload-not-json": f"{b64json({'alg': 'HS256'})}.{b64url(b'nope')}.c2ln",
    "payload-a-list": f"{b64json({'alg': 'HS256'})}.{b64json([1, 2])}.c2ln",
    "signature-not-base64": f"{b64json({'alg': 'EdDSA', 'kid': 'ed-1'})}.{b64json({'sub': 'alice'})}.!!!",
    "huge-header": f"{b64json({'alg': 'HS256', 'x': 'y' * 2000})}.{b64json({'sub': 'alice'})}.c2ln",
    "non-ascii": "\u00e9t\u00e9.\u00e9t\u00e9.\u00e9t\u00e9",
    "kid-with-quotes-and-newlines": f"{b64json({'alg': 'RS256', 'kid': QUOTED_KID})}.{b64json({})}.c2ln",
}


@pytest.mark.parametrize("token", list(GARBAGE_TOKENS.values()), ids=list(GARBAGE_TOKENS))
async def test_garbage_token_is_401_never_5xx(client: httpx.AsyncClient, token: str) -> None:
    # httpx refuses non-ASCII header values as str; the raw bytes reach the server all the same.
    response = await client.get("/api/me", headers={b"Authorization": b"Bearer " + token.encode()})

    assert_unauthorized(response)


# -- logging -------------------------------------------------------------------------------------


async def test_rejected_token_is_not_logged_but_the_reason_is(
    client: httpx.AsyncClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = tokens.signed("alice", iss="https://evil.example")

    response = await me(client, token)

    assert_unauthorized(response)
    assert "issuer is 'https://evil.example', but this backend expects 'http://localhost:3000'" in caplog.text
    assert token not in caplog.text
    for part in token.split("."):
        assert part not in caplog.text
    assert token not in response.text
    assert token not in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "make",
    [
        lambda tokens: tokens.hs256("alice", secret="wrong-" + "w" * 40),
        lambda tokens: tokens.signed("alice", exp=int(time.time()) - 100),
        lambda tokens: tokens.signed("alice")[:-5],
        lambda tokens: tokens.signed("alice", padding="p" * MAX_TOKEN_LENGTH),
    ],
    ids=["bad-signature", "expired", "truncated", "too-long"],
)
async def test_no_rejected_token_reaches_the_log(
    client: httpx.AsyncClient, tokens: Tokens, caplog: pytest.LogCaptureFixture, make: Callable[[Tokens], str]
) -> None:
    caplog.set_level(logging.DEBUG)
    token = make(tokens)

    response = await me(client, token)

    assert response.status_code == 401
    assert "-> 401 TOKEN_" in caplog.text  # the reason is logged, by the problem handler
    assert token not in caplog.text
    assert token.split(".")[1] not in caplog.text


async def test_accepted_token_is_not_logged(
    client: httpx.AsyncClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = tokens.hs256("alice")

    assert (await me(client, token)).status_code == 200
    assert token not in caplog.text


async def test_provider_failure_is_logged_without_the_token(
    client: httpx.AsyncClient, tokens: Tokens, provider: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider.mode = "error"
    token = tokens.signed("alice")

    assert_provider_unavailable(await me(client, token))
    assert "answered HTTP 500" in caplog.text
    assert token not in caplog.text
