"""How long `inv env-check` takes with every service up (a benchmark, not a test).

Starts a JWKS server (tests/support/jwks_server.py), uses a migrated SQLite
file or the PostgreSQL at --database-url (a database is created there and
dropped), writes a temporary `.env` naming them and a free port, then runs
`inv env-check` as a subprocess --runs times (TODO_ENV_FILE points at the
temporary file, so your own `.env` is not read) and prints the wall times.
The target (issue 3) is under 1 s on the 2-core development machine.

    python scripts/measure_env_check.py
    python scripts/measure_env_check.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.diagnostics.report import ReportOptions, run_checks  # noqa: E402
from backend.migrations import migrate  # noqa: E402
from backend.settings import SETTING_NAMES, Settings  # noqa: E402
from tests.support.databases import fresh_postgres_database  # noqa: E402
from tests.support.jwks_server import JWKSServer  # noqa: E402
from tests.support.live import free_port  # noqa: E402


def _run_once(env_file: Path) -> tuple[float, int, str]:
    environment = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES}
    environment["TODO_ENV_FILE"] = str(env_file)
    inv = Path(sys.executable).parent / "inv"
    command = [str(inv)] if inv.exists() else [sys.executable, "-m", "invoke"]
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter and task
        [*command, "env-check"], cwd=ROOT / "docs", env=environment, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, result.returncode, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database-url", help="an admin URL of a PostgreSQL server (default: SQLite)")
    args = parser.parse_args()
    jwks = JWKSServer()
    jwks.add_key("EdDSA", "ed-1")
    try:
        asyncio.run(_measure(args.database_url, jwks, args.runs))
    finally:
        jwks.close()


async def _measure(admin_url: str | None, jwks: JWKSServer, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with contextlib.AsyncExitStack() as stack:
            if admin_url:
                url = await stack.enter_async_context(fresh_postgres_database(admin_url))
            else:
                url = f"sqlite:///{Path(folder) / 'todo.sqlite3'}"
            await migrate(Settings(database_url=url))
            env_file = Path(folder) / ".env"
            env_file.write_text(f"DATABASE_URL={url}\nBETTER_AUTH_JWKS_URL={jwks.url}\nPORT={free_port()}\n")
            await _report(env_file, runs)


async def _report(env_file: Path, runs: int) -> None:
    _, status, output = _run_once(env_file)  # warm the file cache
    if status != 0:
        sys.exit(f"env-check failed with every service up:\n{output}")
    times = [_run_once(env_file)[0] for _ in range(runs)]
    started = time.perf_counter()
    await run_checks(ReportOptions(env_file=env_file))
    in_process = time.perf_counter() - started
    print(output.splitlines()[-1])
    print(
        f"inv env-check, {runs} runs: median {statistics.median(times):.3f}s, "
        f"min {min(times):.3f}s, max {max(times):.3f}s (the checks alone, in-process: {in_process:.3f}s)"
    )


if __name__ == "__main__":
    main()
