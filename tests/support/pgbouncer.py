"""A throwaway PgBouncer in transaction mode, the way Neon and Supabase put one in front of PostgreSQL.

Debian's `pgbouncer` package, started by the tests like the throwaway cluster
(tests/support/pgcluster.py): clients reach it over TLS (a self-signed
certificate made here with `openssl`, valid for 127.0.0.1) and authenticate
with SCRAM-SHA-256; it talks plain to the PostgreSQL behind it, as the
`postgres` user that cluster trusts. Any database name is passed through
(`*`), so each test's fresh database is reachable as it is.

PgBouncer refuses to run as root: as root it runs as `postgres`. `reload()`
rewrites the configuration and sends SIGHUP (pool size and the order in which
idle server connections are handed out change without dropping them).
`python tests/support/pgbouncer.py POSTGRES_PORT` starts one and prints its URL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

BINARY = "pgbouncer"
USER = "todo"
PASSWORD = "pooled-secret"
START_TIMEOUT = 10.0


class PgBouncerError(RuntimeError):
    pass


def find() -> str | None:
    """The pgbouncer binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which(BINARY) or shutil.which(BINARY, path="/usr/sbin:/usr/local/sbin")


def available() -> bool:
    return find() is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """PgBouncer on a free loopback port in front of the PostgreSQL on `upstream_port`."""

    def __init__(self, upstream_port: int, *, pool_size: int = 20, round_robin: bool = False) -> None:
        binary = find()
        if binary is None:
            raise PgBouncerError("pgbouncer not found: `sudo apt-get install pgbouncer` (Debian/Ubuntu)")
        self.binary = binary
        self.upstream_port = upstream_port
        self.port = _free_port()
        self.pool_size = pool_size
        self.round_robin = round_robin
        self.base = Path(tempfile.mkdtemp(prefix="todo-pgbouncer-"))
        self.config = self.base / "pgbouncer.ini"
        self.log = self.base / "pgbouncer.log"
        self.pidfile = self.base / "pgbouncer.pid"
        self.certificate = self.base / "server.crt"
        self._as_postgres = hasattr(os, "geteuid") and os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None
        self._reloads = 0
        self._make_certificate()
        (self.base / "userlist.txt").write_text(f'"{USER}" "{PASSWORD}"\n')
        self._write_config()
        if self._as_postgres:
            for path in (self.base, *self.base.iterdir()):
                shutil.chown(path, "postgres", "postgres")

    def url(self, database: str, *, port: int | None = None, **query: str) -> str:
        """A URL as a provider would show it: TLS verified against our certificate, SCRAM, no pooler hint.

        `port` points it at something in between (tests/support/tcpproxy.py) instead.
        """
        parameters = {"sslmode": "verify-full", "sslrootcert": str(self.certificate), **query}
        tail = "&".join(f"{key}={quote(value, safe='/')}" for key, value in parameters.items())
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port or self.port}/{database}?{tail}"

    def start(self) -> PgBouncer:
        command = [self.binary, str(self.config)]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_listening()
        return self

    def reload(self, *, pool_size: int | None = None, round_robin: bool | None = None) -> None:
        """Change the pool size or the hand-out order; existing server connections stay."""
        if pool_size is not None:
            self.pool_size = pool_size
        if round_robin is not None:
            self.round_robin = round_robin
        self._write_config()
        os.kill(self._pid(), signal.SIGHUP)
        marker = "got SIGHUP, re-reading config"
        deadline = time.monotonic() + START_TIMEOUT
        while self.log_text().count(marker) < self._reloads + 1:
            if time.monotonic() > deadline:
                raise PgBouncerError(f"pgbouncer did not reload:\n{self.log_text()[-2000:]}")
            time.sleep(0.02)
        self._reloads += 1

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError, PgBouncerError):
            os.kill(self._pid(), signal.SIGTERM)
        try:
            self._process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _pid(self) -> int:
        """pgbouncer's own pid (under runuser, the child's is runuser's); it writes the file just after it listens."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return int(self.pidfile.read_text().strip())
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise PgBouncerError(f"pgbouncer wrote no pid file:\n{self.log_text()[-2000:]}") from None
                time.sleep(0.02)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PgBouncerError(f"pgbouncer exited with {self._process.returncode}:\n{self.log_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise PgBouncerError(f"pgbouncer not listening after {START_TIMEOUT}s") from None
                time.sleep(0.02)

    def _make_certificate(self) -> None:
        key = self.base / "server.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(self.certificate),
            ],
            capture_output=True,
            check=True,
        )
        key.chmod(0o600)

    def _write_config(self) -> None:
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "max_client_conn": "1000",
            # LIFO by default; round robin hands out the connection idle the longest (tests steer with it).
            "server_round_robin": "1" if self.round_robin else "0",
            "auth_type": "scram-sha-256",
            "auth_file": str(self.base / "userlist.txt"),
            "client_tls_sslmode": "require",
            "client_tls_cert_file": str(self.certificate),
            "client_tls_key_file": str(self.base / "server.key"),
            "server_tls_sslmode": "disable",
            "logfile": str(self.log),
            "pidfile": str(self.pidfile),
            "log_connections": "0",
            "log_disconnections": "0",
        }
        lines = [
            "[databases]",
            f"* = host=127.0.0.1 port={self.upstream_port} user=postgres",
            "[pgbouncer]",
            *(f"{name} = {value}" for name, value in settings.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    bouncer = PgBouncer(int(sys.argv[1]))
    bouncer.start()
    print(bouncer.url("postgres"))
    try:
        signal.pause()
    finally:
        bouncer.remove()
