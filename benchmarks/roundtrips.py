"""Database round trips per request: ours against the FastAPI + SQLModel peer, direct and through PgBouncer.

    python -m benchmarks roundtrips [--rtt MS]      (nox -s bench -- roundtrips --rtt 20)

Each server runs as it is served (a subprocess, one worker) with its
database behind a counting TCP proxy (tests/support/tcpproxy.py): a round
trip is each time the server speaks after the database has, what a database
tens of milliseconds away (Neon) charges for. Requests go one at a time, so
the count is per request, not per unit of concurrency, and it is counted
after a few requests: each statement prepared on the connection, which
every server opened already.

Through PgBouncer 1.18 in transaction mode (Debian's, TLS + SCRAM, started
here as in the tests): ours with the plain URL (it finds the pooler at run
time) and with `?pgbouncer=true`; the peer with SQLAlchemy's documented
pooler setting, `prepared_statement_cache_size=0` (asyncpg's statement cache
stays on: its names are unique within a process, and one server connection
takes each prepare-and-run, so it works here). `statement_cache_size=0` on
ours is asyncpg's own advice for poolers: a statement prepared on every call.

`--rtt MS` adds MS milliseconds of round-trip time in the proxy (half each
way, as a far-away database) and reports each request's median time too.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from benchmarks import postgres, servers
from benchmarks.tokens import Provider
from tests.support import pgbouncer
from tests.support.tcpproxy import TCPProxy

REQUESTS = 50
SCENARIOS = ("list", "create")


def main(argv: Sequence[str]) -> int:
    rtt = float(argv[argv.index("--rtt") + 1]) / 1000 if "--rtt" in argv else 0.0
    with postgres.BenchPostgres() as pg, Provider() as provider:
        rows = asyncio.run(_measure_all(pg, provider, rtt))
    added = f", {rtt * 1000:g} ms round-trip time added" if rtt else ""
    print(f"round trips per request ({REQUESTS} sequential requests each, PostgreSQL {pg.where}{added}):\n")
    columns = [f"{s} {what}" for s in SCENARIOS for what in (("round trips", "median ms") if rtt else ("round trips",))]
    print("| server | database | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


async def _measure_all(pg: postgres.BenchPostgres, provider: Provider, rtt: float) -> list[list[str]]:
    upstream = urlsplit(pg.admin_url).port or 5432
    token = provider.token("eddsa")
    makers: dict[str, Callable[[str], servers.Server]] = {
        "ours": lambda url: servers.ours(url, provider),
        "peer": lambda url: servers.peer(url, provider, "eddsa"),
    }
    rows: list[list[str]] = []
    for name, make in makers.items():
        url = await _seeded(pg, name)
        via = _measure(make, upstream, lambda port, url=url: _via(url, port), rtt, token)
        rows.append([name, "direct", *await via])
    if not pgbouncer.available():
        print("pgbouncer is not installed: the pooled rows are left out", file=sys.stderr)
        return rows
    with pgbouncer.PgBouncer(upstream) as bouncer:
        for name, where, query in _POOLED:
            database = urlsplit(await _seeded(pg, name)).path.lstrip("/")
            url_of = _pooled_url(bouncer, database, query, peer=name == "peer")
            rows.append([name, where, *await _measure(makers[name], bouncer.port, url_of, rtt, token)])
    return rows


# (server, how it reaches PgBouncer, its URL query)
_POOLED = (
    ("ours", "PgBouncer, plain URL", {}),
    ("ours", "PgBouncer, ?pgbouncer=true", {"pgbouncer": "true"}),
    ("ours", "PgBouncer, ?statement_cache_size=0", {"statement_cache_size": "0"}),
    ("peer", "PgBouncer, prepared_statement_cache_size=0", {"prepared_statement_cache_size": "0"}),
)


async def _seeded(pg: postgres.BenchPostgres, name: str) -> str:
    """A migrated database with the benchmark's seed (its helpers run their own loops: in a thread)."""
    url = await asyncio.to_thread(pg.create, f"rt_{name}")
    await asyncio.to_thread(postgres.reseed, url)
    return url


def _pooled_url(
    bouncer: pgbouncer.PgBouncer, database: str, query: dict[str, str], *, peer: bool
) -> Callable[[int], str]:
    """The URL through PgBouncer, pointed at the proxy's port. SQLAlchemy's dialect takes `ssl=`, not sslmode."""

    def url_of(port: int) -> str:
        if not peer:
            return bouncer.url(database, port=port, **query)
        tail = "&".join(f"{key}={value}" for key, value in {"ssl": "require", **query}.items())
        return f"postgresql://{pgbouncer.USER}:{pgbouncer.PASSWORD}@127.0.0.1:{port}/{database}?{tail}"

    return url_of


async def _measure(
    make: Callable[[str], servers.Server], upstream: int, url_of: Callable[[int], str], rtt: float, token: str
) -> list[str]:
    async with TCPProxy(upstream) as proxy:
        server = make(url_of(proxy.port))
        await asyncio.to_thread(server.start)
        proxy.delay = rtt / 2
        try:
            figures = [await _scenario(server, proxy, scenario, rtt, token) for scenario in SCENARIOS]
            return [figure for each in figures for figure in each]
        finally:
            await asyncio.to_thread(server.stop)


async def _scenario(server: servers.Server, proxy: TCPProxy, scenario: str, rtt: float, token: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30.0) as http:
        for _ in range(5):
            await _request(http, scenario)
        proxy.reset_counts()
        times = [await _request(http, scenario) for _ in range(REQUESTS)]
    figures = [f"{proxy.round_trips / REQUESTS:g}"]
    return [*figures, f"{statistics.median(times) * 1000:.1f}"] if rtt else figures


async def _request(http: httpx.AsyncClient, scenario: str) -> float:
    """One request; the seconds it took."""
    began = time.perf_counter()
    if scenario == "list":
        response = await http.get("/api/alice/tasks?limit=20")
    else:
        response = await http.post("/api/alice/tasks", json={"title": "round trip"})
    response.raise_for_status()
    return time.perf_counter() - began


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return url.replace(f"{parts.hostname}:{parts.port}", f"{parts.hostname}:{port}", 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
