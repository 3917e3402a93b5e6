"""Running wrk with a scenario's Lua script and reading its `done` line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
THREADS = 2


@dataclasses.dataclass(frozen=True)
class Result:
    requests: int
    duration_us: int
    non_2xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).splitlines()[0].strip()


def run(url: str, scenario: str, seconds: int, connections: int, args: list[str]) -> Result:
    """Load `url` with scenarios/<scenario>.lua for `seconds`; the numbers wrk reports."""
    command = [
        "wrk",
        f"-t{min(THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "-s",
        str(SCRIPTS / f"{scenario}.lua"),
        url,
        "--",
        *args,
    ]
    env = {**os.environ, "BENCH_SCRIPTS": str(SCRIPTS)}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=seconds + 60)
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return Result(**json.loads(line.removeprefix("BENCH_RESULT ")))
    raise RuntimeError(f"wrk gave no result ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
