"""Is what holds a port this backend, already running? Then the port is not a problem.

`inv env-check` is meant to be run while the server is up, and `inv run` a
second time should say "it is already running", not "kill it". The holder is
recognised by its process: one of this project's entry points (`inv run`,
`python -m backend`, a `--reload` child, a worker spawned by one of them)
whose working directory is inside this checkout (`inv run` of another
project's tasks.py is someone else's server). When the OS does not name the
holder (macOS without root, another user, a container), the port is asked
instead: this backend answers an unknown path with its own problem+json type.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from backend.diagnostics.ports import PortHolder
from backend.errors import is_own_problem
from backend.settings import ROOT

PROBE_SECONDS: Final = 0.5
_PROBE_PATH: Final = "/.well-known/todo-backend"  # unrouted: answered with our 404 problem, logged by no one


def running_backend(port: int, holders: Sequence[PortHolder] | None) -> str | None:
    """How to name this backend when it is what holds `port` (e.g. "pid 4242: inv run"), else None."""
    named = [holder for holder in holders or () if holder.pid is not None]
    if named:
        verdicts = [_is_ours(holder) for holder in named]
        if all(verdicts):
            return ", ".join(f"pid {holder.pid}: {holder.cmdline[:80] or holder.name}" for holder in named)
        if False in verdicts:
            return None
    return "it answers like this backend" if _answers_like_us(port) else None


def _is_ours(holder: PortHolder) -> bool | None:
    """Whether the holder runs this checkout's server; None when the OS will not say."""
    import psutil

    assert holder.pid is not None
    try:
        process = psutil.Process(holder.pid)
        chain = [process, *process.parents()[:2]]  # a worker's or reload child's parent is `inv run`
        for candidate in chain:
            if _is_entry_point(candidate.cmdline()) and _inside_checkout(candidate.cwd()):
                return True
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None
    except psutil.NoSuchProcess:
        return False
    return False


def _is_entry_point(argv: Sequence[str]) -> bool:
    names = [os.path.basename(arg) for arg in argv]
    module = names.index("-m") + 1 if "-m" in names else -1
    if 0 < module < len(names) and names[module] == "backend":
        return True
    runner = next((i for i, name in enumerate(names) if name in ("inv", "invoke", "inv.exe", "invoke.exe")), -1)
    return runner >= 0 and "run" in names[runner + 1 :]


def _inside_checkout(cwd: str) -> bool:
    return Path(cwd).resolve().is_relative_to(ROOT)


def _answers_like_us(port: int) -> bool:
    import httpx

    try:
        # trust_env off: a developer's HTTP_PROXY must not carry a loopback probe elsewhere.
        response = httpx.get(f"http://127.0.0.1:{port}{_PROBE_PATH}", timeout=PROBE_SECONDS, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 404 and is_own_problem(response.content)
