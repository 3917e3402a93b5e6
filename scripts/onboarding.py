"""The README's quick start on a fresh clone, timed (`nox -s onboarding`).

Clones the committed HEAD into a temporary folder (uncommitted changes are
not in the clone: commit them first to check them), creates a new
virtualenv there with `python -m venv`, and runs the first line of the
README's quick-start block (`pip install -r requirements.txt && inv run`) in
`sh` with that virtualenv active and a free PORT. Once /health answers, it
mints a token with `inv token --sub alice`, creates a task and lists it,
calls /api/me, then stops the server with SIGTERM to its process group and
checks it exits 0. The second line (`nox`) is not run, which would recurse:
`nox --list --json` must select at least one session instead. The temporary
folder is removed whatever happens. POSIX only (process groups, `sh`).

    python -m scripts.onboarding [--timeout 300]

Exit status 0 when every step holds; otherwise 1 with the failed step and
the tail of the command's output.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
EXIT_TIMEOUT = 15.0  # GRACEFUL_TIMEOUT (10 s by default) and a margin
USER = "alice"
TITLE = "Buy milk"


class StepError(Exception):
    def __init__(self, step: str, problem: str, output: str = "") -> None:
        self.step, self.problem, self.output = step, problem, output
        tail = "\n".join(output.splitlines()[-40:])
        shown = f"\n--- last lines of the output ---\n{tail}" if tail else ""
        super().__init__(f"onboarding: step {step!r} failed: {problem}{shown}")


def _log(message: str) -> None:
    print(f"onboarding: {message}", flush=True)


def _run(step: str, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; its stdout, or a StepError with its output."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    if result.returncode != 0:
        raise StepError(step, f"`{shlex.join(argv)}` exited {result.returncode}", result.stdout + result.stderr)
    return result.stdout


def quick_start(readme: str) -> tuple[str, str]:
    """The two lines of the first ```sh block under `## Quick start`."""
    section = readme.partition("\n## Quick start\n")[2].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    lines = [line for line in block[1].splitlines() if line.strip()] if block else []
    if len(lines) != 2:
        raise StepError("README", f"the first ```sh block under `## Quick start` must hold two commands, not {lines}")
    return lines[0], lines[1]


def _clone(folder: Path) -> Path:
    head = _run("clone", ["git", "rev-parse", "HEAD"], ROOT).strip()
    if changed := _run("clone", ["git", "status", "--porcelain"], ROOT).splitlines():
        _log(f"{len(changed)} uncommitted change(s) are not in the clone: it checks HEAD {head[:12]} only")
    clone = folder / "todo-backend"
    _run("clone", ["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], folder)
    _run("clone", ["git", "checkout", "--quiet", "--detach", head], clone)
    return clone


def _venv(clone: Path, port: int) -> dict[str, str]:
    """`python -m venv .venv` in the clone; a newcomer's environment with it activated."""
    venv = clone / ".venv"
    _run("venv", [sys.executable, "-m", "venv", str(venv)], clone)
    # No backend setting, nor this nox session's own virtualenv, leaks into the newcomer's shell.
    settings = re.findall(r"^([A-Z_]+)=", (clone / ".env.example").read_text(), re.MULTILINE)
    unset = {*settings, "TODO_ENV_FILE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    outer = os.environ.get("VIRTUAL_ENV")
    path = [d for d in env.get("PATH", "").split(os.pathsep) if not outer or Path(d) != Path(outer) / "bin"]
    env.update(VIRTUAL_ENV=str(venv), PATH=os.pathsep.join([str(venv / "bin"), *path]), PORT=str(port))
    return env


def _free_port() -> int:
    """A port free on 127.0.0.1 and on ::1 (where IPv6 exists): the server binds both."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET6) as sock:
                sock.bind(("::1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                continue
        return port
    raise StepError("port", "no port is free on both 127.0.0.1 and ::1")


def _serve(line: str, clone: Path, env: dict[str, str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    # An interactive shell outlives the signal it passes to its foreground job;
    # `sh -c` would die of it. With a trap it waits and exits with the server's status.
    return subprocess.Popen(  # noqa: S603
        ["sh", "-c", f"trap : TERM\n{line}"],  # noqa: S607
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(server: subprocess.Popen[bytes], base: str, log: Path, timeout: float) -> tuple[float, float]:
    """Seconds from the command's start to pip's last line, and to the first /health 200."""
    started, installed = time.monotonic(), 0.0
    while True:
        elapsed = time.monotonic() - started
        text = log.read_text(errors="replace")
        if not installed and "Successfully installed" in text:
            installed = elapsed
        step = "quick start: serve" if installed else "quick start: pip install"
        if server.poll() is not None:
            raise StepError(step, f"the command exited {server.returncode} before /health answered", text)
        if elapsed > timeout:
            raise StepError(step, f"/health did not answer 200 within {timeout:g} s", text)
        if _get_status(f"{base}/health") == 200:
            return installed or elapsed, elapsed
        time.sleep(0.2)


def _get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http://127.0.0.1 only
            return int(response.status)
    except (OSError, urllib.error.URLError):
        return None


def _call(method: str, url: str, token: str, body: object = None) -> tuple[int, Any, Any]:
    """Status, headers and decoded JSON body of one authenticated request."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")


def _authenticated_calls(clone: Path, env: dict[str, str], base: str) -> None:
    token = _run("inv token", ["inv", "token", "--sub", USER], clone, env).strip()
    step, tasks = "authenticated request", f"{base}/api/{USER}/tasks"
    status, _, task = _call("POST", tasks, token, {"title": TITLE})
    if status != 201 or not isinstance(task, dict) or task.get("title") != TITLE:
        raise StepError(step, f"POST {tasks} answered {status} {task!r}, expected 201 with title {TITLE!r}")
    status, headers, listed = _call("GET", tasks, token)
    if status != 200 or listed != [task] or headers.get("X-Total-Count") != "1":
        count = headers.get("X-Total-Count")
        raise StepError(step, f"GET {tasks} answered {status} X-Total-Count={count} {listed!r}, expected [{task!r}]")
    status, _, me = _call("GET", f"{base}/api/me", token)
    if status != 200 or not isinstance(me, dict) or me.get("user_id") != USER:
        raise StepError(step, f"GET {base}/api/me answered {status} {me!r}, expected user_id {USER!r}")


def _check_test_command(line: str, clone: Path, env: dict[str, str]) -> None:
    """The second line must be nox selecting existing sessions; listed, not run (that would recurse)."""
    argv = shlex.split(line)
    if argv[:1] != ["nox"]:
        raise StepError("test command", f"the quick start's second line is {line!r}, expected `nox [options]`")
    listed = json.loads(_run("test command", ["nox", "--list", "--json", *argv[1:]], clone, env))
    if not listed:
        raise StepError("test command", f"`{line}` selects no session")
    _log(f"`{line}` selects {len(listed)} sessions: {', '.join(s['session'] for s in listed)}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        status = server.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise StepError("shutdown", f"still running {EXIT_TIMEOUT:g} s after SIGTERM") from None
    if status != 0:
        raise StepError("shutdown", f"exited {status} on SIGTERM, expected 0")
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return
    raise StepError("shutdown", "a process of the server's group outlived it")


def onboard(folder: Path, timeout: float) -> None:
    started = time.monotonic()
    clone, mark = _clone(folder), time.monotonic()
    install, test = quick_start((clone / "README.md").read_text())
    port = _free_port()
    env = _venv(clone, port)
    _log(f"git clone {mark - started:.2f} s, python -m venv {time.monotonic() - mark:.1f} s")
    log, base = folder / "quick-start.log", f"http://127.0.0.1:{port}"
    _log(f"running `{install}` with PORT={port} in {clone}")
    with log.open("wb") as output:
        server = _serve(install, clone, env, output)
        try:
            installed, healthy = _wait_healthy(server, base, log, timeout)
            _log(f"pip install {installed:.1f} s, then the first /health 200 {healthy - installed:.1f} s later")
            mark = time.monotonic()
            _authenticated_calls(clone, env, base)
            _log(f"inv token and the first authenticated calls {time.monotonic() - mark:.1f} s")
            _log(f"from `git clone` to an authenticated answer: {time.monotonic() - started:.1f} s")
            _check_test_command(test, clone, env)
            _stop(server)
        except StepError as error:
            if error.output:
                raise
            raise StepError(error.step, error.problem, log.read_text(errors="replace")) from None
        finally:
            with contextlib.suppress(ProcessLookupError):  # a failed step: nothing of the server survives it
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    _log(f"server stopped with status 0; all steps passed in {time.monotonic() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for pip install and the first /health")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onboarding-", ignore_cleanup_errors=True) as folder:
        try:
            onboard(Path(folder), args.timeout)
        except StepError as error:
            print(error, file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
