"""Fuzz a live server with schemathesis, from its own /openapi.json.

`python -m tests.fuzz [--max-time SECONDS] [--intruder-time SECONDS]` starts
`python -m backend` on a free port (SQLite in a temporary folder, or
FUZZ_DATABASE_URL), a JWKS server that plays Better Auth, and runs
schemathesis twice:

- as the owner: every `user_id` path parameter is the token's `sub`, so
  generated requests reach the handlers, the validation and the database;
- as an intruder: a valid token for another user against the owner's paths,
  which must all be refused (403 or a 4xx), never served.

Checks: not_a_server_error, status_code_conformance and
response_schema_conformance (plus content-type and header conformance), in
every phase schemathesis has (examples, coverage, fuzzing, and stateful
sequences that follow the Location links). Each run is bounded by time, not
by examples: fuzzing repeats until its budget is spent. Both runs must pass,
the owner run must send at least `--min-requests` requests (counted in
schemathesis's HAR report), and the server's log must hold no traceback and
no token. Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.jwks_server import JWKSServer, sign
from tests.support.live import LiveServer
from tests.support.tokens import AUTH_URL

OWNER = "fuzz-owner"
INTRUDER = "fuzz-intruder"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
        "response_headers_conformance",
    ]
)


def token(jwks: JWKSServer, sub: str) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iss": AUTH_URL, "aud": AUTH_URL, "iat": now, "exp": now + 3600, "email": f"{sub}@x.test"}
    return sign(jwks.keys[0], "EdDSA", claims)


def config(folder: Path, name: str, bearer: str, user_id: str) -> Path:
    """A schemathesis.toml: the token on every request, `user_id` pinned."""
    path = folder / f"{name}.toml"
    path.write_text(
        f'headers = {{ Authorization = "Bearer {bearer}" }}\n'
        "[parameters]\n"
        f'"path.user_id" = "{user_id}"\n'
        "[generation]\n"
        "allow-x00 = true\n"
    )
    return path


def schemathesis(config_file: Path, url: str, har: Path, options: argparse.Namespace, seconds: int, *extra: str) -> int:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config_file),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(options.max_examples),
        "--request-timeout",
        "10",
        "--workers",
        str(options.workers),
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--seed",
        str(options.seed),
        "--max-time",
        str(seconds),
        *extra,
    ]
    print("$", " ".join(command[2:]), flush=True)
    # In the temporary folder: schemathesis and hypothesis write caches into the working directory.
    return subprocess.run(command, check=False, cwd=har.parent).returncode


def requests_sent(har: Path) -> int:
    if not har.exists():
        return 0
    return len(json.loads(har.read_text())["log"]["entries"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per operation and phase")
    parser.add_argument(
        "--max-time", type=int, default=120, help="seconds of the owner run; fuzzing repeats until spent"
    )
    parser.add_argument("--intruder-time", type=int, default=45, help="seconds of the intruder run")
    parser.add_argument("--min-requests", type=int, default=2000, help="fail when the owner run sends fewer")
    # One worker: schemathesis compiles code in its threads, which CPython 3.11 can trip over
    # ("SystemError: AST constructor recursion depth mismatch"), a failure of the tool, not the server.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="todo-fuzz-") as temp:
        folder = Path(temp)
        database_url = os.environ.get("FUZZ_DATABASE_URL") or f"sqlite:///{folder / 'fuzz.sqlite3'}"
        jwks = JWKSServer()
        jwks.add_key("EdDSA", "fuzz-key")
        env = {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "BETTER_AUTH_URL": AUTH_URL,
            "BETTER_AUTH_JWKS_URL": jwks.url,
            # Set, so the server never writes the project's var/dev-secret; no token here uses it.
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(48),
            "LOG_LEVEL": "info",
            "DB_CONNECT_RETRY_SECONDS": "0",
        }
        try:
            with LiveServer(**env) as server:
                server.start()
                server.wait_ready()
                return _fuzz(server, jwks, folder, options)
        finally:
            jwks.close()


def _fuzz(server: LiveServer, jwks: JWKSServer, folder: Path, options: argparse.Namespace) -> int:
    owner, intruder = token(jwks, OWNER), token(jwks, INTRUDER)
    failures: list[str] = []
    owner_har, intruder_har = folder / "owner.har", folder / "intruder.har"
    if schemathesis(config(folder, "owner", owner, OWNER), server.url, owner_har, options, options.max_time) != 0:
        failures.append("the owner run found failures (see above)")
    # Only the operations with a user in the path: the intruder's own /api/me is fine to serve.
    intruder_status = schemathesis(
        config(folder, "intruder", intruder, OWNER),
        server.url,
        intruder_har,
        options,
        options.intruder_time,
        "--include-path-regex",
        "^/api/\\{user_id\\}",
    )
    if intruder_status != 0:
        failures.append("the intruder run found failures (see above)")
    failures += _intruder_was_refused(intruder_har)
    sent = requests_sent(owner_har)
    print(f"fuzz: owner run sent {sent} requests, intruder run {requests_sent(intruder_har)}")
    if sent < options.min_requests:
        failures.append(f"the owner run sent {sent} requests, fewer than --min-requests {options.min_requests}")
    log = server.stderr
    if "Traceback" in log or "Unhandled error" in log:
        failures.append("the server logged an unhandled error:\n" + log[-4000:])
    if owner in log or intruder in log:
        failures.append("a token reached the server's log")
    for failure in failures:
        print(f"fuzz: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print("fuzz: passed")
    return 1 if failures else 0


def _intruder_was_refused(har: Path) -> list[str]:
    """Every intruder request on the owner's paths got a 4xx; none was served."""
    if not har.exists():
        return ["the intruder run wrote no HAR report"]
    served = [
        f"{entry['request']['method']} {entry['request']['url']} -> {entry['response']['status']}"
        for entry in json.loads(har.read_text())["log"]["entries"]
        if not 400 <= entry["response"]["status"] < 500
    ]
    return [f"the intruder was served: {line}" for line in served[:20]]


if __name__ == "__main__":
    sys.exit(main())
