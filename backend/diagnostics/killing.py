"""Ending the processes that hold a port: SIGTERM, a grace period, then SIGKILL (psutil).

Refused unless forced: a process of another user, PID 1 (init, or a
container's main process), and this process or one of its parents (the shell
that runs `inv`). A pid is ended only if it still belongs to the process that
was shown (same start time), so a pid reused in between is never hit.

On Windows there is no SIGTERM: psutil's `terminate()` is TerminateProcess,
and the holder's child processes are ended with it (the process tree), since
nothing else would stop them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final

import psutil

from backend.diagnostics.ports import PortHolder
from backend.errors import AppError

GRACE_SECONDS: Final = 5.0
KILL_WAIT_SECONDS: Final = 3.0
_POLL_SECONDS: Final = 0.05


class KillRefusedError(AppError):
    code = "PORT_KILL_REFUSED"


class KillFailedError(AppError):
    code = "PORT_KILL_FAILED"


@dataclasses.dataclass(frozen=True)
class Ended:
    """A process that is gone, and the last signal it was sent: SIGTERM, or SIGKILL after the grace period."""

    pid: int
    signal: str


def processes_to_end(holders: Sequence[PortHolder], *, force: bool = False) -> list[psutil.Process]:
    """The holders' processes that are still running; raise `KillRefusedError` for one that may not be ended."""
    processes: list[psutil.Process] = []
    for holder in holders:
        process = _still_the_holder(holder)
        if process is not None:
            if not force:
                _refuse_if_protected(process, holder)
            processes.append(process)
    return processes


def _still_the_holder(holder: PortHolder) -> psutil.Process | None:
    if holder.pid is None:
        raise KillRefusedError(
            "The OS does not say which process holds the port (it belongs to another user)",
            "run the command with sudo to see and end it",
        )
    try:
        process = psutil.Process(holder.pid)
        if holder.created is not None and process.create_time() != holder.created:
            return None  # the holder exited and its pid was reused
    except psutil.NoSuchProcess:
        return None
    return process


def _refuse_if_protected(process: psutil.Process, holder: PortHolder) -> None:
    shown = holder.describe()
    if process.pid == 1:
        raise KillRefusedError(
            f"Refusing to end {shown}: it is PID 1, the system's init (or the container's main process)",
            "stop it through its service manager, or pass --force if you are sure",
        )
    own = psutil.Process()
    if process.pid == own.pid or process.pid in {parent.pid for parent in own.parents()}:
        raise KillRefusedError(
            f"Refusing to end {shown}: it is this command or one of its parents",
            "stop it from its own terminal, or pass --force if you are sure",
        )
    owner = _owner(process)
    if owner is not None and owner != _current_user():
        raise KillRefusedError(
            f"Refusing to end {shown}: it belongs to another user ({holder.user or owner})",
            "ask its owner, or pass --force to end it anyway (as root or with sudo)",
        )


def _owner(process: psutil.Process) -> str | int | None:
    try:
        if sys.platform == "win32":
            return process.username()
        return process.uids().real
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return None


def _current_user() -> str | int:
    if sys.platform == "win32":
        return psutil.Process().username()
    return os.getuid()


def end_processes(processes: Sequence[psutil.Process], grace: float = GRACE_SECONDS) -> list[Ended]:
    """SIGTERM each process, SIGKILL those left after `grace` seconds; `KillFailedError` if one survives that."""
    targets = _with_trees(processes) if sys.platform == "win32" else list(processes)
    for process in targets:
        _signal(process, psutil.Process.terminate)
    survivors = _wait_gone(targets, grace)
    for process in survivors:
        _signal(process, psutil.Process.kill)
    stubborn = _wait_gone(survivors, KILL_WAIT_SECONDS)
    if stubborn:
        pids = ", ".join(str(process.pid) for process in stubborn)
        raise KillFailedError(
            f"pid {pids} is still running {KILL_WAIT_SECONDS:g} s after SIGKILL (stuck in the kernel?)",
            "check it with `ps -o pid,stat,cmd -p PID`; a process stuck on a disk or network mount may need a reboot",
        )
    killed = {process.pid for process in survivors}
    return [Ended(process.pid, "SIGKILL" if process.pid in killed else "SIGTERM") for process in targets]


def _with_trees(processes: Sequence[psutil.Process]) -> list[psutil.Process]:
    tree: dict[int, psutil.Process] = {}
    for process in processes:
        tree[process.pid] = process
        try:
            tree.update((child.pid, child) for child in process.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return list(tree.values())


def _signal(process: psutil.Process, send: Callable[[psutil.Process], None]) -> None:
    try:
        send(process)
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied:
        raise KillFailedError(
            f"Not allowed to signal pid {process.pid}",
            "run the command as the process's owner, or with sudo",
        ) from None


def _wait_gone(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of `processes` still running after up to `timeout` seconds.

    Polled rather than `psutil.wait_procs`: a zombie (exited, its parent has
    not reaped it yet) holds no socket any more but still "exists" for
    wait_procs, which would then wait out the whole timeout.
    """
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while True:
        alive = [process for process in alive if _running(process)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(_POLL_SECONDS)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
