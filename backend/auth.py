"""Who is calling: Better Auth JWTs verified with joserfc.

Two modes, chosen per token by the configuration, never by the token alone:

- JWKS (Better Auth's JWT plugin): EdDSA/ES*/RS*/PS* tokens, verified with the
  provider's public key named by `kid`; the token's `alg` must fit that key.
- Shared secret: HS256 tokens signed with BETTER_AUTH_SECRET, accepted only when
  a secret is configured. A public key is never used as an HMAC secret, so the
  HS/RS "alg confusion" forgery has nothing to work with; `none` is refused.

Claims: `exp` and a non-empty `sub` are required; `iss` and `aud` must match the
settings; `nbf` and `iat` are checked with a small leeway.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, OctKey
from joserfc.jws import JWSRegistry, extract_compact
from starlette.requests import Request

from backend.errors import ServiceUnavailableError, UnauthorizedError
from backend.jwks import KeyCache, ProviderUnavailableError
from backend.settings import Settings

# Better Auth puts the whole user record in its token, `image` included: a
# data-URL avatar of a few KB must not lock its owner out. 16 KiB still fits in
# Hypercorn's 16 KiB header limit only on its own, hence no larger.
MAX_TOKEN_LENGTH: Final = 16 * 1024
LEEWAY_SECONDS: Final = 30
_ASYMMETRIC: Final = frozenset(
    {"EdDSA", "Ed25519", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_TYPES: Final = frozenset({"jwt", "at+jwt"})


@dataclasses.dataclass(frozen=True)
class Principal:
    """The authenticated caller, from the token's claims."""

    user_id: str
    email: str | None
    name: str | None


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
    """Verifies bearer tokens against the settings; one per application."""

    def __init__(self, settings: Settings, *, keys: KeyCache | None = None) -> None:
        self.keys = keys or KeyCache(settings.jwks_url)
        self._secret = OctKey.import_key(settings.secret.reveal()) if settings.secret else None
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._registries = {alg: _Registry(algorithms=[alg]) for alg in _ASYMMETRIC | {"HS256"}}

    async def aclose(self) -> None:
        await self.keys.aclose()

    async def verify(self, token: str) -> Principal:
        """The caller a token names; raise `UnauthorizedError` (or 503) if it does not verify."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise _invalid(f"The token is longer than {MAX_TOKEN_LENGTH} characters")
        header = _header(token)
        alg: str = header["alg"]
        key = await self._key_for(alg, header.get("kid"), token)
        try:
            claims = jwt.decode(token, key, algorithms=[alg], registry=self._registries[alg]).claims
            self._claims_registry().validate(claims)
        except ExpiredTokenError:
            raise UnauthorizedError(
                "The token has expired; get a fresh one from Better Auth", code="TOKEN_EXPIRED"
            ) from None
        except BadSignatureError:
            raise _invalid("The token's signature does not verify") from None
        except (InvalidClaimError, MissingClaimError) as error:
            raise _invalid(self._claim_message(error)) from None
        except (JoseError, ValueError, TypeError, KeyError, RecursionError) as error:
            # RecursionError: a payload nested deeper than json.loads can follow.
            raise _invalid(f"The token cannot be decoded ({type(error).__name__})") from None
        return _principal(claims)

    async def _key_for(self, alg: str, kid: object, token: str) -> Key:
        if alg == "HS256":
            if self._secret is None:
                raise _invalid("HS256 tokens are accepted only when BETTER_AUTH_SECRET is set")
            return self._secret
        if alg not in _ASYMMETRIC:
            raise _invalid(f"The token's algorithm {alg[:20]!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("The token's kid is not a string")
        try:
            found = await self.keys.get(kid, issued_at=lambda: _issued_at(token))
        except ProviderUnavailableError:
            raise ServiceUnavailableError(
                "The auth provider's keys cannot be fetched right now; retry shortly",
                code="AUTH_PROVIDER_UNAVAILABLE",
                retry_after=10,  # the KeyCache refetches unknown kids at most every 10 s
            ) from None
        if found is None:
            if kid is None:
                raise _invalid("The token has no kid, and the provider has more than one signing key")
            raise _invalid(f"No signing key with kid {kid[:64]!r} at the provider")
        if alg not in found.algorithms:
            raise _invalid(f"The token's algorithm {alg} does not match its key ({', '.join(found.algorithms)})")
        return found.key

    def _claims_registry(self) -> jwt.JWTClaimsRegistry:
        # Built per call: the registry reads the clock when it is created.
        return jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def _claim_message(self, error: InvalidClaimError | MissingClaimError) -> str:
        claim = error.claim
        if isinstance(error, MissingClaimError):
            return f"The token lacks the claim(s) {claim}"
        if claim == "iss":
            return f"The token's issuer is not {self._issuer} (JWT_ISSUER)"
        if claim == "aud":
            return f"The token's audience does not include {self._audience} (JWT_AUDIENCE)"
        if claim in ("nbf", "iat"):
            return f"The token is not valid yet ({claim} is in the future)"
        return f"The token's {claim} claim is invalid"


async def authenticate(request: Request) -> Principal:
    """The caller of `request`, from exactly one `Authorization: Bearer` header."""
    headers = request.headers.getlist("authorization")
    if not headers:
        raise UnauthorizedError(
            "Send the Better Auth token as Authorization: Bearer <token>", code="TOKEN_MISSING", oauth_error=None
        )
    if len(headers) > 1:
        raise UnauthorizedError("Send one Authorization header, not several", oauth_error="invalid_request")
    scheme, _, token = headers[0].strip().partition(" ")
    token = token.strip()
    # RFC 7235: the scheme is case-insensitive.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise UnauthorizedError("The Authorization header must be: Bearer <token>", oauth_error="invalid_request")
    verifier: TokenVerifier = request.app.state.verifier
    # A rejection is logged (reason only, never the token) by the problem handler.
    return await verifier.verify(token)


def _header(token: str) -> dict[str, Any]:
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError, UnicodeError, AttributeError) as error:
        # AttributeError: joserfc takes the header for an object; JSON "alg" or ["alg"] is not one.
        raise _invalid(f"The token is not a compact JWT ({type(error).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise _invalid("The token's header is not a JSON object with a string alg")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
        raise _invalid("The token's typ is not JWT")
    return dict(header)


def _issued_at(token: str) -> float | None:
    """The token's `iat`, unverified: only to tell whether its key may be newer than our copy.

    A forger can write any iat; the worst it buys is waiting out the refetch window
    for its own 401. An iat beyond the leeway is ignored: the token fails on it anyway.
    """
    try:
        claims = json.loads(extract_compact(token.encode("ascii")).payload)
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
