"""Better Auth's public keys: read from its JWKS endpoint (backend/keyset.py), cached by `kid`.

Better Auth sends no cache headers and rotates keys by adding a new `kid`.
So keys are kept until a token names a `kid` we do not hold; then the set is
fetched again, at most once per `refetch_interval` however many such tokens
arrive (concurrent callers share one fetch). Anyone can send unknown kids, so
the window may have just been used when a genuinely rotated key shows up: a
token issued after our last read of the set then waits for the window to
reopen (at most `refetch_interval`) instead of being refused, still without
more than one fetch per window. Until a set has been read once, the window
is `cold_refetch_interval` (1 s) instead: Better Auth started after the
backend must not cost 10 s of 503s. A set older than `max_age` is
refreshed on the next use; if the provider is down then, the cached keys keep
working. A `kid` that cannot be resolved because the provider is down is a 503
(`ProviderUnavailableError`), not a 401: the token may be perfectly valid.

A key that comes back unchanged from a refetch stays the same object, and
every fetch that reads a key set tells the `on_refresh` listeners which keys
are current: the verified-token cache (backend/tokencache.py) drops what a
removed or replaced key verified, and keeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection
from typing import Final

from backend.keyset import ProviderUnavailableError, VerificationKey, new_client, read_key_set

logger = logging.getLogger(__name__)

# Until a key set has been loaded once, a failed fetch is retried after this
# long instead of `refetch_interval`: the provider just started (Better Auth
# after the backend) must not cost its first users 10 s of 503s, while a flood
# of tokens against a provider that is down still makes one fetch a second.
COLD_REFETCH_INTERVAL: Final = 1.0

KeysListener = Callable[[Collection[VerificationKey]], None]


class KeyCache:
    """The provider's keys by kid, refetched on an unknown kid at a bounded rate.

    `timeout` bounds a whole fetch, not just each read of it. `setting` is the
    setting a failure's fix names (the one the user set).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 3.0,
        refetch_interval: float = 10.0,
        cold_refetch_interval: float = COLD_REFETCH_INTERVAL,
        max_age: float = 300.0,
        setting: str = "BETTER_AUTH_URL",
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.refetch_interval = refetch_interval
        self.cold_refetch_interval = cold_refetch_interval
        self.max_age = max_age
        self.setting = setting
        self._client = new_client(timeout, url)
        self._keys: dict[str | None, VerificationKey] = {}
        self._loaded = False  # whether a key set was ever read
        self._fetched_at = 0.0  # when the keys were last read successfully
        self._fetched_wall = 0.0  # the same moment by the wall clock, to compare with a token's iat
        self._attempted_at = -float("inf")  # when a fetch last started
        self._completed = 0  # fetches finished, successful or not
        self._lock = asyncio.Lock()
        self._last_error: ProviderUnavailableError | None = None
        self._background: asyncio.Task[None] | None = None
        self._listeners: list[KeysListener] = []
        self.fetch_count = 0

    def on_refresh(self, listener: KeysListener) -> None:
        """Call `listener` with the current keys after every fetch that read a key set."""
        self._listeners.append(listener)

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

    def retry_after(self) -> int:
        """Whole seconds until a request may fetch the keys again (at least 1): a 503's Retry-After."""
        return max(1, math.ceil(self._window_opens_in()))

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is None and len(self._keys) == 1:
            # A token without kid can only mean the provider's one key.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _newer_than_our_keys(self, issued_at: Callable[[], float | None] | None) -> bool:
        iat = issued_at() if issued_at is not None else None
        return iat is not None and iat > self._fetched_wall

    def _interval(self) -> float:
        return self.refetch_interval if self._loaded else min(self.refetch_interval, self.cold_refetch_interval)

    def _window_opens_in(self) -> float:
        return max(0.0, self._attempted_at + self._interval() - time.monotonic())

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.max_age

    async def _refresh(self, *, required: bool) -> None:
        completed = self._completed
        async with self._lock:
            # Callers that queued behind a fetch (even one already under way when
            # they arrived) use its result instead of fetching again.
            if self._completed == completed and self._window_opens_in() == 0:
                await self._fetch()
        if required and self._last_error is not None:
            raise self._last_error

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        self.fetch_count += 1
        try:
            key_set = await read_key_set(self._client, self.url, seconds=self.timeout, setting=self.setting)
        except ProviderUnavailableError as error:
            if self._loaded:
                error = _as_outage(error)
            logger.warning("Cannot fetch the signing keys: %s. Fix: %s", error.message, error.fix)
            self._last_error = error
            return
        finally:
            self._completed += 1
        self._keys = _unchanged_kept(self._keys, key_set.keys)
        self._loaded = True
        self._last_error = None
        self._fetched_at = time.monotonic()
        self._fetched_wall = time.time()
        logger.info("Loaded %d signing key(s) from %s", len(self._keys), key_set.url)
        for listener in self._listeners:
            listener(self._keys.values())


def _unchanged_kept(
    old: dict[str | None, VerificationKey], new: dict[str | None, VerificationKey]
) -> dict[str | None, VerificationKey]:
    """`new`, where a key equal to the one we held (same kid, public key and algorithms) is the object we held."""
    return {kid: old[kid] if kid in old and _same_key(old[kid], key) else key for kid, key in new.items()}


def _same_key(held: VerificationKey, fetched: VerificationKey) -> bool:
    return held.algorithms == fetched.algorithms and held.key.as_dict(private=False) == fetched.key.as_dict(
        private=False
    )


def _as_outage(error: ProviderUnavailableError) -> ProviderUnavailableError:
    """A provider that served keys before and is unreachable now is restarting, not misconfigured."""
    if error.code != "AUTH_JWKS_UNREACHABLE" or error.retryable:
        return error
    return ProviderUnavailableError(
        error.message,
        code=error.code,
        fix="it served keys before, so it is likely restarting: retry shortly, and start it if it stays down",
        retryable=True,
    )
