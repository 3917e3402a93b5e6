"""Better Auth JWTs verified with joserfc: the app's `TokenVerifier`.

Two modes, chosen per token by the configuration, never by the token alone:

- JWKS (Better Auth's JWT plugin): EdDSA/ES*/RS*/PS* tokens, verified with the
  provider's public key named by `kid`; the token's `alg` must fit that key.
- Shared secret: HS256 tokens signed with BETTER_AUTH_SECRET, accepted only when
  a secret is configured. A public key is never used as an HMAC secret, so the
  HS/RS "alg confusion" forgery has nothing to work with; `none` is refused.

Claims: `exp` and a non-empty `sub` are required; `iss` and `aud` must match the
settings; `nbf` and `iat` are checked with a small leeway.

A token that verified is kept (backend/tokencache.py): its next requests skip
the signature, and are answered only as a fresh verification would answer
them at that moment (its key looked up again, the clock checked again).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidPayloadError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, OctKey
from joserfc.jws import CompactSignature, JWSRegistry, extract_compact, validate_compact

from backend.auth import GET_THE_JWT, Principal
from backend.errors import ServiceUnavailableError, UnauthorizedError, quoted
from backend.jwks import KeyCache
from backend.keyset import ProviderUnavailableError, VerificationKey
from backend.settings import Settings
from backend.tokencache import VerifiedToken, VerifiedTokens

# Better Auth puts the whole user record in its token, `image` included: a
# data-URL avatar of a few KB must not lock its owner out. 16 KiB still fits in
# Hypercorn's 16 KiB header limit only on its own, hence no larger.
MAX_TOKEN_LENGTH: Final = 16 * 1024
LEEWAY_SECONDS: Final = 30
_ASYMMETRIC: Final = frozenset(
    {"EdDSA", "Ed25519", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_TYPES: Final = frozenset({"jwt", "at+jwt"})
# What a frontend sends when the variable meant to hold the token is empty.
_NOT_SET: Final = frozenset({"undefined", "null", "none", "nil", '""', "''"})


class _Registry(JWSRegistry):
    """Accepts Better Auth's "EdDSA" without joserfc's per-call warning.

    RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519", and joserfc
    warns on every use. Better Auth still signs with "EdDSA"; we accept it
    deliberately, and only with Ed25519 keys (backend/jwks.py checks the curve).
    """

    def get_alg(self, name: str) -> Any:
        if name == "EdDSA" and self.allowed and name in self.allowed:
            return self.algorithms[name]
        return super().get_alg(name)


class TokenVerifier:
    """Verifies bearer tokens against the settings; one per application.

    `clock` gives the wall-clock time the claims are checked against (tests move it).
    """

    def __init__(
        self, settings: Settings, *, keys: KeyCache | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys or KeyCache(settings.jwks_url, setting=settings.setting_for("BETTER_AUTH_JWKS_URL"))
        self._secret = OctKey.import_key(settings.secret.reveal()) if settings.secret else None
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._issuer_setting = settings.setting_for("JWT_ISSUER")
        self._audience_setting = settings.setting_for("JWT_AUDIENCE")
        self._production = settings.is_production
        self._registries = {alg: _Registry(algorithms=[alg]) for alg in _ASYMMETRIC | {"HS256"}}
        self._clock = clock
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        self.verified: VerifiedTokens[Principal] = VerifiedTokens(settings.token_cache_size)
        self.keys.on_refresh(self._keys_changed)

    async def aclose(self) -> None:
        await self.keys.aclose()

    async def verify(self, token: str) -> Principal:
        """The caller a token names; raise `UnauthorizedError` (or 503) if it does not verify."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise _invalid(f"The token is longer than {MAX_TOKEN_LENGTH} characters")
        if not self.verified.size:
            return (await self._verify(token)).principal
        digest = self.verified.digest(token)
        cached = self.verified.get(digest)
        if cached is not None:
            # The lookup a fresh verification would make, with its refetch, 401 or 503.
            key = await self._key_for(cached.alg, cached.kid, lambda: _issued_at(_compact(token).payload))
            if cached.answers(key, self._clock(), LEEWAY_SECONDS):
                return cached.principal
            self.verified.discard(digest)
        verified = await self._verify(token)
        self.verified.put(digest, verified, self._clock())
        return verified.principal

    async def _verify(self, token: str) -> VerifiedToken[Principal]:
        """A full verification: the token parsed once, its key looked up, its signature and claims checked."""
        compact = _compact(token)
        header = _header(compact)
        alg: str = header["alg"]
        kid = header.get("kid")
        key = await self._key_for(alg, kid, lambda: _issued_at(compact.payload))
        claims: dict[str, Any] = {}
        try:
            if not validate_compact(compact, key, [alg], self._registries[alg]):
                raise BadSignatureError()
            claims = _claims(compact.payload)
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise UnauthorizedError(
                "The token has expired; get a fresh one from Better Auth", code="TOKEN_EXPIRED"
            ) from None
        except BadSignatureError:
            raise _invalid("The token's signature does not verify") from None
        except (InvalidClaimError, MissingClaimError) as error:
            raise _invalid(self._claim_message(error, claims)) from None
        except (JoseError, ValueError, TypeError, KeyError, RecursionError) as error:
            # RecursionError: a payload nested deeper than json.loads can follow.
            raise _invalid(f"The token cannot be decoded ({type(error).__name__})") from None
        return VerifiedToken(_principal(claims), alg, kid, key, claims["exp"], claims.get("nbf"), claims.get("iat"))

    def _keys_changed(self, keys: Collection[VerificationKey]) -> None:
        kept = [found.key for found in keys]
        self.verified.retain_keys(kept if self._secret is None else [*kept, self._secret])

    async def _key_for(self, alg: str, kid: object, issued_at: Callable[[], float | None]) -> Key:
        if alg == "HS256":
            if self._secret is None:
                raise _invalid("HS256 tokens are accepted only when BETTER_AUTH_SECRET is set")
            return self._secret
        if alg not in _ASYMMETRIC:
            raise _invalid(f"The token's algorithm {alg[:20]!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("The token's kid is not a string")
        try:
            found = await self.keys.get(kid, issued_at=issued_at)
        except ProviderUnavailableError as error:
            raise ServiceUnavailableError(
                self._unavailable_detail(error), code="AUTH_PROVIDER_UNAVAILABLE", retry_after=self.keys.retry_after()
            ) from None
        if found is None:
            if kid is None:
                raise _invalid("The token has no kid, and the provider has more than one signing key")
            raise _invalid(f"No signing key with kid {kid[:64]!r} at the provider")
        if alg not in found.algorithms:
            raise _invalid(f"The token's algorithm {alg} does not match its key ({', '.join(found.algorithms)})")
        return found.key

    def _unavailable_detail(self, error: ProviderUnavailableError) -> str:
        """The 503's detail: in development the URL tried, the cause and the fix; in production only the kind.

        Production keeps its provider's address to its log: anyone can send a token with a new kid.
        """
        retry = "; retry shortly" if error.retryable else ""
        if self._production:
            return f"The auth provider's keys cannot be fetched ({error.code}; the server log says why){retry}"
        return f"Cannot fetch the auth provider's keys: {error.message}. Fix: {error.fix}"

    def _claim_message(self, error: InvalidClaimError | MissingClaimError, claims: dict[str, Any]) -> str:
        claim = error.claim
        if isinstance(error, MissingClaimError):
            return f"The token lacks the claim(s) {claim}"
        if claim == "iss":
            return _mismatch("issuer", claims.get("iss"), self._issuer, self._issuer_setting)
        if claim == "aud":
            return _mismatch("audience", claims.get("aud"), self._audience, self._audience_setting)
        if claim in ("nbf", "iat"):
            return f"The token is not valid yet ({claim} is in the future)"
        return f"The token's {claim} claim is invalid"


def _mismatch(name: str, carried: object, expected: str, setting: str) -> str:
    """An iss/aud mismatch: the value the token carries, the one expected, and the setting to change."""
    if setting == "BETTER_AUTH_URL":
        source = "the origin of BETTER_AUTH_URL"
        fix = "use the same BETTER_AUTH_URL here and in the frontend (`localhost` and `127.0.0.1` differ)"
    else:
        source = setting
        fix = f"set {setting} to the {name} Better Auth signs with, or remove it to follow BETTER_AUTH_URL"
    return f"The token's {name} is {_shown(carried)}, but this backend expects {expected!r} ({source}); {fix}"


def _shown(value: object) -> str:
    """A claim's value for a message: attacker-controlled, so escaped and shortened."""
    if isinstance(value, str):
        return quoted(value, 100)
    return json.dumps(value, default=str)[:100]  # ASCII: control characters come out escaped


def _compact(token: str) -> CompactSignature:
    """The token split and its header and payload decoded, once: nothing verified yet."""
    if token.count(".") != 2:
        raise _invalid(_not_a_jwt(token))
    try:
        compact = extract_compact(token.encode("ascii"))
        compact.headers()
    except (JoseError, ValueError, TypeError, UnicodeError, AttributeError) as error:
        # AttributeError: joserfc takes the header for an object; JSON "alg" or ["alg"] is not one.
        raise _invalid(f"The token is not a compact JWT ({type(error).__name__})") from None
    return compact


def _header(compact: CompactSignature) -> dict[str, Any]:
    header = compact.headers()
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise _invalid("The token's header is not a JSON object with a string alg")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
        raise _invalid("The token's typ is not JWT")
    return dict(header)


def _not_a_jwt(token: str) -> str:
    if token.lower() in _NOT_SET:
        return f"The bearer token is the text {token!r}: the variable meant to hold the token is empty; {GET_THE_JWT}"
    return (
        f"The token is not a compact JWT (three base64url parts joined by dots; this has {token.count('.') + 1}). "
        f"A Better Auth session token is not a JWT: {GET_THE_JWT}"
    )


def _claims(payload: bytes) -> dict[str, Any]:
    """The payload's claims, as joserfc's `jwt.decode` reads them: a JSON object."""
    claims = json.loads(payload)
    if not isinstance(claims, dict):
        raise InvalidPayloadError()
    return claims


def _issued_at(payload: bytes) -> float | None:
    """The token's `iat`, unverified: only to tell whether its key may be newer than our copy.

    A forger can write any iat; the worst it buys is waiting out the refetch window
    for its own 401. An iat beyond the leeway is ignored: the token fails on it anyway.
    """
    try:
        claims = json.loads(payload)
        iat = claims.get("iat") if isinstance(claims, dict) else None
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            return None
        issued = float(iat)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError, OverflowError):
        return None
    return issued if math.isfinite(issued) and issued <= time.time() + LEEWAY_SECONDS else None


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or not sub.isprintable():
        raise _invalid("The token's sub is empty or not printable text")
    email, name = claims.get("email"), claims.get("name")
    return Principal(sub, email if isinstance(email, str) else None, name if isinstance(name, str) else None)


def _invalid(detail: str) -> UnauthorizedError:
    return UnauthorizedError(detail)
