"""`inv run` to the first `/health` 200, and the imports that time goes to.

    nox -s bench -- startup [--starts 3] [--compile]

Starts `inv run` (in JWKS mode at the bench's endpoint, on the bench's
PostgreSQL) once to fill the file cache, then `--starts` times as the bench
does, and reports the median; then once more under `python -X importtime`
(PYTHONPROFILEIMPORTTIME, which slows imports a little) and sums the import
time by top-level package: each package's own modules, and what importing
it first pulled in with it. Imports still running after the first 200 are
counted too; the server is stopped right after it.

`inv run` is started with the environment a user's shell has (without
PYTHONDONTWRITEBYTECODE, which this machine sets), so the first start
writes backend/'s bytecode and the counted ones use it; the report says
whether there was bytecode. `--compile` writes it first (`compileall`).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import postgres, servers
from benchmarks.tokens import Provider
from tests.support.live import free_port

TOP = 15


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- startup", description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="write backend/'s bytecode first")
    opts = parser.parse_args(argv)
    if opts.compile:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "backend", "tasks.py"], cwd=servers.ROOT, check=True)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        url = pg.create("startup")
        env = servers.our_env(url, provider)
        _start(env)  # not counted: fills the file cache (and writes backend/'s bytecode, as a user's first start)
        bytecode = "with" if servers.has_bytecode() else "without"
        plain = [_start(env)[0] for _ in range(opts.starts)]
        traced, log = _start({**env, "PYTHONPROFILEIMPORTTIME": "1"})
    shown = ", ".join(f"{took:.2f}" for took in plain)
    print(f"`inv run` to the first /health 200, {bytecode} backend/'s bytecode:", end=" ")
    print(f"median {statistics.median(plain):.2f} s of {len(plain)} ({shown}); load average {os.getloadavg()[0]:.1f}")
    print(f"under -X importtime: {traced:.2f} s\n")
    print(summarize(log))
    return 0


def _start(env: dict[str, str]) -> tuple[float, str]:
    """Seconds from spawning `inv run` to its first /health 200, and what it wrote to stderr."""
    port = free_port()
    inv = str(Path(sys.executable).parent / "inv")
    with tempfile.TemporaryFile() as log:
        began = time.perf_counter()
        process = subprocess.Popen(
            [inv, "run"],
            cwd=servers.ROOT,
            env={**servers.users_environ(), "PYTHONUNBUFFERED": "1", **env, "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            servers.wait_for_200(f"http://127.0.0.1:{port}/health", process, 30.0)
            took = time.perf_counter() - began
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        log.seek(0)
        return took, log.read().decode("utf-8", errors="replace")


def summarize(log: str) -> str:
    """Import time by top-level package, from `-X importtime` lines."""
    own: collections.Counter[str] = collections.Counter()
    first: dict[str, int] = {}
    for line in log.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, module = (part.strip() for part in line.removeprefix("import time:").split("|"))
        package = module.split(".")[0]
        own[package] += int(self_us)
        if module == package:
            first.setdefault(package, int(cumulative_us))
    total = sum(own.values())
    lines = [f"imports: {total / 1000:.0f} ms in all (the sum of every module's own time)", ""]
    lines += ["  own ms  package (its own modules)"]
    lines += [f"  {us / 1000:6.0f}  {package}" for package, us in own.most_common(TOP)]
    lines += ["", "  cum ms  package (with what it imported first)"]
    ranked = sorted(first.items(), key=lambda item: -item[1])[:TOP]
    lines += [f"  {us / 1000:6.0f}  {package}" for package, us in ranked]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
