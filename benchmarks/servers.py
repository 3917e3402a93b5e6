"""The servers under test, each a subprocess on its own loopback port.

- ours: `python -m backend` with a controlled environment, exactly what
  `inv run` serves (Hypercorn, one worker unless WORKERS says otherwise);
- ceiling: benchmarks/ceiling.py, bare Starlette on our Hypercorn config;
- peer: FastAPI + SQLModel on uvicorn (uvloop, httptools, no access log).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from backend.settings import SETTING_NAMES
from benchmarks.tokens import Kind, Provider
from tests.support.live import free_port

ROOT = Path(__file__).resolve().parent.parent


def has_bytecode() -> bool:
    """Whether backend/ has compiled bytecode (the first start writes it, as on a user's machine)."""
    return any((ROOT / "backend" / "__pycache__").glob("server.*.pyc"))


def users_environ() -> dict[str, str]:
    """This process's environment as a user's shell has it: without PYTHONDONTWRITEBYTECODE.

    Some machines (this project's CI and lab among them) set it; a user's
    rarely does, and without bytecode every start compiles backend/ again.
    """
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


class Server:
    """A server process; `start()` returns once `ready_path` answers 200."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], ready_path: str = "/health", workers: int = 1
    ) -> None:
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.command = command
        self.env = {**users_environ(), "PYTHONUNBUFFERED": "1", **env, "PORT": str(self.port)}
        self.ready_path = ready_path
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> float:
        """Start, wait for `ready_path` to answer 200; the seconds that took."""
        began = time.perf_counter()
        argv = [arg.replace("{port}", str(self.port)) for arg in self.command]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        streak = 1 if self.workers == 1 else 20 * self.workers
        wait_for_200(f"{self.url}{self.ready_path}", self.process, timeout, self.output, streak)
        return time.perf_counter() - began

    def rss_mib(self) -> float:
        """Resident memory of the server and its children (worker processes)."""
        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        processes = [parent, *parent.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes) / 2**20

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")[-4000:]


def wait_for_200(
    url: str, process: subprocess.Popen[bytes], timeout: float, output: object = None, streak: int = 1
) -> None:
    """Return once `url` answered 200 `streak` times in a row, each on a new connection.

    With several worker processes each connection may land on another one, and
    each worker starts (and connects to the database) on its own.
    """
    deadline = time.perf_counter() + timeout
    successes = 0
    while successes < streak:
        if process.poll() is not None:
            shown = output() if callable(output) else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{shown}")
        try:
            ok = httpx.get(url, timeout=1.0).status_code == 200
        except httpx.TransportError:
            ok = False
        successes = successes + 1 if ok else 0
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout}s")
        if not ok:
            time.sleep(0.01)


def our_env(database_url: str, provider: Provider, workers: int = 1) -> dict[str, str]:
    """Every setting explicit (a developer's `.env` must not leak in); empty means the default."""
    return {
        **dict.fromkeys(SETTING_NAMES, ""),
        "DATABASE_URL": database_url,
        **provider.our_env(),
        "HOST": "127.0.0.1",
        "WORKERS": str(workers),
        "APP_ENV": "development",
    }


def ours(database_url: str, provider: Provider, workers: int = 1) -> Server:
    env = our_env(database_url, provider, workers)
    return Server("ours", [sys.executable, "-m", "backend"], env, ready_path="/ready", workers=workers)


def ceiling() -> Server:
    return Server("ceiling", [sys.executable, "-m", "benchmarks.ceiling"], {})


def ceiling_on_uvicorn() -> Server:
    """The same bare app on the peer's server: what Hypercorn itself costs."""
    return Server("ceiling-uvicorn", _uvicorn("benchmarks.ceiling:app"), {})


def peer(database_url: str, provider: Provider, kind: Kind) -> Server:
    """The peer verifying `kind` tokens (it reads one mode from its environment, as such apps do)."""
    env = {
        "DATABASE_URL": database_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        **provider.peer_env(kind),
        "DB_POOL_SIZE": "10",
    }
    return Server("peer", _uvicorn("benchmarks.peers.fastapi_sqlmodel:app"), env)


def _uvicorn(app: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
