"""Prototypes of issue 17's levers, patched into our server to measure what each would gain.

    python -m benchmarks.levers token-cache,request-id      (serves like `python -m backend`)

Bench-only, never a design: each patches one public name and keeps the
behaviour the tests check. `nox -s bench -- levers list` (benchmarks/leverload.py)
serves ours with and without them side by side under wrk; `cost --levers`
times them in process.

- `token-cache`: verified tokens kept in a bounded LRU dictionary keyed by the
  whole token string (two tokens never share an entry), with the `exp` and the
  JWKS key they were verified with; a hit needs the clock before `exp` and the
  same key still in the key set (a refetch that drops or replaces the key
  drops the entry). A miss verifies as today.
- `request-id`: the request id from a per-process random prefix and a counter
  instead of `uuid4()` (a `getrandom` system call and a UUID object per request).
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import os
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import backend.middleware
import backend.server
from backend.auth import Principal, TokenVerifier
from backend.jwks import VerificationKey

CACHE_SIZE: Final = 4096


class _Entry:
    __slots__ = ("expires", "key", "kid", "principal")

    def __init__(self, principal: Principal, expires: float, kid: str | None, key: VerificationKey | None) -> None:
        self.principal, self.expires, self.kid, self.key = principal, expires, kid, key


Undo = Callable[[], None]


def token_cache(size: int = CACHE_SIZE) -> Undo:
    verify = TokenVerifier.verify
    caches: weakref.WeakKeyDictionary[TokenVerifier, collections.OrderedDict[str, _Entry]] = weakref.WeakKeyDictionary()

    async def cached(self: TokenVerifier, token: str) -> Principal:
        cache = caches.setdefault(self, collections.OrderedDict())
        entry = cache.get(token)
        if entry is not None:
            if entry.expires > time.time() and await _same_key(self, entry):
                cache.move_to_end(token)
                return entry.principal
            del cache[token]
        principal = await verify(self, token)
        cache[token] = await _entry(self, token, principal)
        if len(cache) > size:
            cache.popitem(last=False)
        return principal

    TokenVerifier.verify = cached  # type: ignore[method-assign]
    return lambda: setattr(TokenVerifier, "verify", verify)


async def _same_key(verifier: TokenVerifier, entry: _Entry) -> bool:
    return entry.key is None or await verifier.keys.get(entry.kid) is entry.key


async def _entry(verifier: TokenVerifier, token: str, principal: Principal) -> _Entry:
    """What a hit must check later: read from a token that has just verified."""
    header_segment, payload_segment, _ = token.split(".")
    header, claims = _segment(header_segment), _segment(payload_segment)
    kid = header.get("kid")
    key = None if header["alg"] == "HS256" else await verifier.keys.get(kid)
    return _Entry(principal, float(claims["exp"]), kid, key)


def _segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


class _CountedIds:
    """Stands in for the `uuid` module in backend/middleware.py: `uuid4().hex` from a prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = itertools.count()

    def uuid4(self) -> _CountedIds:
        return self

    @property
    def hex(self) -> str:
        return f"{self._prefix}{next(self._next):016x}"


def request_id() -> Undo:
    module = getattr(backend.middleware, "uuid")  # noqa: B009 - not a public name of the module
    setattr(backend.middleware, "uuid", _CountedIds())  # noqa: B010 - the module's import of uuid
    return lambda: setattr(backend.middleware, "uuid", module)


LEVERS: Final[dict[str, Callable[[], Undo]]] = {"token-cache": token_cache, "request-id": request_id}


def apply(names: str) -> Undo:
    """Apply the comma-separated levers (an unknown name is an error, not a silent no-op); what undoes them."""
    chosen = [name for name in names.split(",") if name]
    unknown = [name for name in chosen if name not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; known: {', '.join(LEVERS)}")
    undos = [LEVERS[name]() for name in chosen]

    def undo() -> None:
        for each in reversed(undos):
            each()

    return undo


if __name__ == "__main__":
    apply(sys.argv[1] if len(sys.argv) > 1 else "")  # for the life of the process
    sys.exit(backend.server.main())
