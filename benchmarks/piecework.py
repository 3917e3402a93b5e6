"""The calls benchmarks/pieces.py times: each a zero-argument callable doing one piece of a request."""

from __future__ import annotations

import base64
import cProfile
import dataclasses
import hashlib
import hmac
import json
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import databases
import h11
import jwt as pyjwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

import backend.verifier
from backend.app import create_app
from backend.cors import CorsPolicy
from backend.middleware import REQUEST_IDS, RequestMiddleware
from backend.pgpool import ConnectionPool
from backend.schemas import Task
from backend.verifier import TokenVerifier
from benchmarks.tokens import SECRET, Provider

Pieces = list[tuple[str, Callable[[], Any]]]
LEEWAY = 30


def _verifiers(provider: Provider) -> tuple[TokenVerifier, TokenVerifier]:
    """Ours as it serves (verified tokens kept), and ours verifying every token (TOKEN_CACHE_SIZE=0)."""
    settings = provider.settings("postgresql://unused/unused")
    return TokenVerifier(settings), TokenVerifier(dataclasses.replace(settings, token_cache_size=0))


async def eddsa(provider: Provider) -> Pieces:
    token = provider.token("eddsa")
    cached, verifier = _verifiers(provider)
    await verifier.verify(token)  # fetches the key set once
    await cached.verify(token)
    kid = json.loads(_b64(token.split(".")[0]))["kid"]
    found = await verifier.keys.get(kid)
    assert found is not None
    jwk = provider.public_jwk
    public = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    client = pyjwt.PyJWKClient(provider.jwks_url)
    pyjwk = pyjwt.PyJWK(jwk)
    registry = verifier._registries["EdDSA"]  # private: the registry ours passes, to time joserfc alone
    signing_input, _, signature = token.rpartition(".")
    return [
        ("ours: TokenVerifier.verify, a token seen before (the cache)", lambda: cached.verify(token)),
        ("ours: TokenVerifier.verify, TOKEN_CACHE_SIZE=0 (keys cached)", lambda: verifier.verify(token)),
        ("  of which: the key lookup, KeyCache.get(kid)", lambda: verifier.keys.get(kid)),
        ("  of which: the token split and decoded (once)", lambda: backend.verifier._compact(token)),
        ("joserfc: jwt.decode + claims registry", lambda: _joserfc(token, found.key, "EdDSA", registry, provider.url)),
        ("PyJWT: jwt.decode with a PyJWK (the peer, key in hand)", lambda: _pyjwt(token, pyjwk, "EdDSA", provider.url)),
        (
            "PyJWT: PyJWKClient.get_signing_key_from_jwt + jwt.decode (the peer)",
            lambda: _pyjwt(token, client.get_signing_key_from_jwt(token), "EdDSA", provider.url),
        ),
        (
            "cryptography: Ed25519 verify + split, base64, JSON, checks",
            lambda: _direct(token, public, provider.url),
        ),
        ("cryptography: the Ed25519 verify alone", lambda: public.verify(_b64(signature), signing_input.encode())),
    ]


async def hs256(provider: Provider) -> Pieces:
    token = provider.token("hs256")
    cached, verifier = _verifiers(provider)
    await cached.verify(token)
    key = OctKey.import_key(SECRET)
    registry = verifier._registries["HS256"]  # private, as above
    return [
        ("ours: TokenVerifier.verify, a token seen before (the cache)", lambda: cached.verify(token)),
        ("ours: TokenVerifier.verify, TOKEN_CACHE_SIZE=0", lambda: verifier.verify(token)),
        ("joserfc: jwt.decode + claims registry", lambda: _joserfc(token, key, "HS256", registry, provider.url)),
        ("PyJWT: jwt.decode (the peer)", lambda: _pyjwt(token, SECRET, "HS256", provider.url)),
        ("hmac: compare_digest + split, base64, JSON, checks", lambda: _direct_hs256(token, provider.url)),
    ]


def _joserfc(token: str, key: Any, alg: str, registry: Any, issuer: str) -> dict[str, Any]:
    claims = jwt.decode(token, key, algorithms=[alg], registry=registry).claims
    jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": issuer},
        exp={"essential": True},
        sub={"essential": True},
    ).validate(claims)
    return claims


def _pyjwt(token: str, key: Any, alg: str, issuer: str) -> Any:
    return pyjwt.decode(
        token, key, algorithms=[alg], issuer=issuer, audience=issuer, leeway=LEEWAY, options={"require": ["exp", "sub"]}
    )


def _direct(token: str, public: Ed25519PublicKey, issuer: str) -> dict[str, Any]:
    signing_input, _, signature = token.rpartition(".")
    header_segment, _, payload_segment = signing_input.partition(".")
    if json.loads(_b64(header_segment)).get("alg") != "EdDSA":
        raise ValueError("alg")
    public.verify(_b64(signature), signing_input.encode())
    return _checked(json.loads(_b64(payload_segment)), issuer)


def _direct_hs256(token: str, issuer: str) -> dict[str, Any]:
    signing_input, _, signature = token.rpartition(".")
    header_segment, _, payload_segment = signing_input.partition(".")
    if json.loads(_b64(header_segment)).get("alg") != "HS256":
        raise ValueError("alg")
    expected = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _b64(signature)):
        raise ValueError("signature")
    return _checked(json.loads(_b64(payload_segment)), issuer)


def _checked(claims: dict[str, Any], issuer: str) -> dict[str, Any]:
    now = time.time()
    if not (claims["exp"] > now - LEEWAY and claims["iss"] == issuer and claims["aud"] == issuer and claims["sub"]):
        raise ValueError("claims")
    return claims


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def parse_counts(provider: Provider, rounds: int = 500) -> list[str]:
    """How often one `TokenVerifier.verify` calls the functions that split, decode, parse and verify."""
    token = provider.token("eddsa")
    _, verifier = _verifiers(provider)
    await verifier.verify(token)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        await verifier.verify(token)
    profiler.disable()
    wanted = {"extract_rfc7515_compact", "urlsafe_b64decode", "loads", "verify", "validate", "_compact", "_issued_at"}
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    lines = []
    for (path, _, name), (_, calls, *_rest) in sorted(stats.items(), key=lambda item: item[0][2]):
        if name in wanted:
            lines.append(f"  {calls / rounds:8.1f}  {name} ({path.split('site-packages/')[-1]})")
    return lines


async def http_pieces(provider: Provider) -> Pieces:
    page = [_task(i) for i in range(1, 21)]
    encoder = msgspec.json.Encoder()
    request = (
        b"GET /api/alice/tasks?limit=20 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        + f"Authorization: Bearer {provider.token('eddsa')}\r\n\r\n".encode()
    )
    body = encoder.encode(page)
    app = create_app(provider.settings("postgresql://unused/unused"))
    return [
        ("request id: uuid.uuid4().hex (before)", lambda: uuid.uuid4().hex),
        ("request id: RequestIds.next (a prefix and a counter)", REQUEST_IDS.next),
        ("JSON of a page of 20 tasks (msgspec)", lambda: encoder.encode(page)),
        ("h11: parse the list request, write its response (one cycle)", _h11_cycle(request, body)),
        *_wrappers(provider),
        ("our whole app, /health (our middleware, Starlette's 2, routing)", _asgi(app, "/health")),
        ("bare Starlette, /health", _asgi(_bare_app(), "/health")),
    ]


def _task(task_id: int) -> Task:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Task(task_id, "alice", f"Task {task_id} of alice", "Seeded for the benchmark", False, now, now)


def _h11_cycle(request: bytes, body: bytes) -> Callable[[], None]:
    connection = h11.Connection(h11.SERVER)
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("x-total-count", "100"),
        ("x-request-id", uuid.uuid4().hex),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ]

    def cycle() -> None:
        connection.receive_data(request)
        while not isinstance(connection.next_event(), h11.EndOfMessage):
            pass
        connection.send(h11.Response(status_code=200, headers=headers))
        connection.send(h11.Data(data=body))
        connection.send(h11.EndOfMessage())
        connection.start_next_cycle()

    return cycle


async def _endpoint(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _wrappers(provider: Provider) -> Pieces:
    cors = CorsPolicy.from_settings(provider.settings("postgresql://unused/unused"))
    ours = RequestMiddleware(_endpoint, cors=cors)
    origin = [(b"origin", b"http://localhost:3000")]
    return [
        ("a bare ASGI endpoint", _asgi(_endpoint, "/api/alice/tasks")),
        ("  + RequestMiddleware (ids, headers, CORS, body, shutdown)", _asgi(ours, "/x")),
        ("  + RequestMiddleware, a browser's request (Origin)", _asgi(ours, "/x", origin)),
    ]


def _bare_app() -> Starlette:
    async def health(request: Any) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/health", health)])


def _asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Callable[[], Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *(headers or [])],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    return lambda: app(dict(scope), receive, send)


async def pool_pieces(url: str, closers: list[Callable[[], Awaitable[None]]]) -> Pieces:
    """`closers` gets what closes the pools once the pieces are timed."""

    async def no_reset(connection: asyncpg.Connection) -> None:
        """No statement on release, as our pool does (asyncpg's default reset sends four)."""

    db = databases.Database(url, min_size=1, max_size=1, reset=no_reset)
    await db.connect()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=no_reset)
    ours = ConnectionPool(lambda: asyncpg.connect(url), size=1, wait_timeout=5)

    async def close_ours() -> None:
        await ours.close(1)

    closers += [db.disconnect, pool.close, close_ours]

    async def through_databases() -> None:
        async with db.connection():
            pass

    async def through_asyncpg() -> None:
        async with pool.acquire():
            pass

    async def through_ours() -> None:
        ours.release(await ours.acquire())

    return [
        ("databases: connection() acquire + release", through_databases),
        ("asyncpg: pool.acquire() + release", through_asyncpg),
        ("ours: ConnectionPool acquire + release (the fair line; backend/pgpool.py)", through_ours),
    ]
