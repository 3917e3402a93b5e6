"""Running the invoke tasks for real, and processes that hold ports for them to find.

`inv` runs as `python -m invoke` in a subprocess with a controlled environment:
every setting the backend reads is removed from it (`.env` decides) or set
explicitly, so a developer's exported variables never leak into a test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import psutil

from backend.settings import SETTING_NAMES
from tests.support.live import LiveServer
from tests.support.suite import ROOT

INV_TIMEOUT = 60.0

# A process that listens on argv[1]:argv[2] and never accepts; "ignore-term" makes it shrug off SIGTERM.
_LISTENER = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    if sys.argv[3] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
    sock.bind((sys.argv[1], int(sys.argv[2])))
    sock.listen()
    print("listening", os.getpid(), flush=True)
    time.sleep(3600)
    """
)


_UNSET: Final = {*SETTING_NAMES, "TODO_ENV_FILE", "PYTHONPATH"}


def inv_env(**settings: str) -> dict[str, str]:
    """The environment without any backend setting (nor TODO_ENV_FILE, PYTHONPATH), plus `settings`."""
    env = {name: value for name, value in os.environ.items() if name not in _UNSET}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def no_env_file() -> str:
    """A TODO_ENV_FILE value naming a file that does not exist: no `.env` is read, every setting has its default."""
    return str(Path(tempfile.gettempdir()) / f"no-such-{uuid.uuid4().hex}.env")


def inv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", *args]


def inv(*args: str, env: Mapping[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run `inv ARGS` to completion, without a terminal on stdin."""
    return subprocess.run(
        inv_command(*args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INV_TIMEOUT,
        check=False,
    )


class Listener:
    """A child process (`python -c ...`) listening on host:port; killed on exit whatever happened.

    `tag` is on its command line, so a test can find it in `inv free-port`'s output.
    """

    def __init__(self, host: str, port: int, *, ignore_term: bool = False, user: str | None = None) -> None:
        self.tag = f"holder-{uuid.uuid4().hex[:8]}"
        mode = "ignore-term" if ignore_term else "default"
        python = sys.executable if user is None else "/usr/bin/python3"
        command = [python, "-c", _LISTENER, host, str(port), mode, self.tag]
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.process.stdout is not None
        self.pid = self.process.pid  # runuser's child, once it says so
        words = self.process.stdout.readline().split()
        if len(words) != 2 or words[0] != b"listening":
            self.close()
            raise AssertionError(f"listener on {host}:{port} did not start: {self.stderr}")
        self.pid = int(words[1])

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def wait(self, timeout: float = 10.0) -> int:
        """The exit status of the listener (our own child: a runuser listener is not waited on)."""
        return self.process.wait(timeout)

    def running(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.pid != self.process.pid and psutil.pid_exists(self.pid):  # runuser does not pass SIGKILL on
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class InvRun(LiveServer):
    """`inv ARGS` (a serving task) started in `cwd` with exactly `env`; stopped like a `LiveServer`."""

    def __init__(self, *args: str, port: int, env: Mapping[str, str], cwd: Path = ROOT) -> None:
        super().__init__()
        self.args = args
        self.port = port
        self.env = dict(env)
        self.cwd = cwd

    def start(self) -> InvRun:
        self.process = subprocess.Popen(
            inv_command(*self.args),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
        )
        return self


def copy_project(target: Path) -> Path:
    """backend/, tasks.py and .env.example copied to `target`: a project of the test's own, with its own `.env`."""
    shutil.copytree(ROOT / "backend", target / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "tasks.py", target / "tasks.py")
    shutil.copy2(ROOT / ".env.example", target / ".env.example")
    (target / "docs").mkdir()
    return target
