"""A throwaway PostgreSQL cluster, made with the machine's initdb and pg_ctl.

Used when TEST_DATABASE_URL is not set, and by tests that must stop and start
a database. initdb and postgres refuse to run as root, so as root they run as
the `postgres` user. Usable as a script too:
`python tests/support/pgcluster.py` starts one and prints its URL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class ClusterError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> bool:
    return shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None


class PostgresCluster:
    """initdb + pg_ctl in a temporary folder, on a free loopback port, trust auth."""

    def __init__(
        self,
        *,
        port: int | None = None,
        hba: str | None = None,
        tls: bool = False,
        tls_names: tuple[str, ...] = ("localhost",),
        server_settings: dict[str, str] | None = None,
    ) -> None:
        """`hba` replaces pg_hba.conf; `tls` turns on ssl with a certificate for `tls_names` signed by a CA
        made for this cluster (its certificate: `ca_file`); `server_settings` are extra `-c name=value` options."""
        if not available():
            raise ClusterError("initdb/pg_ctl not found on PATH: install PostgreSQL or set TEST_DATABASE_URL")
        self.port = port or _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="todo-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._as_postgres = os.geteuid() == 0 if hasattr(os, "geteuid") else False
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if hba is not None:
            (self.data / "pg_hba.conf").write_text(hba)
        self.server_settings = dict(server_settings or {})
        self.ca_file: Path | None = None
        if tls:
            self._make_certificate(tls_names)

    def _make_certificate(self, names: tuple[str, ...]) -> None:
        """A test CA (`ca_file`, for sslrootcert=) and a server certificate it signs for `names`."""
        from tests.support.certs import CertificateAuthority  # lazily: the script form runs without `tests`

        folder = self.base / "tls"
        folder.mkdir()
        authority = CertificateAuthority(folder)
        cert, key = authority.issue(names)
        if self._as_postgres:
            for path in (folder, cert, key):
                shutil.chown(path, "postgres", "postgres")
        self.ca_file = authority.path
        self.server_settings.update(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key))

    def url(
        self, database: str = "postgres", user: str = "postgres", password: str | None = None, host: str = "127.0.0.1"
    ) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{host}:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.server_settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run(
            "psql", "-h", str(self.base), "-p", str(self.port), "-U", "postgres", "-d", database, "-Atc", sql
        )
        return result.stdout.strip()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise ClusterError(f"{' '.join(args[:2])} failed: {result.stderr.strip()}\n{log[-2000:]}")
        return result


if __name__ == "__main__":
    cluster = PostgresCluster()
    cluster.start()
    print(cluster.url())
