"""The tokens the bench sends, and the Better Auth JWKS endpoint that vouches for them.

Better Auth's JWT plugin signs with EdDSA (Ed25519). Its JWKS endpoint serves
one OKP key with a `kid` and neither `alg` nor `use`, and sends no cache
headers; its tokens' header is `{alg, kid}` (no `typ`), and their claims are
the user record besides `sub`, `iss`, `aud`, `iat` and `exp` (SPEC.md §4).
`Provider` plays that endpoint (a thread of the bench process; each server
fetches it at its first token) and signs such tokens. `hs256` signs the same
claims with the shared secret instead.

Both servers under test get the same issuer and audience: the provider's URL,
as Better Auth derives them from BETTER_AUTH_URL.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal

from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey
from joserfc.jws import JWSRegistry

from backend.settings import Secret, Settings

Kind = Literal["eddsa", "hs256"]
KINDS: Final[tuple[Kind, ...]] = ("eddsa", "hs256")
TITLES: Final[dict[Kind, str]] = {
    "eddsa": "EdDSA (Ed25519) tokens verified from a JWKS endpoint, as Better Auth signs them",
    "hs256": "HS256 tokens signed with the shared secret",
}
# Random-looking: a guessable one makes the server log SECRET_WEAK (and refuse it in production).
SECRET: Final = "benchmark-shared-secret-Qx4Tn8Wb2Lk7Pz5Rm1Yc9Hv3Jd6Fs0Ga"  # noqa: S105 - the bench's own
# Long enough for a whole run; Better Auth's own last 15 minutes, which changes nothing per request.
TOKEN_TTL_SECONDS: Final = 6 * 3600


class _Registry(JWSRegistry):
    """Signs with Better Auth's "EdDSA" name without joserfc's RFC 9864 warning."""

    def get_alg(self, name: str) -> Any:
        if name == "EdDSA":
            return self.algorithms[name]
        return super().get_alg(name)


class _KeySetServer(ThreadingHTTPServer):
    """Answers every GET with the key set, as Better Auth does: JSON, no cache headers. Counts the GETs."""

    daemon_threads = True

    def __init__(self, document: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _KeySetHandler)
        self.document = document
        self.requests = 0
        self._counting = threading.Lock()

    def count(self) -> None:
        with self._counting:
            self.requests += 1


class _KeySetHandler(BaseHTTPRequestHandler):
    server: _KeySetServer

    def do_GET(self) -> None:
        self.server.count()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.document)))
        self.end_headers()
        self.wfile.write(self.server.document)

    def log_message(self, *args: Any) -> None:
        pass


class Provider:
    """`with Provider() as provider`: one Ed25519 key behind `{url}/api/auth/jwks`."""

    def __init__(self) -> None:
        # Better Auth's kids are random ids of this length.
        self._key = OKPKey.generate_key("Ed25519", {"kid": secrets.token_urlsafe(24)})
        self._secret = OctKey.import_key(SECRET)
        document = {"keys": [self._key.as_dict(private=False)]}  # kty, crv, x, kid: no alg, no use
        self._server = _KeySetServer(json.dumps(document).encode())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> Provider:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """BETTER_AUTH_URL, and the tokens' `iss` and `aud`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/jwks"

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The key as the endpoint serves it."""
        return dict(self._key.as_dict(private=False))

    @property
    def jwks_requests(self) -> int:
        """GETs of the key set so far."""
        return self._server.requests

    def token(self, kind: Kind, sub: str = "alice") -> str:
        claims = self.claims(sub)
        if kind == "hs256":
            return jwt.encode({"alg": "HS256"}, claims, self._secret, algorithms=["HS256"], default_type=None)
        header = {"alg": "EdDSA", "kid": self._key.kid}
        return jwt.encode(header, claims, self._key, registry=_Registry(algorithms=["EdDSA"]), default_type=None)

    def claims(self, sub: str) -> dict[str, Any]:
        """Better Auth's claims: the session's user record, then `iat`, `exp`, `iss`, `aud` and `sub`."""
        now = int(time.time())
        joined = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 86400))
        return {
            "name": sub.title(),
            "email": f"{sub}@example.com",
            "emailVerified": False,
            "image": None,
            "createdAt": joined,
            "updatedAt": joined,
            "id": sub,
            "iat": now,
            "iss": self.url,
            "aud": self.url,
            "exp": now + TOKEN_TTL_SECONDS,
            "sub": sub,
        }

    def our_env(self) -> dict[str, str]:
        """Ours in JWKS mode at this provider; the secret set too (development always has one), for HS256."""
        return {
            "BETTER_AUTH_URL": self.url,
            "BETTER_AUTH_JWKS_URL": self.jwks_url,
            "JWT_ISSUER": self.url,
            "JWT_AUDIENCE": self.url,
            "BETTER_AUTH_SECRET": SECRET,
        }

    def settings(self, database_url: str) -> Settings:
        """`our_env()` as Settings, for the app run in process (benchmarks/cost.py)."""
        return Settings(
            database_url=database_url,
            better_auth_url=self.url,
            jwks_url=self.jwks_url,
            secret=Secret(SECRET),
            jwt_issuer=self.url,
            jwt_audience=self.url,
            db_connect_retry_seconds=0,
        )

    def peer_env(self, kind: Kind) -> dict[str, str]:
        """The peer verifies one kind: with PyJWKClient at this provider, or with the shared secret."""
        chosen = {"BETTER_AUTH_JWKS_URL": self.jwks_url} if kind == "eddsa" else {"BETTER_AUTH_SECRET": SECRET}
        return {"JWT_ISSUER": self.url, "JWT_AUDIENCE": self.url, **chosen}
