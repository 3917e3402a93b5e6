"""Tokens that verified, kept so the same token is not verified again on every request.

A frontend sends the same Better Auth token with every call for its 15-minute
life, and checking an EdDSA signature is most of what a request costs
(docs/performance.md). Caching it is a security decision; an entry answers a
request only when a fresh verification at that moment would answer the same:

- **Keyed by the SHA-256 of the whole token**: two tokens that differ in any
  byte (header, claims or signature) never share an entry; never by `sub`,
  `kid` or a prefix. A forged variant of a cached token misses and is
  verified, and refused, like any other.
- **Only tokens that verified** are stored; a refusal is never cached.
- **Bounded**: least recently used first out, at most `size` entries (0 turns
  the cache off); a flood of valid tokens evicts, it never grows memory.
- **Never past `exp`**, and `nbf` and `iat` are checked again against the
  clock with the same leeway as verification (`answers`): a token in the
  leeway after its `exp` is verified afresh each time.
- **Tied to the very key that verified it**: the verifier looks the key up as
  a fresh verification would (which may refetch the key set, or answer 401 or
  503), and the entry answers only if that is the same key object. The key
  cache keeps an unchanged key's object across refetches and reports every
  fetch (backend/jwks.py `on_refresh`), so `retain_keys` drops what a removed
  or replaced key verified as soon as the key set shows it. HS256 entries are
  tied to the secret's key object, fixed for the life of the process.
- **Immutable answers**: the cached principal is a frozen object; no request
  can change what another is told.

One cache per `TokenVerifier`, so per application and per worker process.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Collection
from typing import Final, Generic, TypeVar

from joserfc.jwk import Key

DEFAULT_SIZE: Final = 4096
"""About 1 KiB an entry at most (a digest, the times, the principal): a few MiB per worker."""

P = TypeVar("P")


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedToken(Generic[P]):
    """What a verification established, and what a later hit must check again."""

    principal: P
    alg: str
    kid: str | None
    key: Key  # the key object the signature verified with
    expires: float  # exp
    not_before: float | None  # nbf, when the token has one
    issued_at: float | None  # iat, when the token has one

    def answers(self, key: Key, now: float, leeway: int) -> bool:
        """Whether a fresh verification at `now`, with `key` as the key lookup gives it, would accept the token.

        Stricter at `exp` (no leeway there), exactly as strict as joserfc's claims check for `nbf` and `iat`,
        whose clock is whole seconds.
        """
        if key is not self.key or now >= self.expires:
            return False
        latest = int(now) + leeway
        return (self.not_before is None or self.not_before <= latest) and (
            self.issued_at is None or self.issued_at <= latest
        )


class VerifiedTokens(Generic[P]):
    """A bounded LRU map from a token's SHA-256 to what its verification established."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: collections.OrderedDict[bytes, VerifiedToken[P]] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def digest(token: str) -> bytes:
        # surrogatepass: any str has one encoding and none raises; only ASCII tokens ever verify anyway.
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, digest: bytes) -> VerifiedToken[P] | None:
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry

    def put(self, digest: bytes, entry: VerifiedToken[P], now: float) -> None:
        """Keep `entry` unless the cache is off or the token is already past its `exp`."""
        if self.size <= 0 or now >= entry.expires:
            return
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        self._entries.pop(digest, None)

    def retain_keys(self, keys: Collection[Key]) -> None:
        """Drop every entry verified with a key not in `keys` (the key set changed)."""
        current = {id(key) for key in keys}
        for digest in [digest for digest, entry in self._entries.items() if id(entry.key) not in current]:
            del self._entries[digest]
