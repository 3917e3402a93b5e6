"""The example Next.js app (examples/nextjs), built, migrated and served as docs/frontend.md says.

`nox -s frontend` runs `npm ci` there; these helpers then run the guide's own
commands: `npm run build`, `npx @better-auth/cli migrate --yes` and
`npm start`, each with the environment the guide's `.env.local` would give,
and time them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from tests.browser.chromium import stop_group
from tests.support.suite import ROOT

APP = ROOT / "examples" / "nextjs"
BUILD_TIMEOUT = 900.0
COMMAND_TIMEOUT = 120.0
START_TIMEOUT = 60.0
DEV_START_TIMEOUT = 180.0  # `next dev` compiles the page on the first request
# What the migration creates: Better Auth's tables and the JWT plugin's keys.
AUTH_TABLES = {"user", "session", "account", "verification", "jwks"}


def missing_setup() -> str | None:
    """Why the example app cannot run here, or None when it can."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not on PATH: install Node 20+ (https://nodejs.org or your OS package)"
    if not (APP / "node_modules" / "next").is_dir():
        return "examples/nextjs/node_modules is missing: run `nox -s frontend` (it runs `npm ci` there)"
    return None


class Timings:
    """How long each step took, for the session's summary."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = time.monotonic() - started

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps.items())


def app_environment(*, app_url: str, api_url: str, database: Path, secret: str) -> dict[str, str]:
    """The example's .env.local as process environment (which wins over a developer's .env.local)."""
    return {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "BETTER_AUTH_URL": app_url,
        "BETTER_AUTH_SECRET": secret,
        "NEXT_PUBLIC_API_URL": api_url,
        "AUTH_DATABASE_PATH": str(database),
    }


def run(command: list[str], env: dict[str, str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command in examples/nextjs without a terminal; its output, or an AssertionError with it."""
    result = subprocess.run(
        command,
        check=False,
        cwd=APP,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{output[-6000:]}")
    return output


def auth_tables(database: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def auth_user_id(database: Path, email: str) -> str:
    """The id Better Auth gave the user: the `sub` of their tokens."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        row = connection.execute('SELECT id FROM "user" WHERE email = ?', (email,)).fetchone()
    assert row is not None, f"Better Auth has no user {email}"
    return str(row[0])


class NextServer:
    """A Next.js server of the example (`npm start`, `npm run dev`); stopped with its process group on exit."""

    def __init__(self, env: dict[str, str], url: str, command: list[str]) -> None:
        self.url = url
        self._command = command
        self._env = env
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> NextServer:
        """Start it and return once its home page answers (`next dev` compiles it first)."""
        self.process = subprocess.Popen(
            self._command,
            cwd=APP,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # npm, its shell and node stop together
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self._command} did not answer (exit {self.process.poll()}):\n{self.output}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=5.0).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def output(self) -> str:
        self._output.seek(0)
        return self._output.read().decode("utf-8", errors="replace")

    def __enter__(self) -> NextServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.process is not None:
            stop_group(self.process)
        self._output.close()


def next_start(env: dict[str, str], port: int) -> NextServer:
    """The production build, as `npm start` serves it, on 127.0.0.1 and opened as http://localhost:PORT."""
    command = ["npm", "start", "--", "--hostname", "127.0.0.1", "--port", str(port)]
    return NextServer(env, f"http://localhost:{port}", command)


def next_dev(env: dict[str, str], port: int) -> NextServer:
    """`npm run dev` as a user runs it, opened as http://127.0.0.1:PORT.

    No `--hostname`: Next.js lets the host it was started with load its
    scripts, which would hide what `allowedDevOrigins` is for.
    """
    return NextServer(env, f"http://127.0.0.1:{port}", ["npm", "run", "dev", "--", "--port", str(port)])
