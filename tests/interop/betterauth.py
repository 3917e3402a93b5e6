"""A real Better Auth server (`node interop/server.mjs`) and a user's view of it.

`nox -s interop` installs the pinned `better-auth` and `better-sqlite3` into
interop/node_modules; the server keeps its SQLite database in a temporary
folder. Users sign up with email and password and get their JWT from
`GET /api/auth/token` with the session cookie, as a Next.js app does.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from tests.support.live import free_port
from tests.support.suite import ROOT

PROJECT = ROOT / "interop"
SERVER = PROJECT / "server.mjs"
START_TIMEOUT = 20.0


def missing_setup() -> str | None:
    """Why the interop tests cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not on PATH: install Node 20+ (https://nodejs.org or your OS package)"
    if not (PROJECT / "node_modules" / "better-auth").is_dir():
        return "interop/node_modules is missing: run `nox -s interop` (it runs `npm ci` in interop/)"
    return None


@dataclasses.dataclass(frozen=True)
class User:
    """A signed-up user: Better Auth's user record and the session cookie it set."""

    id: str
    email: str
    name: str
    cookie: str  # the Cookie header that carries Better Auth's session token


def jose_header(token: str) -> dict[str, Any]:
    """The decoded protected header of a compact JWS."""
    segment = token.split(".", maxsplit=1)[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return header


class BetterAuthServer:
    """`node interop/server.mjs` on a free loopback port; stopped on exit.

    `base_url` (Better Auth's baseURL, hence the tokens' iss and aud) defaults
    to the server's own URL; a second server can claim the first one's.
    `base_path` is appended to it, as in `BETTER_AUTH_URL=http://localhost:3000/api/auth`.
    """

    def __init__(
        self, *, alg: str = "EdDSA", base_url: str | None = None, base_path: str = "", rotation_seconds: int = 0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = (base_url or self.url) + base_path
        self.alg = alg
        self._folder = Path(tempfile.mkdtemp(prefix="todo-better-auth-"))
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "BASE_URL": self.base_url,
            "DATABASE_PATH": str(self._folder / "auth.sqlite3"),
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            "KEY_ALG": alg,
            "ROTATION_SECONDS": str(rotation_seconds),
        }
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10.0)

    def start(self) -> BetterAuthServer:
        """Start node and return once it answers HTTP (its database is migrated by then)."""
        self.process = subprocess.Popen(
            ["node", str(SERVER)],
            cwd=PROJECT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while "listening on" not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Better Auth did not start (exit {self.process.poll()}):\n{self.output}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) so its endpoints refuse connections."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def output(self) -> str:
        self._output.seek(0)
        return self._output.read().decode("utf-8", errors="replace")

    def sign_up(self, name: str) -> User:
        """A new user signed up with email and password, with the session cookie Better Auth set."""
        email = f"{name.lower()}-{secrets.token_hex(4)}@example.com"
        response = self._http.post(
            "/api/auth/sign-up/email",
            json={"email": email, "password": "correct horse battery staple", "name": name},
        )
        assert response.status_code == 200, response.text
        user = response.json()["user"]
        assert user["email"] == email
        cookie = "; ".join(f"{key}={value}" for key, value in response.cookies.items())
        self._http.cookies.clear()  # each user's cookie is sent explicitly, never from the jar
        return User(id=user["id"], email=email, name=user["name"], cookie=cookie)

    def token(self, user: User) -> str:
        """The user's JWT from the JWT plugin's `GET /api/auth/token` (session cookie)."""
        response = self._http.get("/api/auth/token", headers={"Cookie": user.cookie})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def kids(self) -> list[str]:
        """The kids Better Auth publishes at /api/auth/jwks."""
        response = self._http.get("/api/auth/jwks")
        assert response.status_code == 200, response.text
        return [key["kid"] for key in response.json()["keys"]]

    def close(self) -> None:
        self.stop()
        self._http.close()
        self._output.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> BetterAuthServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
