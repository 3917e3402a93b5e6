"""Better Auth's public keys: fetched from its JWKS endpoint, cached by `kid`.

Better Auth sends no cache headers and rotates keys by adding a new `kid`.
So keys are kept until a token names a `kid` we do not hold; then the set is
fetched again, at most once per `refetch_interval` however many such tokens
arrive (concurrent callers share one fetch). Anyone can send unknown kids, so
the window may have just been used when a genuinely rotated key shows up: a
token issued after our last read of the set then waits for the window to
reopen (at most `refetch_interval`) instead of being refused, still without
more than one fetch per window. A set older than `max_age` is
refreshed on the next use; if the provider is down then, the cached keys keep
working. A `kid` that cannot be resolved because the provider is down is a 503
(`ProviderUnavailableError`), not a 401: the token may be perfectly valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1024 * 1024

# Algorithms per key type; the token's `alg` must be one of its key's.
_RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS: Final = {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)}
# Better Auth writes "EdDSA" for Ed25519; RFC 9864 names the same thing "Ed25519".
_OKP_ALGORITHMS: Final = {"Ed25519": ("EdDSA", "Ed25519")}


class ProviderUnavailableError(Exception):
    """The JWKS endpoint could not be read (down, slow, or not a key set)."""


@dataclasses.dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    key: Key
    algorithms: tuple[str, ...]


def usable_key(data: Mapping[str, Any]) -> VerificationKey | str:
    """A verification key from one JWK, or the reason it cannot be used."""
    kty = data.get("kty")
    if kty == "oct":
        return "is a symmetric (oct) key, which a public key set must never carry"
    if data.get("use") not in (None, "sig"):
        return f"is for use {data.get('use')!r}, not signatures"
    try:
        key = import_key(dict(data))
    except (JoseError, ValueError, TypeError, KeyError) as error:
        return f"cannot be imported ({type(error).__name__}: {error})"
    algorithms = _algorithms_for(key)
    if not algorithms:
        return f"has an unsupported key type {kty!r} / curve {data.get('crv')!r}"
    declared = data.get("alg")
    if declared is not None:
        if declared not in algorithms:
            return f"declares alg {declared!r}, which does not fit a {kty} key"
        algorithms = (declared,) if declared not in ("EdDSA", "Ed25519") else algorithms
    kid = data.get("kid")
    return VerificationKey(kid if isinstance(kid, str) else None, key, algorithms)


def _algorithms_for(key: Key) -> tuple[str, ...]:
    if isinstance(key, RSAKey):
        return _RSA_ALGORITHMS
    if isinstance(key, ECKey):
        return _EC_ALGORITHMS.get(key.curve_name, ())
    if isinstance(key, OKPKey):
        return _OKP_ALGORITHMS.get(key.curve_name, ())
    return ()


def parse_key_set(document: Any) -> tuple[dict[str | None, VerificationKey], list[str]]:
    """Usable keys by kid, and a reason for each key that was skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ProviderUnavailableError('the JWKS answer is not a JSON object with a "keys" list')
    keys: dict[str | None, VerificationKey] = {}
    skipped: list[str] = []
    for index, item in enumerate(document["keys"]):
        result = usable_key(item) if isinstance(item, dict) else "is not a JSON object"
        if isinstance(result, str):
            skipped.append(f"key {index} ({item.get('kid') if isinstance(item, dict) else '?'}) {result}")
        else:
            keys[result.kid] = result
    return keys, skipped


async def fetch_key_set(client: httpx.AsyncClient, url: str) -> dict[str | None, VerificationKey]:
    """GET the key set; raise `ProviderUnavailableError` with the reason on any failure."""
    try:
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            body = await _read_capped(response)
    except httpx.HTTPError as error:
        raise ProviderUnavailableError(f"GET {url} failed: {type(error).__name__}: {error}") from None
    if response.status_code != 200:
        raise ProviderUnavailableError(f"GET {url} answered HTTP {response.status_code}")
    try:
        document = httpx.Response(200, content=body).json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the interpreter's recursion limit.
        raise ProviderUnavailableError(f"GET {url} did not answer JSON") from None
    keys, skipped = parse_key_set(document)
    for reason in skipped:
        logger.warning("JWKS %s: skipped %s", url, reason)
    if not keys:
        raise ProviderUnavailableError(f"GET {url} holds no usable signing key")
    return keys


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_JWKS_BYTES:
            raise httpx.DecodingError(f"answer larger than {MAX_JWKS_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class KeyCache:
    """The provider's keys by kid, refetched on an unknown kid at a bounded rate.

    `timeout` bounds a whole fetch, not just each read of it.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 3.0,
        refetch_interval: float = 10.0,
        max_age: float = 300.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self._keys: dict[str | None, VerificationKey] = {}
        self._fetched_at = 0.0  # when the keys were last read successfully
        self._fetched_wall = 0.0  # the same moment by the wall clock, to compare with a token's iat
        self._attempted_at = -float("inf")  # when a fetch last started
        self._completed = 0  # fetches finished, successful or not
        self._lock = asyncio.Lock()
        self._last_error: ProviderUnavailableError | None = None
        self._background: asyncio.Task[None] | None = None
        self.fetch_count = 0

    async def aclose(self) -> None:
        background = self._background
        if background is not None:
            background.cancel()
            # Wait for it, so it does not outlive the client it uses.
            with contextlib.suppress(asyncio.CancelledError):
                await background
        await self._client.aclose()

    def _forget_background(self, _task: asyncio.Task[None]) -> None:
        self._background = None

    async def get(
        self, kid: str | None, *, issued_at: Callable[[], float | None] | None = None
    ) -> VerificationKey | None:
        """The key for `kid`, fetching if needed; None when the provider does not have it.

        `issued_at`: gives the token's (unverified) iat; called only on a miss. When
        the kid is still unknown, the refetch window is closed, and the token is newer
        than our copy of the set, its key may be newer too: wait for the window to
        reopen and fetch once more.
        """
        found = self._lookup(kid)
        if found is None:
            await self._refresh(required=True)
            found = self._lookup(kid)
            wait = self._window_opens_in()
            if found is None and wait > 0 and self._newer_than_our_keys(issued_at):
                # The small margin: the event loop may wake a timer a clock tick early.
                await asyncio.sleep(wait + 0.01)
                await self._refresh(required=True)
                found = self._lookup(kid)
            return found
        if self._stale() and self._background is None:
            # Refresh behind the request: a slow provider must not slow a known key.
            self._background = asyncio.create_task(self._refresh(required=False))
            self._background.add_done_callback(self._forget_background)
        return found

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is None and len(self._keys) == 1:
            # A token without kid can only mean the provider's one key.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _newer_than_our_keys(self, issued_at: Callable[[], float | None] | None) -> bool:
        iat = issued_at() if issued_at is not None else None
        return iat is not None and iat > self._fetched_wall

    def _window_opens_in(self) -> float:
        return max(0.0, self._attempted_at + self.refetch_interval - time.monotonic())

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.max_age

    async def _refresh(self, *, required: bool) -> None:
        completed = self._completed
        async with self._lock:
            # Callers that queued behind a fetch (even one already under way when
            # they arrived) use its result instead of fetching again.
            due = time.monotonic() - self._attempted_at >= self.refetch_interval
            if self._completed == completed and due:
                await self._fetch()
        if required and self._last_error is not None:
            raise self._last_error

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        self.fetch_count += 1
        try:
            self._keys = await self._fetch_in_time()
        except ProviderUnavailableError as error:
            logger.warning("Cannot refresh signing keys: %s", error)
            self._last_error = error
            return
        finally:
            self._completed += 1
        self._last_error = None
        self._fetched_at = time.monotonic()
        self._fetched_wall = time.time()
        logger.info("Loaded %d signing key(s) from %s", len(self._keys), self.url)

    async def _fetch_in_time(self) -> dict[str | None, VerificationKey]:
        # httpx's timeout bounds each read, not the whole answer: a provider that drips
        # bytes would otherwise hold the lock, and every request queued on it, for ages.
        try:
            async with asyncio.timeout(self.timeout):
                return await fetch_key_set(self._client, self.url)
        except TimeoutError:
            raise ProviderUnavailableError(f"GET {self.url} did not answer within {self.timeout:g}s") from None
