"""How long `inv run` takes to answer /health (a benchmark, not a test).

Each run writes a temporary `.env` (TODO_ENV_FILE points at it, so your own
`.env` and `var/` are not touched) naming a fresh SQLite file and a free port,
starts `inv run` from docs/, and times the command's start to the first
`/health` 200 and to the first `/ready` 200 (connected and migrated), then
stops it with SIGTERM and checks it exits 0. The target (issue 3) is /health
within 1.5 s on the 2-core development machine.

    python scripts/measure_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.settings import SETTING_NAMES  # noqa: E402
from tests.support.live import free_port  # noqa: E402

TIMEOUT = 30.0


def _wait_for(client: httpx.Client, url: str, process: subprocess.Popen[bytes], started: float) -> float:
    while True:
        try:
            if client.get(url).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.perf_counter() - started > TIMEOUT:
            raise SystemExit(f"`inv run` did not answer {url} (exit status {process.poll()})")
        time.sleep(0.005)


def _run_once(folder: Path) -> tuple[float, float, float]:
    port = free_port()
    env_file = folder / f"{port}.env"
    database = folder / f"{port}.sqlite3"
    env_file.write_text(f"PORT={port}\nDATABASE_URL=sqlite:///{database}\nBETTER_AUTH_SECRET={'x' * 40}\n")
    environment = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES}
    environment["TODO_ENV_FILE"] = str(env_file)
    inv = Path(sys.executable).parent / "inv"
    command = [str(inv)] if inv.exists() else [sys.executable, "-m", "invoke"]
    with httpx.Client(timeout=1.0) as client:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and task
            [*command, "run"], cwd=ROOT / "docs", env=environment, stderr=subprocess.DEVNULL
        )
        try:
            health = _wait_for(client, f"http://127.0.0.1:{port}/health", process, started)
            ready = _wait_for(client, f"http://127.0.0.1:{port}/ready", process, started)
        finally:
            process.send_signal(signal.SIGTERM)
            status = process.wait(TIMEOUT)
    if status != 0:
        raise SystemExit(f"`inv run` exited {status} on SIGTERM")
    return health, ready, _children_cpu_seconds()


def _children_cpu_seconds() -> float:
    """CPU seconds (user + system) of all waited-for children so far: a load-independent yardstick."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        before = _children_cpu_seconds()
        times = [_run_once(Path(folder)) for _ in range(args.runs)]
    totals = [before, *(t[2] for t in times)]
    cpu = [later - earlier for earlier, later in itertools.pairwise(totals)]
    for label, values in (("/health 200", [t[0] for t in times]), ("/ready 200", [t[1] for t in times])):
        print(
            f"inv run -> {label}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s ({args.runs} runs, SQLite, fresh file)"
        )
    print(f"CPU time of one `inv run` (start to SIGTERM exit): median {statistics.median(cpu):.2f} s")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
