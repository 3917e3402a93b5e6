"""`inv run`: the port is checked before the database, `--port auto`, any working directory, a clean stop.

`inv` runs for real in a subprocess and serves on real sockets. The tests that
need a `.env` run in a copy of the project (backend/ and tasks.py) in a
temporary folder: the developer's own `.env` and `var/` are never touched.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from backend.diagnostics.ports import ipv6_available
from backend.settings import SETTING_NAMES
from tests.support.live import free_port
from tests.support.tokens import SECRET
from tests.support.toolbelt import InvRun, Listener, copy_project, inv, inv_env, no_env_file

pytestmark = pytest.mark.live


def port_in_use_fix(port: int) -> str:
    return (
        f"`inv free-port --port {port} --kill` ends it, `inv run --port auto` takes the next free port, or set PORT\n"
    )


def run_env(database: Path | str, **settings: str) -> dict[str, str]:
    """Every setting explicit (empty: the default), and no `.env` read: a developer's must not decide these tests."""
    return inv_env(
        **{
            **dict.fromkeys(SETTING_NAMES, ""),
            "TODO_ENV_FILE": no_env_file(),
            "DATABASE_URL": database if isinstance(database, str) else f"sqlite:///{database}",
            "BETTER_AUTH_SECRET": SECRET,
            "DB_CONNECT_RETRY_SECONDS": "0",
            **settings,
        }
    )


def test_busy_port_exits_1_naming_the_holder_before_touching_the_database(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "todo.sqlite3"
    with Listener("127.0.0.1", port) as holder:
        result = inv("run", env=run_env(database, PORT=str(port)))

        assert holder.running()
    assert result.returncode == 1
    assert result.stderr.startswith(f"error PORT_IN_USE: port {port} on 127.0.0.1 is in use by pid {holder.pid} (")
    assert result.stderr.endswith(port_in_use_fix(port))
    assert result.stderr.count("\n") == 1  # one line, no traceback, no log before it
    assert not database.exists()  # the database was never opened


def test_port_option_busy_names_the_holder_too(tmp_path: Path) -> None:
    port = free_port()
    with Listener("127.0.0.1", port) as holder:
        result = inv("run", "--port", str(port), env=run_env(tmp_path / "todo.sqlite3", PORT=str(free_port())))

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use by pid {holder.pid} (" in result.stderr


def test_port_auto_serves_on_the_next_free_port_and_says_which(database_url: str) -> None:
    port = free_port()
    with Listener("127.0.0.1", port) as holder:
        server = InvRun("run", "--port", "auto", port=port, env=run_env(database_url, PORT=str(port)))
        with server:
            server.start()
            server.wait_for_output("serving on port")
            said = re.search(
                rf"WARNING backend.server \[-\] Port {port} is in use by pid (\d+) \(.*\); "
                r"serving on port (\d+) instead \(--port auto\)\n",
                server.stderr,
            )
            assert said is not None, server.stderr
            server.port = int(said.group(2))
            server.wait_ready()

            assert int(said.group(1)) == holder.pid
            assert server.port > port
            assert f"paste the token at http://localhost:{server.port}/dev/\n" in server.stderr
            assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
            assert server.stop() == 0, server.stderr
            assert server.stderr.count("serving on port") == 1
        assert holder.running()


def test_run_from_docs_folder_reads_the_root_env_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    port = free_port()
    # DATABSE_URL: a typo `inv run` warns about (the `.env` lint), then serves on the default SQLite.
    env_file = f"PORT={port}\nBETTER_AUTH_SECRET={SECRET}\nDB_CONNECT_RETRY_SECONDS=0\nDATABSE_URL=sqlite:///x\n"
    (project / ".env").write_text(env_file)

    with InvRun("run", port=port, env=inv_env(), cwd=project / "docs") as server:
        server.start()
        server.wait_ready()
        health = httpx.get(f"{server.url}/health")
        status = server.stop(signal.SIGTERM)
        log = server.stderr

    assert health.status_code == 200
    assert status == 0, log
    assert "Stopped cleanly" in log
    assert "Traceback" not in log
    assert log.count(" WARNING tasks [-] ENV_KEY_TYPO: ") == 1, log
    hint = f"Try it: `inv token --sub alice`, then curl, or paste the token at http://localhost:{port}/dev/\n"
    assert log.count(hint) == 1, log
    assert (project / "var" / "todo.sqlite3").is_file()  # the default SQLite path is under the project root


@pytest.mark.skipif(not ipv6_available(), reason="IPv6 is not available on this machine")
def test_host_option_overrides_host_and_serves_only_there(database_url: str) -> None:
    port = free_port()
    env = run_env(database_url, PORT=str(port), HOST="localhost")
    with InvRun("run", "--host", "127.0.0.1", port=port, env=env) as server:
        server.start()
        server.wait_healthy()

        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url6}/health")
        assert server.stop() == 0, server.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--port", "8000; rm -rf /"],
            "error PORT_INVALID: --port '8000; rm -rf /' is not a port number. "
            "give a whole number from 1 to 65535, e.g. --port 8000",
        ),
        (
            ["--host", "nowhere"],
            "error OPTION_INVALID: --host (overrides HOST) has 'nowhere', not an IP address: "
            "set HOST to e.g. 127.0.0.1,::1 or 0.0.0.0",
        ),
        (
            ["--workers", "0"],
            "error OPTION_INVALID: --workers (overrides WORKERS) is 0, outside 1..64: "
            "set WORKERS to a number from 1 to 64",
        ),
    ],
    ids=["port", "host", "workers"],
)
def test_bad_option_is_a_usage_error_before_anything_starts(tmp_path: Path, args: list[str], line: str) -> None:
    database = tmp_path / "todo.sqlite3"

    result = inv("run", *args, env=run_env(database, PORT=str(free_port())))

    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")
    assert not database.exists()


def test_reload_restarts_on_a_change_to_a_backend_module_and_stops_cleanly(tmp_path: Path, database_url: str) -> None:
    project = copy_project(tmp_path / "project")
    port = free_port()
    env = run_env(database_url, PORT=str(port))
    health_module = project / "backend" / "endpoints" / "health.py"

    with InvRun("run", "--reload", port=port, env=env, cwd=project) as server:
        server.start()
        server.wait_healthy()
        health_module.write_text(health_module.read_text().replace('Health("ok")', 'Health("reloaded")'))

        deadline = time.monotonic() + 15
        while _health(server.url) != {"status": "reloaded"}:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        children = psutil.Process(server.pid).children()
        assert server.stop(signal.SIGINT) == 0, server.stderr  # Ctrl+C
        assert "Traceback" not in server.stderr
    assert [child.pid for child in children if child.is_running()] == []


def _health(url: str) -> object:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).json()
    except httpx.TransportError:
        return None


def test_reload_survives_code_that_does_not_import_and_serves_again_once_fixed(
    tmp_path: Path, database_url: str
) -> None:
    project = copy_project(tmp_path / "project")
    port = free_port()
    health_module = project / "backend" / "endpoints" / "health.py"
    good = health_module.read_text()

    with InvRun("run", "--reload", port=port, env=run_env(database_url, PORT=str(port)), cwd=project) as server:
        server.start()
        server.wait_healthy()
        health_module.write_text(good + "\nthis is ( broken\n")
        server.wait_for_output("The server exited with status 1; it restarts when backend/ or .env changes")
        assert server.running()

        health_module.write_text(good.replace('Health("ok")', 'Health("fixed")'))
        deadline = time.monotonic() + 15
        while _health(server.url) != {"status": "fixed"}:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        assert server.stop() == 0, server.stderr
        assert "backend/endpoints/health.py changed: restarting the server" in server.stderr
        assert "SyntaxError: '(' was never closed" in server.stderr  # the developer's own error, with its line


def test_workers_option_overrides_workers_and_starts_that_many_processes(database_url: str) -> None:
    port = free_port()
    env = run_env(database_url, PORT=str(port), WORKERS="1")
    with InvRun("run", "--workers", "2", port=port, env=env) as server:
        server.start()
        server.wait_ready()
        deadline = time.monotonic() + 10
        while len(workers := _spawned_workers(server.pid)) < 2:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)

        assert len(workers) == 2
        assert server.stop() == 0, server.stderr


def _spawned_workers(pid: int) -> list[psutil.Process]:
    """Hypercorn's worker processes: multiprocessing "spawn" children of `pid`."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
