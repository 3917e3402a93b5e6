"""Reading Better Auth's key set: one GET, size- and time-capped, bound to one origin.

The server's key cache (backend/jwks.py) and `inv env-check`
(backend/diagnostics/auth_check.py) both read the set through `read_key_set`,
so both see the same keys and name a failure the same way.

Redirects are followed only within the origin (scheme, host and port) of the
configured URL, at most `MAX_REDIRECTS` of them: the origin that serves the
keys decides who can sign tokens, so a redirect to another one (a compromised
or misconfigured proxy, an open redirect) would hand that power to whoever
runs it, and an https URL redirected to http would send the keys in clear.
A same-origin hop cannot change who serves the keys.

A failure is a `ProviderUnavailableError` that says what was tried and what
came back, the fix (naming the setting the user set), and whether retrying
can help (a timeout, a 5xx) or only a configuration change can (refused,
unknown host, 404, not JSON, this backend itself, a redirect elsewhere).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from backend.errors import AppError, is_own_problem, quoted
from backend.settings import is_loopback_host

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1024 * 1024
MAX_REDIRECTS: Final = 3
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_ACCEPT: Final = {"Accept": "application/json"}
_SAME_AS_FRONTEND: Final = " (the same value as in the frontend's .env)"

# Algorithms per key type; the token's `alg` must be one of its key's.
_RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS: Final = {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)}
# Better Auth writes "EdDSA" for Ed25519; RFC 9864 names the same thing "Ed25519".
_OKP_ALGORITHMS: Final = {"Ed25519": ("EdDSA", "Ed25519")}


class ProviderUnavailableError(AppError):
    """The key set could not be read; `code` classifies why (AUTH_JWKS_*), `fix` says what to do.

    `retryable`: the cause may pass by itself (a timeout, a 5xx); otherwise only
    a change of configuration or of the provider helps.
    """

    def __init__(self, message: str, *, code: str, fix: str, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message, fix, code=code)


@dataclasses.dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    key: Key
    algorithms: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class KeySet:
    """The usable keys by kid, and a reason for each key that was skipped."""

    url: str
    keys: dict[str | None, VerificationKey]
    skipped: list[str]


class _NotAKeySetError(Exception):
    pass


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


def _parse(document: Any) -> tuple[dict[str | None, VerificationKey], list[str]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _NotAKeySetError('the JWKS answer is not a JSON object with a "keys" list')
    keys: dict[str | None, VerificationKey] = {}
    skipped: list[str] = []
    for index, item in enumerate(document["keys"]):
        result = usable_key(item) if isinstance(item, dict) else "is not a JSON object"
        if isinstance(result, str):
            skipped.append(f"key {index} ({item.get('kid') if isinstance(item, dict) else '?'}) {result}")
        else:
            keys[result.kid] = result
    return keys, skipped


def new_client(seconds: float, url: str) -> httpx.AsyncClient:
    """An HTTP client for `read_key_set` of `url`: it follows redirects itself, within url's origin.

    So an http:// URL never meets TLS, and its client does without the CA bundle
    (loading it is most of a client's start-up CPU): a context that still verifies,
    but trusts no CA, so any TLS would fail closed.
    """
    https = urlsplit(url).scheme.lower() == "https"
    verify: ssl.SSLContext | bool = True if https else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return httpx.AsyncClient(timeout=seconds, follow_redirects=False, verify=verify)


async def read_key_set(
    client: httpx.AsyncClient, url: str, *, seconds: float, setting: str = "BETTER_AUTH_URL"
) -> KeySet:
    """GET the key set within `seconds` in all; `ProviderUnavailableError` on any failure.

    `setting`: the setting a fix should name (the one the user set: BETTER_AUTH_URL,
    or BETTER_AUTH_JWKS_URL when that was set).
    """
    try:
        # httpx's timeout bounds each read, not the whole answer: a provider that
        # drips bytes would otherwise hold the caller for ages.
        async with asyncio.timeout(seconds):
            answer = await _get(client, url, setting)
    except TimeoutError:
        raise ProviderUnavailableError(
            f"GET {url} failed: no answer within {seconds:g}s",
            code="AUTH_JWKS_UNREACHABLE",
            fix=f"retry shortly; if it persists, check that {setting} is where Better Auth runs",
            retryable=True,
        ) from None
    return _key_set(answer, setting)


@dataclasses.dataclass(frozen=True)
class _Answer:
    requested: str
    url: str  # after same-origin redirects
    status: int
    body: bytes

    @property
    def shown(self) -> str:
        return self.url if self.url == self.requested else f"{self.requested} (redirected to {self.url})"


async def _get(client: httpx.AsyncClient, url: str, setting: str) -> _Answer:
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with client.stream("GET", target, headers=_ACCEPT) as response:
                if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                    target = _next_hop(url, target, response, setting)
                    continue
                return _Answer(url, target, response.status_code, await _read_capped(response, url, setting))
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise _request_failed(target, error, setting) from None
    raise ProviderUnavailableError(
        f"GET {url} was redirected more than {MAX_REDIRECTS} times (last to {target})",
        code="AUTH_JWKS_REDIRECTED",
        fix=f"set {setting} to the address that answers the keys itself",
    )


def _next_hop(url: str, target: str, response: httpx.Response, setting: str) -> str:
    location = response.headers["location"]
    try:
        hop = urljoin(target, location)
    except ValueError:  # e.g. "http://[oops": no URL at all, so no origin of ours
        hop = ""
    if _origin(hop) is None or _origin(hop) != _origin(url):
        shown = url if target == url else f"{url} (redirected to {target})"
        raise ProviderUnavailableError(
            f"GET {shown} answered HTTP {response.status_code} with Location {quoted(location, 200)}, "
            f"another origin than {_origin_text(url)}; keys are never fetched from another origin",
            code="AUTH_JWKS_REDIRECTED",
            fix=f"if Better Auth really moved, set {setting} to its new address; otherwise find what redirects",
        )
    return hop


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _origin_text(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _read_capped(response: httpx.Response, url: str, setting: str) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_JWKS_BYTES:
            raise ProviderUnavailableError(
                f"GET {url} answered more than {MAX_JWKS_BYTES} bytes, far more than any key set",
                code="AUTH_JWKS_NOT_JSON",
                fix=f"check {setting}: it should be the address of the app that runs Better Auth",
            )
    return bytes(body)


def _request_failed(url: str, error: httpx.HTTPError | httpx.InvalidURL, setting: str) -> ProviderUnavailableError:
    cause = _root_cause(error)
    if isinstance(cause, ConnectionRefusedError):
        return _refused(url, setting)
    dns_down = isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN
    if isinstance(cause, socket.gaierror) and not dns_down:
        return ProviderUnavailableError(
            f"GET {url} failed: the host {quoted(urlsplit(url).hostname or '', 80)} is not known (DNS)",
            code="AUTH_JWKS_UNREACHABLE",
            fix=f"fix the host name in {setting}",
        )
    # Timeouts, a dropped connection, DNS not answering may pass; a TLS or routing failure will not.
    retryable = dns_down or not isinstance(error, httpx.ConnectError | httpx.InvalidURL)
    return ProviderUnavailableError(
        f"GET {url} failed: {type(error).__name__}: {error}",
        code="AUTH_JWKS_UNREACHABLE",
        fix=f"retry shortly; if it persists, check that {setting} is where Better Auth runs"
        if retryable
        else f"check that {setting} is where Better Auth runs, and that this machine can reach it",
        retryable=retryable,
    )


def _refused(url: str, setting: str) -> ProviderUnavailableError:
    where = urlsplit(url).netloc
    same = _SAME_AS_FRONTEND if setting == "BETTER_AUTH_URL" else ""
    if is_loopback_host(urlsplit(url).hostname or ""):
        fix = f"start the frontend (`npm run dev`) so Better Auth serves its keys, or set {setting} to the address "
    else:
        fix = f"check that Better Auth runs on {where}, or set {setting} to the address "
    return ProviderUnavailableError(
        f"GET {url} failed: connection refused (nothing listens on {where})",
        code="AUTH_JWKS_UNREACHABLE",
        fix=f"{fix}it runs at{same}",
    )


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: httpx wraps the OSError that names the cause twice."""
    for _ in range(20):
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    return error


def _key_set(answer: _Answer, setting: str) -> KeySet:
    if answer.status != 200:
        raise _status_error(answer, setting)
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the interpreter's recursion limit.
        raise ProviderUnavailableError(
            f"GET {answer.shown} did not answer JSON",
            code="AUTH_JWKS_NOT_JSON",
            fix=f"{setting} must be the address of the app that runs Better Auth (a web page answered instead)",
        ) from None
    try:
        keys, skipped = _parse(document)
    except _NotAKeySetError as error:
        raise _no_keys(f"GET {answer.shown}: {error}", setting) from None
    for reason in skipped:
        logger.warning("JWKS %s: skipped %s", answer.url, reason)
    if not keys:
        reasons = "; ".join(skipped[:3]) or "the key set is empty"
        raise _no_keys(f"GET {answer.shown} holds no usable signing key ({reasons})", setting)
    return KeySet(answer.url, keys, skipped)


def _no_keys(message: str, setting: str) -> ProviderUnavailableError:
    return ProviderUnavailableError(
        message,
        code="AUTH_JWKS_NO_KEYS",
        fix="Better Auth's keys are Ed25519 (OKP) by default; EC P-256 and RSA work too: "
        f"check its jwt() plugin and that {setting} is its address",
    )


def this_backend_fix(setting: str) -> str:
    """The fix when the key URL leads to this backend instead of Better Auth."""
    return f"set {setting} to the frontend's address, where Better Auth runs (e.g. http://localhost:3000), not ours"


def _status_error(answer: _Answer, setting: str) -> ProviderUnavailableError:
    message = f"GET {answer.shown} answered HTTP {answer.status}"
    if is_own_problem(answer.body):
        return ProviderUnavailableError(
            f"{message} from this backend itself, not from Better Auth",
            code="AUTH_JWKS_IS_THIS_BACKEND",
            fix=this_backend_fix(setting),
        )
    if answer.status >= 500 or answer.status == 429:
        return ProviderUnavailableError(
            message,
            code="AUTH_JWKS_HTTP_ERROR",
            fix="Better Auth failed to answer (its log says why); retry shortly",
            retryable=True,
        )
    return ProviderUnavailableError(
        message,
        code="AUTH_JWKS_HTTP_ERROR",
        fix=f"enable Better Auth's jwt() plugin (it serves the keys at /api/auth/jwks) and check that {setting} "
        "is its address",
    )
