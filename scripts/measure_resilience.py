"""Measure how the backend rides out database faults and shutdowns (the figures in docs/deployment.md).

`python -m scripts.measure_resilience` starts a throwaway PostgreSQL cluster
(initdb/pg_ctl, as tests/support/pgcluster.py does) and real servers
(`python -m backend`), then measures:

- recovery: the database is stopped, then started again; time from
  `pg_ctl start` returning to the first 200 of an API read (target: < 2 s);
- startup outage: a server started while the database is down retries for
  `--outage` seconds (its backoff at its ceiling by then); time from
  `pg_ctl start` returning to the first 200 of an API read (target: about 1 s);
- kills: steady load from concurrent clients (mixed lists and creates) while
  every backend connection is killed with `pg_terminate_backend` once a
  second; requests failed per kill, beside the requests in flight at that
  moment (target: only those in flight);
- writes: every create answered 201 during the kills is looked up in the
  database (target: 0 lost, 0 duplicated);
- shutdown: requests held by `LOCK TABLE tasks`, SIGTERM, the lock released a
  moment later; time from the release to the process's exit (target: under 1 s
  after the slowest request).

It prints a Markdown table. `--help` shows the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx

from backend.devtokens import mint_token
from tests.support import apps
from tests.support.databases import fresh_postgres_database
from tests.support.live import LiveServer
from tests.support.pgcluster import PostgresCluster
from tests.support.pgfaults import TableLock, stored_rows, terminate_backends, wait_for_waiters


def server_env(database_url: str) -> dict[str, str]:
    """The tests' server environment, quieter, patient with the database and with a drain of 30 s."""
    quiet = {"LOG_LEVEL": "warning", "DB_CONNECT_RETRY_SECONDS": "60", "GRACEFUL_TIMEOUT": "30"}
    return {**apps.server_env(database_url), **quiet}


@dataclass
class Client:
    """One user's requests to one server."""

    server: LiveServer
    http: httpx.AsyncClient
    user: str = field(default_factory=lambda: f"measure-{uuid.uuid4().hex[:10]}")
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        token = mint_token(self.server.settings, self.user, email="measure@example.com", name="Measure")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def read(self) -> httpx.Response:
        return await self.http.get(f"{self.server.url}/api/{self.user}/tasks", headers=self.headers)

    async def create(self, title: str) -> httpx.Response:
        url = f"{self.server.url}/api/{self.user}/tasks"
        return await self.http.post(url, json={"title": title}, headers=self.headers)


async def recovery(cluster: PostgresCluster, client: Client, runs: int) -> list[float]:
    """Seconds from the database accepting connections again to the first 200 of an API read."""
    times = []
    for _ in range(runs):
        assert (await client.read()).status_code == 200
        await asyncio.to_thread(cluster.stop, "fast")
        assert (await client.read()).status_code == 503
        await asyncio.to_thread(cluster.start)  # returns once the database accepts connections
        started = time.perf_counter()
        while (await client.read()).status_code != 200:  # noqa: ASYNC110 - polling the server is the measurement
            await asyncio.sleep(0.01)
        times.append(time.perf_counter() - started)
    return times


async def startup_outage(cluster: PostgresCluster, database: str, runs: int, outage: float) -> list[float]:
    """Seconds from the database accepting connections to a server started while it was down answering 200."""
    times = []
    for _ in range(runs):
        await asyncio.to_thread(cluster.stop, "fast")
        with LiveServer(**server_env(database)) as server:
            server.start()
            await asyncio.to_thread(server.wait_healthy)
            async with httpx.AsyncClient(timeout=60) as http:
                client = Client(server, http)
                await asyncio.sleep(outage)
                await asyncio.to_thread(cluster.start)
                started = time.perf_counter()
                while (await client.read()).status_code != 200:  # noqa: ASYNC110 - polling the server is the measurement
                    await asyncio.sleep(0.01)
                times.append(time.perf_counter() - started)
    return times


@dataclass
class KillFigures:
    kills: int = 0
    in_flight_at_kill: list[int] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    unexpected: int = 0  # anything but 200, 201, 503
    acknowledged: dict[int, str] = field(default_factory=dict)


async def kills_under_load(database: str, client: Client, seconds: float, concurrency: int) -> KillFigures:
    figures = KillFigures()
    in_flight = 0
    stop = asyncio.Event()

    async def worker(number: int) -> None:
        nonlocal in_flight
        index = 0
        while not stop.is_set():
            index += 1
            title = f"w{number}-{index}-{uuid.uuid4().hex[:6]}" if index % 2 else ""
            in_flight += 1
            try:
                response = await (client.create(title) if title else client.read())
            finally:
                in_flight -= 1
            figures.requests += 1
            if response.status_code == 503:
                figures.failed += 1
            elif response.status_code not in (200, 201):
                figures.unexpected += 1
            if response.status_code == 201:
                figures.acknowledged[response.json()["id"]] = title

    async def killer() -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            figures.in_flight_at_kill.append(in_flight)
            await terminate_backends(database)
            figures.kills += 1

    workers = [asyncio.create_task(worker(n)) for n in range(concurrency)]
    kill = asyncio.create_task(killer())
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*workers, kill)
    return figures


async def shutdown(database: str, runs: int, hold: float, requests: int) -> list[tuple[float, float]]:
    """(seconds from SIGTERM to exit, seconds from the lock's release to exit) per run."""
    results = []
    for _ in range(runs):
        with LiveServer(**server_env(database)) as server:
            server.start()
            await asyncio.to_thread(server.wait_ready)
            async with httpx.AsyncClient(timeout=60) as http:
                client = Client(server, http)
                created = [(await client.create(f"slow {n}")).json()["id"] for n in range(requests)]
                async with TableLock(database) as lock:
                    puts = [
                        asyncio.create_task(
                            http.put(
                                f"{server.url}/api/{client.user}/tasks/{task_id}",
                                json={"title": "renamed"},
                                headers=client.headers,
                            )
                        )
                        for task_id in created
                    ]
                    await wait_for_waiters(database, requests)
                    signalled = time.perf_counter()
                    server.send_signal(signal.SIGTERM)
                    await asyncio.sleep(hold)
                    await lock.release()
                    released = time.perf_counter()
                status = await asyncio.to_thread(server.wait, 60)
                exited = time.perf_counter()
                answers = [put.status_code for put in await asyncio.gather(*puts)]
                if status != 0 or answers != [200] * requests:
                    raise RuntimeError(f"shutdown run failed: exit {status}, answers {answers}\n{server.stderr}")
                results.append((exited - signalled, exited - released))
    return results


async def measure(args: argparse.Namespace) -> None:
    cluster = PostgresCluster()
    cluster.start()
    try:
        async with fresh_postgres_database(cluster.url()) as database:
            with LiveServer(**server_env(database)) as server:
                server.start()
                await asyncio.to_thread(server.wait_ready)
                limits = httpx.Limits(max_connections=args.concurrency + 10)
                async with httpx.AsyncClient(timeout=60, limits=limits) as http:
                    client = Client(server, http)
                    recovered = await recovery(cluster, client, args.runs)
                    kills = await kills_under_load(database, client, args.seconds, args.concurrency)
                stored = await stored_rows(database, client.user)
            stopped = await shutdown(database, args.runs, args.hold, args.slow_requests)
            outage = await startup_outage(cluster, database, args.runs, args.outage)
    finally:
        cluster.remove()
    report(recovered, kills, stored, stopped, args, outage=outage)


def report(
    recovered: list[float],
    kills: KillFigures,
    stored: list[tuple[int, str]],
    stopped: list[tuple[float, float]],
    args: argparse.Namespace,
    *,
    outage: list[float],
) -> None:
    ids = {task_id for task_id, _ in stored}
    lost = sum(1 for task_id in kills.acknowledged if task_id not in ids)
    titles = [title for _, title in stored]
    duplicated = len(titles) - len(set(titles))
    per_kill = kills.failed / kills.kills if kills.kills else 0.0
    in_flight = statistics.mean(kills.in_flight_at_kill) if kills.in_flight_at_kill else 0.0
    rows = [
        (
            "recovery: database back -> first API 200",
            f"median {_ms(recovered)}, max {max(recovered) * 1000:.0f} ms",
            "< 2 s",
        ),
        (
            f"startup outage ({args.outage:g} s): database up -> first API 200",
            f"median {_ms(outage)}, max {max(outage) * 1000:.0f} ms",
            "about 1 s",
        ),
        (
            f"requests failed per connection kill ({args.concurrency} clients, {kills.kills} kills)",
            f"{per_kill:.1f} (in flight at the kill: {in_flight:.1f}; {kills.failed} of {kills.requests} requests)",
            "<= in flight",
        ),
        ("responses other than 200/201/503 during kills", str(kills.unexpected), "0"),
        (f"acknowledged writes lost (of {len(kills.acknowledged)})", str(lost), "0"),
        ("writes stored twice", str(duplicated), "0"),
        (
            f"shutdown: SIGTERM -> exit, {args.slow_requests} requests held {args.hold:g} s",
            f"median {_ms([total for total, _ in stopped])}",
            f"{args.hold:g} s + < 1 s",
        ),
        ("shutdown: slowest request done -> exit", f"median {_ms([after for _, after in stopped])}", "< 1 s"),
    ]
    print(f"Python {sys.version.split()[0]}, {args.runs} runs")
    print("| figure | measured | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="recovery and shutdown runs (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load with kills (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients under load (default 16)")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the lock holds requests after SIGTERM")
    parser.add_argument("--slow-requests", type=int, default=4, help="requests held by the lock at SIGTERM")
    parser.add_argument("--outage", type=float, default=8.0, help="seconds a starting server waits for the database")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
