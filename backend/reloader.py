"""`inv run --reload`: serve from a child process, restarted when the code or `.env` changes.

This process keeps the listening sockets (bound and checked by
backend/server.py) for its whole life and hands them to each child, so the
port is never released and never taken by someone else in between. The child
is `python -m backend` with what it needs as arguments: the descriptors of
those sockets and the command line's setting overrides (backend/launch.py);
it serves like any other server, on sockets it does not bind. It polls
the modification times of backend/**/*.py and the `.env` file; on a change it
stops the child with SIGTERM (a graceful stop) and starts a fresh one, which
imports the code anew. A child that cannot start (a syntax error, a database
that does not exist) is not the end: its error is shown, and the next change
starts it again. Ctrl+C or SIGTERM stops the child and then this process.

Hypercorn's own `use_reloader` is not used: it stops the whole server, with
exit status 0, when the changed code does not import. The child runs in its
own session so that Ctrl+C reaches it once, from here, not twice (a second
signal means "exit now" to the server). POSIX only: on Windows the sockets
cannot be passed this way, and `--reload` uses Hypercorn's reloader.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Final

from backend.settings import ENV_FILE, ROOT

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.5
STOP_MARGIN_SECONDS: Final = 5.0


def serve_reloading(sockets: list[socket.socket], arguments: list[str], grace: float) -> int:
    """Serve until SIGINT/SIGTERM, restarting the server on every change; the last child's exit status.

    `arguments`: the child's, after `python -m backend`; `grace`: its GRACEFUL_TIMEOUT.
    """
    stop = threading.Event()
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), lambda *_: stop.set())
    for sock in sockets:
        sock.set_inheritable(True)
    status = 0
    try:
        while not stop.is_set():
            status = _serve_until_change(sockets, arguments, grace + STOP_MARGIN_SECONDS, stop)
    finally:
        for sock in sockets:
            sock.close()
    logger.info("Stopped reloading")
    return status


def _serve_until_change(
    sockets: list[socket.socket], arguments: list[str], stop_timeout: float, stop: threading.Event
) -> int:
    seen = _modification_times()
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "backend", *arguments],
        cwd=ROOT,
        pass_fds=[sock.fileno() for sock in sockets],
        start_new_session=True,
    )
    changed = _wait_for_change(seen, stop, child)
    status = _stop(child, stop_timeout)
    if changed is None and not stop.is_set():  # the child exited by itself
        logger.error("The server exited with status %d; it restarts when backend/ or .env changes", status)
        changed = _wait_for_change(seen, stop, None)
    if changed is not None:
        shown = changed.relative_to(ROOT) if changed.is_relative_to(ROOT) else changed
        logger.info("%s changed: restarting the server", shown)
    return status


def _wait_for_change(
    seen: dict[Path, float], stop: threading.Event, child: subprocess.Popen[bytes] | None
) -> Path | None:
    """The first file that changed; None once `stop` is set or `child` has exited."""
    while not stop.wait(POLL_SECONDS):
        if child is not None and child.poll() is not None:
            return None
        now = _modification_times()
        changed = [path for path in now.keys() | seen.keys() if now.get(path) != seen.get(path)]
        if changed:
            return sorted(changed)[0]
    return None


def _stop(child: subprocess.Popen[bytes], timeout: float) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("The server did not stop within %gs of SIGTERM; killing it", timeout)
            child.kill()
    return child.wait()


def stop_when_orphaned() -> None:
    """In a child: SIGTERM itself once its parent is gone (killed with SIGKILL), rather than serve on alone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _modification_times() -> dict[Path, float]:
    times: dict[Path, float] = {}
    for path in [*(ROOT / "backend").rglob("*.py"), ENV_FILE]:
        try:
            times[path] = path.stat().st_mtime
        except OSError:  # deleted meanwhile, or no .env
            continue
    return times
