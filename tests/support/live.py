"""A real server for tests: `python -m backend` in a subprocess, on a real socket.

The child gets a controlled environment: every setting the backend reads is
set explicitly (empty means "the default"), because real environment
variables win over a developer's `.env`, which must not leak into a test.
Output goes to files, not pipes: a chatty server can never block on a full
pipe, and nothing is left open to raise a ResourceWarning.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from types import TracebackType
from typing import IO

import httpx

from backend.diagnostics.ports import ipv6_available
from backend.settings import SETTING_NAMES, Settings, build_settings
from tests.support.suite import ROOT

START_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0


def free_port() -> int:
    """A port that nothing listens on, on 127.0.0.1 and (where it exists) ::1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not ipv6_available() or _bindable(socket.AF_INET6, "::1", port):
            return port
    raise RuntimeError("no port is free on both 127.0.0.1 and ::1")


def _bindable(family: socket.AddressFamily, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_listening(host: str, port: int, timeout: float = START_TIMEOUT) -> None:
    """Return once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class LiveServer:
    """`python -m backend` with exactly the settings given; always stopped on exit.

    Use as a context manager; `start()` returns without waiting, `wait_healthy()`
    polls /health, `stop()` sends a signal and returns the exit status.
    """

    def __init__(self, **settings: str) -> None:
        given = settings.get("PORT", "")
        self.port = int(given) if given.isdigit() else free_port()
        self.env = {
            **os.environ,
            **dict.fromkeys(SETTING_NAMES, ""),
            "PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        """The settings the child computes from its environment (no `.env` involved)."""
        return build_settings(self.env.get)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url6(self) -> str:
        return f"http://[::1]:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> LiveServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
        )
        return self

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Poll GET /health until it answers 200; fail with the output if the child exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited with {self.process.returncode}:\n{self.stderr}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"/health did not answer within {timeout}s:\n{self.stderr}")
                time.sleep(0.05)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll GET /ready until it answers 200 (database connected and migrated)."""
        self.wait_healthy(timeout)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while not self._answers_200(client, "/ready"):
                if time.monotonic() > deadline:
                    raise AssertionError(f"/ready did not answer 200 within {timeout}s:\n{self.stderr}")
                time.sleep(0.05)

    def _answers_200(self, client: httpx.Client, path: str) -> bool:
        # With WORKERS>1 a connection can wait in the backlog while the workers
        # start and take over from the parent: slow, not lost; and the parent closes
        # the idle keep-alive connection it answered on, as any server may. The deadline decides.
        try:
            return client.get(f"{self.url}{path}").status_code == 200
        except (httpx.TimeoutException, httpx.RemoteProtocolError):
            return False

    def wait_for_output(self, text: str, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Return once `text` appears `count` times in stderr; fail if the child exits first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.stderr.count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the server's stderr:\n{self.stderr}")
            time.sleep(0.05)

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """The exit status; fail (and kill the child) if it has not exited within `timeout`."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server still running after {timeout}s:\n{self.stderr}") from None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        self.send_signal(signum)
        return self.wait(timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr so far (its log and its error lines)."""
        return _read(self._stderr)

    @property
    def stdout(self) -> str:
        return _read(self._stdout)

    def close(self) -> None:
        self.kill()
        self._stdout.close()
        self._stderr.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def run_to_exit(settings: Mapping[str, str], timeout: float = EXIT_TIMEOUT) -> tuple[int, str]:
    """Start a server expected to stop on its own; its exit status and stderr."""
    with LiveServer(**settings) as server:
        server.start()
        return server.wait(timeout), server.stderr


def hold_port(port: int, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """A child process (`python -m http.server`) listening on host:port; the caller stops it."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", host],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(host, port)
    except BaseException:
        stop_process(holder)
        raise
    return holder


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
