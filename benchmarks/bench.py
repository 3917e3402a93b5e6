"""The benchmark: ours, the peer and the ceiling, side by side in one run.

`nox -s bench` runs this; `python -m benchmarks.bench --help` shows the knobs.
Each scenario is loaded by wrk from a separate process over loopback with the
same connections; servers alternate run by run (ours, peer, ceiling, ours, ...)
so drift on a busy machine hits all of them. Medians of the runs are printed
and written to benchmarks/results/latest.md with the machine and versions.

Durations come from the options, else BENCH_DURATION, BENCH_RUNS,
BENCH_WARMUP and BENCH_CONNECTIONS; `--quick` is a smoke run under a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil

from backend.devtokens import mint_token
from backend.settings import Secret, Settings
from benchmarks import postgres, report, servers, wrk
from benchmarks.report import Summary
from benchmarks.servers import Server
from tests.support.live import free_port

RESULTS = Path(__file__).resolve().parent / "results"
# scenario -> the servers that implement it (the peer has list, create and health).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "list": ("ours", "peer", "ceiling", "ceiling-uvicorn"),
    "create": ("ours", "peer", "ceiling"),
    "get": ("ours", "ceiling"),
    "toggle": ("ours", "ceiling"),
    "health": ("ours", "peer", "ceiling", "ceiling-uvicorn"),
}
PACKAGES = ("starlette", "hypercorn", "databases", "asyncpg", "sqlalchemy", "msgspec", "joserfc", "uvloop")
PEER_PACKAGES = ("fastapi", "sqlmodel", "pydantic", "pyjwt", "uvicorn", "httptools")


def options(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "10")), help="seconds per run")
    parser.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", "3")), help="runs per server")
    parser.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", "3")), help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "64")))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute: 1 run of 1 s, 1 s warm-up")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md", help="the markdown report")
    parsed = parser.parse_args(argv)
    if parsed.quick:
        parsed.duration, parsed.runs, parsed.warmup = 1, 1, 0
    return parsed


def main(argv: Sequence[str]) -> int:
    opts = options(argv)
    if not wrk.available():
        print("wrk is not installed: `apt-get install wrk` (`nox -s bench` does it when run as root)", file=sys.stderr)
        return 1
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    scenarios = [name for name in opts.scenarios.split(",") if name in SCENARIOS]
    with postgres.BenchPostgres() as pg:
        urls = {"ours": pg.create("ours"), "peer": pg.create("peer")}
        token = alice_token()
        results, rss = _compare(opts, scenarios, urls, token)
        extras = _extras(opts, urls["ours"], token, rss)
        pg_where, pg_version = pg.where, pg.server_version()
    summaries = {key: Summary.of(*key, runs) for key, runs in results.items()}
    database = f"PostgreSQL {pg_version}, {pg_where}"
    text = _markdown(opts, summaries, extras, started=started, load_before=load_before, database=database)
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text)
    print(f"written to {opts.output}")
    return 0


def alice_token() -> str:
    """A token for alice that every server accepts, valid for the whole run."""
    settings = Settings(secret=Secret(servers.SECRET), jwt_issuer=servers.AUTH_URL, jwt_audience=servers.AUTH_URL)
    return mint_token(settings, "alice", ttl_seconds=6 * 3600)


def _compare(
    opts: argparse.Namespace, scenarios: list[str], urls: dict[str, str], token: str
) -> tuple[dict[tuple[str, str], list[wrk.Result]], dict[str, float]]:
    running = {
        "ours": servers.ours(urls["ours"]),
        "peer": servers.peer(urls["peer"]),
        "ceiling": servers.ceiling(),
        "ceiling-uvicorn": servers.ceiling_on_uvicorn(),
    }
    results: dict[tuple[str, str], list[wrk.Result]] = {}
    try:
        for server in running.values():
            server.start()
        for scenario in scenarios:
            ids = {name: postgres.reseed(url)["alice"] for name, url in urls.items()}
            names = SCENARIOS[scenario]
            args = {name: [token, "alice", ",".join(map(str, ids.get(name, range(1, 101))))] for name in names}
            runs = alternate(opts, scenario, {name: running[name] for name in names}, args)
            results.update({(scenario, name): runs[name] for name in names})
        rss = {name: server.rss_mib() for name, server in running.items()}
    finally:
        for server in running.values():
            server.stop()
    return results, rss


def alternate(
    opts: argparse.Namespace, scenario: str, running: dict[str, Server], args: dict[str, list[str]]
) -> dict[str, list[wrk.Result]]:
    """Warm each server up, then `opts.runs` runs of each, alternating run by run so drift hits all alike."""
    for name, server in running.items():
        _warm_up(opts, server.url, scenario, args[name])
    results: dict[str, list[wrk.Result]] = {name: [] for name in running}
    for attempt in range(opts.runs):
        for name, server in running.items():
            result = wrk.run(server.url, scenario, opts.duration, opts.connections, args[name])
            results[name].append(result)
            _progress(scenario, name, attempt, result)
    return results


def _warm_up(opts: argparse.Namespace, url: str, scenario: str, args: list[str]) -> None:
    if opts.warmup > 0:
        wrk.run(url, scenario, opts.warmup, opts.connections, args)


def _progress(scenario: str, name: str, attempt: int, result: wrk.Result) -> None:
    print(
        f"{scenario:<7} {name:<8} run {attempt + 1}: {result.rps:9,.0f} req/s  p50 {result.p50_us / 1000:6.1f} ms"
        f"  p99 {result.p99_us / 1000:7.1f} ms  non-2xx {result.non_2xx}  socket errors {result.socket_errors}",
        flush=True,
    )


def _extras(opts: argparse.Namespace, url: str, token: str, rss: dict[str, float]) -> list[str]:
    """Startup time, env-check time, memory after load, WORKERS=2 throughput."""
    lines = [f"- Resident memory after the load: {_rss_line(rss)}."]
    startup = [_inv_run_to_health(url) for _ in range(opts.runs)]
    lines.append(
        f"- `inv run` to the first `/health` 200: median {statistics.median(startup):.2f} s of {len(startup)} starts."
    )
    lines.append(f"- `inv env-check` wall time: {_env_check_time(url)}.")
    postgres.reseed(url)
    two = servers.ours(url, workers=2)
    try:
        two.start()
        args = [token, "alice", ""]
        _warm_up(opts, two.url, "list", args)
        runs = [wrk.run(two.url, "list", opts.duration, opts.connections, args) for _ in range(opts.runs)]
        summary = Summary.of("list", "ours WORKERS=2", runs)
        lines.append(
            f"- WORKERS=2, list: {summary.rps:,.0f} req/s, p99 {summary.p99_ms:.1f} ms, "
            f"{summary.non_2xx} non-2xx, RSS {two.rss_mib():.0f} MiB (parent + workers); "
            "on 2 cores wrk and PostgreSQL share them with the workers."
        )
    finally:
        two.stop()
    return lines


def _rss_line(rss: dict[str, float]) -> str:
    return ", ".join(f"{name} {mib:.0f} MiB" for name, mib in rss.items())


def _inv(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "inv"), *args]


def _inv_run_to_health(url: str) -> float:
    server = Server("inv run", _inv("run"), servers.our_env(url))
    try:
        return server.start()
    finally:
        server.stop()


def _env_check_time(url: str) -> str:
    listing = subprocess.run(_inv("--list"), capture_output=True, text=True, check=False, cwd=servers.ROOT)
    if "env-check" not in listing.stdout:
        return "not measured: this checkout has no `inv env-check` task yet"
    env = {**os.environ, **servers.our_env(url), "PORT": str(free_port())}
    took, status = _timed(
        lambda: subprocess.run(_inv("env-check"), env=env, cwd=servers.ROOT, capture_output=True, check=False)
    )
    return f"{took:.2f} s (exit status {status}; its JWKS check warns here: no Better Auth server runs)"


def _timed(call: Callable[[], subprocess.CompletedProcess[bytes]]) -> tuple[float, int]:
    began = time.perf_counter()
    completed = call()
    return time.perf_counter() - began, completed.returncode


def _markdown(
    opts: argparse.Namespace,
    summaries: dict[tuple[str, str], Summary],
    extras: list[str],
    *,
    started: datetime,
    load_before: tuple[float, float, float],
    database: str,
) -> str:
    cpu = _cpu_model()
    versions = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    peer_versions = ", ".join(f"{name} {version(name)}" for name in PEER_PACKAGES)
    return f"""# Benchmark results

Run {started:%Y-%m-%d %H:%M} UTC with `nox -s bench` ({opts.connections} connections, {opts.warmup} s warm-up,
{opts.runs} runs of {opts.duration} s per server, servers alternating run by run; medians).

- Machine: {cpu}, {psutil.cpu_count()} logical CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB,
  {platform.platform()}; load average before the run {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}.
- Python {platform.python_version()}; {wrk.version()}; {database}.
- Ours: {versions}.
- Peer: {peer_versions}.

## Throughput and latency

{report.table(summaries.values())}

## Ratios and targets

{report.ratios(summaries)}

## Also measured

{chr(10).join(extras)}
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
