"""Headless Chromium from the OS package (Debian's `chromium`), run once per page.

No driver: the page under test POSTs its findings back to the server that
served it (`PageServer`), and the test waits for that POST.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def open_page(executable: str, url: str) -> Iterator[Path]:
    """Chromium showing `url` with a fresh profile; yields the file its output goes to."""
    profile = Path(tempfile.mkdtemp(prefix="todo-chromium-"))
    log = profile / "chromium.log"
    command = [
        executable,
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
        url,
    ]
    with log.open("wb") as output:
        # Its own session: the renderer and zygote processes are stopped with it.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield log
        finally:
            _stop_group(process)
            shutil.rmtree(profile, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for signum, timeout in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue
