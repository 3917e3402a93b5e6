"""Headless Chromium from the OS package (Debian's `chromium`), run once per page.

`open_page` has no driver: the page under test POSTs its findings back to the
server that served it (`PageServer`), and the test waits for that POST.
`open_driven` is for a page a user clicks through (the demo page): the test
drives it over the DevTools protocol on a pipe (tests/browser/devtools.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.browser.devtools import DevTools
from tests.support.suite import unavailable

CANDIDATES = ("chromium", "chromium-browser")
# Every *.example.test name resolves to loopback inside Chromium only, so a page
# can come from an origin that is not loopback (the backend allows any loopback
# origin in development) without touching /etc/hosts.
RESOLVER_RULES = "MAP *.example.test 127.0.0.1"


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_chromium() -> str:
    """The Chromium executable; skips the test when there is none (fails it in CI)."""
    executable = find_chromium()
    if executable is not None:
        return executable
    message = "chromium is not installed: `sudo apt-get install chromium` (Debian), or `nox -s browser` as root"
    unavailable(message)


@contextlib.contextmanager
def open_page(executable: str, url: str) -> Iterator[Path]:
    """Chromium showing `url` with a fresh profile; yields the file its output goes to."""
    with _launched(lambda profile: [executable, *_flags(profile), url]) as log:
        yield log


@contextlib.contextmanager
def open_driven(executable: str) -> Iterator[DevTools]:
    """Chromium driven over `--remote-debugging-pipe`; yields DevTools attached to a blank tab."""
    commands_read, commands_write = os.pipe()
    replies_read, replies_write = os.pipe()
    child_ends = (commands_read, replies_write)

    def command(profile: Path) -> list[str]:
        chromium = [executable, *_flags(profile), "--remote-debugging-pipe", "about:blank"]
        return [sys.executable, "-c", _ON_FDS_3_AND_4, *map(str, child_ends), *chromium]

    with (
        contextlib.closing(DevTools(commands_write, replies_read)) as devtools,
        _launched(command, child_ends) as log,
    ):
        devtools.attach(log)
        yield devtools


# Chromium's --remote-debugging-pipe reads commands on fd 3 and writes replies on
# fd 4. This runs in the child first: it moves the pipe ends there (by way of
# fds above 4, so neither end can overwrite the other), then becomes Chromium.
_ON_FDS_3_AND_4 = """
import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD_CLOEXEC, 5) for fd in sys.argv[1:3]]
os.dup2(ends[0], 3)
os.dup2(ends[1], 4)
os.execv(sys.argv[3], sys.argv[3:])
"""


@contextlib.contextmanager
def _launched(command: Callable[[Path], list[str]], pass_fds: tuple[int, ...] = ()) -> Iterator[Path]:
    """Runs `command(profile)` with a fresh profile folder; always stopped and removed afterwards.

    `pass_fds` are the child's: closed here once it has them, so that the
    parent's ends of those pipes see EOF when Chromium exits.
    """
    profile = Path(tempfile.mkdtemp(prefix="todo-chromium-"))
    log = profile / "chromium.log"
    try:
        with log.open("wb") as output:
            try:
                # Its own session: the renderer and zygote processes are stopped with it.
                process = subprocess.Popen(
                    command(profile),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=pass_fds,
                )
            finally:
                for fd in pass_fds:
                    os.close(fd)
            try:
                yield log
            finally:
                stop_group(process)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # root in CI, and containers lack the namespaces the sandbox needs
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-quic",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        f"--host-resolver-rules={RESOLVER_RULES}",
        f"--user-data-dir={profile / 'profile'}",
    ]


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a child started with `start_new_session=True` and all its descendants: SIGTERM, then SIGKILL."""
    for signum, timeout in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue
