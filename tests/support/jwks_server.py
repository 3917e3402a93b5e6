"""A real HTTP server that plays Better Auth's JWKS endpoint, and signs tokens.

It serves `/api/auth/jwks` from the keys it holds, counts requests, and can be
told to fail (HTTP 500, a 404 page, garbage, hang) or to redirect a path, to
test how the backend copes.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry


class _Registry(JWSRegistry):
    """Signs with Better Auth's "EdDSA" name without joserfc's RFC 9864 warning."""

    def get_alg(self, name: str) -> Any:
        if name == "EdDSA":
            return self.algorithms[name]
        return super().get_alg(name)


def generate_key(alg: str, kid: str) -> Key:
    parameters = {"kid": kid}
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters)
    return RSAKey.generate_key(2048, parameters)


def sign(key: Key, alg: str, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, registry=_Registry(algorithms=[alg]))


class JWKSServer:
    """Serves {"keys": [...]} for the keys added; `mode` can be ok, error, missing, garbage, hang.

    `redirects` maps a path to (status, Location): that path is answered with the redirect instead.
    """

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.mode = "ok"
        self.requests = 0
        self.document: Any = None  # when set, served as-is instead of the keys
        self.redirects: dict[str, tuple[int, str]] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if self.path in owner.redirects:
                    status, location = owner.redirects[self.path]
                    self.send_response(status)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if owner.mode == "hang":
                    time.sleep(10)
                status, body = owner._answer()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if body.startswith(b"<") else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/api/auth/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _answer(self) -> tuple[int, bytes]:
        if self.mode == "error":
            return 500, b'{"error": "boom"}'
        if self.mode == "garbage":
            return 200, b"<html>not json</html>"
        if self.mode == "missing":
            return 404, b"<html>This page could not be found.</html>"
        document = self.document
        if document is None:
            # Like Better Auth: public keys with kid, no "use", often no "alg".
            document = {"keys": [key.as_dict(private=False) for key in self.keys]}
        return 200, json.dumps(document).encode()

    def add_key(self, alg: str, kid: str) -> Key:
        key = generate_key(alg, kid)
        self.keys.append(key)
        return key

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
