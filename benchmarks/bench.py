"""The benchmark: ours, the peer and the ceiling, side by side in one run.

`nox -s bench` runs this; `python -m benchmarks.bench --help` shows the knobs.
Each scenario is loaded by wrk from a separate process over loopback with the
same connections; servers alternate run by run (ours, peer, ceiling, ours, ...)
so drift on a busy machine hits all of them. Medians of the runs are printed
and written to benchmarks/results/latest.md with the machine and versions.

Tokens (`--tokens`, benchmarks/tokens.py): first a pass with EdDSA tokens that
ours and the peer verify against the bench's own JWKS endpoint (what Better
Auth users send), then a pass with HS256 tokens and the shared secret; each
pass starts ours and the peer afresh for it. The ceilings and `/health` need
no token and run in the first pass only.

Durations come from the options, else BENCH_DURATION, BENCH_RUNS,
BENCH_WARMUP and BENCH_CONNECTIONS; `--quick` is a smoke run under a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil

from benchmarks import postgres, report, servers, wrk
from benchmarks.report import Summary
from benchmarks.servers import Server
from benchmarks.tokens import KINDS, TITLES, Kind, Provider
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
PEER_PACKAGES = ("fastapi", "sqlmodel", "pydantic", "pyjwt", "cryptography", "uvicorn", "httptools")
CEILINGS = ("ceiling", "ceiling-uvicorn")
Results = dict[tuple[Kind, str, str], list[wrk.Result]]


def options(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "10")), help="seconds per run")
    parser.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", "3")), help="runs per server")
    parser.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", "3")), help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "64")))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument(
        "--tokens",
        choices=[*KINDS, "both"],
        default=env("BENCH_TOKENS", "both"),
        help="eddsa: Better Auth's, from the bench's JWKS endpoint; hs256: the shared secret; both (default)",
    )
    parser.add_argument("--note", default="", help="a line for the report, e.g. what else ran on the machine")
    parser.add_argument("--quick", action="store_true", help="smoke run, about a minute: 1 run of 1 s, no warm-up")
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
    kinds: tuple[Kind, ...] = KINDS if opts.tokens == "both" else (opts.tokens,)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        urls = {"ours": pg.create("ours"), "peer": pg.create("peer")}
        results, rss = _compare(opts, scenarios, kinds, urls, provider)
        extras = _extras(opts, urls["ours"], provider, kinds[0], rss)
        pg_where, pg_version = pg.where, pg.server_version()
    summaries = {kind: _summaries(results, kind) for kind in kinds}
    database = f"PostgreSQL {pg_version}, {pg_where}"
    header = _header(opts, argv, started=started, load_before=load_before, database=database)
    text = header + _sections(summaries) + _also_measured(extras)
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text)
    print(f"written to {opts.output}")
    return 0


def _summaries(results: Results, kind: Kind) -> dict[tuple[str, str], Summary]:
    found = {(scenario, name): runs for (pass_kind, scenario, name), runs in results.items() if pass_kind == kind}
    return {key: Summary.of(*key, runs) for key, runs in found.items()}


def _compare(
    opts: argparse.Namespace, scenarios: list[str], kinds: tuple[Kind, ...], urls: dict[str, str], provider: Provider
) -> tuple[Results, list[str]]:
    """A pass per token kind; the ceilings run beside the first one. The RSS lines after the load."""
    ceilings = {"ceiling": servers.ceiling(), "ceiling-uvicorn": servers.ceiling_on_uvicorn()}
    results: Results = {}
    rss: list[str] = []
    try:
        for server in ceilings.values():
            server.start()
        for index, kind in enumerate(kinds):
            shared = ceilings if index == 0 else {}
            results.update(_pass(opts, kind, scenarios, urls=urls, provider=provider, ceilings=shared, rss=rss))
        rss.append(_rss_line(ceilings))
    finally:
        for server in ceilings.values():
            server.stop()
    return results, rss


def _pass(
    opts: argparse.Namespace,
    kind: Kind,
    scenarios: list[str],
    *,
    urls: dict[str, str],
    provider: Provider,
    ceilings: dict[str, Server],
    rss: list[str],
) -> Results:
    """Each scenario with `kind` tokens: ours and the peer started for it; tokenless ones only beside the ceilings."""
    running = {"ours": servers.ours(urls["ours"], provider), "peer": servers.peer(urls["peer"], provider, kind)}
    token = provider.token(kind)
    results: Results = {}
    print(f"== {TITLES[kind]}", flush=True)
    try:
        for server in running.values():
            server.start()
        running.update(ceilings)
        for scenario in scenarios:
            names = [name for name in SCENARIOS[scenario] if name in running]
            if not ceilings and scenario == "health":
                continue
            ids = {name: postgres.reseed(url)["alice"] for name, url in urls.items()}
            args = {name: [token, "alice", ",".join(map(str, ids.get(name, range(1, 101))))] for name in names}
            runs = alternate(opts, scenario, {name: running[name] for name in names}, args)
            results.update({(kind, scenario, name): runs[name] for name in names})
        rss.append(f"{kind}: {_rss_line({name: running[name] for name in ('ours', 'peer')})}")
    finally:
        for name in ("ours", "peer"):
            running[name].stop()
    return results


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


def _extras(opts: argparse.Namespace, url: str, provider: Provider, kind: Kind, rss: list[str]) -> list[str]:
    """Startup time, env-check time, memory after load, WORKERS=2 throughput."""
    lines = [f"- Resident memory after the load: {'; '.join(rss)}."]
    _inv_run_to_health(url, provider)  # not counted: fills the file cache and writes backend/'s bytecode
    bytecode = "with" if servers.has_bytecode() else "without"
    startup = [_inv_run_to_health(url, provider) for _ in range(opts.runs)]
    lines.append(
        f"- `inv run` to the first `/health` 200: median {statistics.median(startup):.2f} s of {len(startup)} starts"
        f" ({', '.join(f'{took:.2f}' for took in startup)}; {bytecode} backend/'s bytecode; target <= 0.35 s)."
    )
    lines.append(f"- `inv env-check` wall time: {_env_check_time(url, provider)}.")
    postgres.reseed(url)
    two = servers.ours(url, provider, workers=2)
    try:
        two.start()
        args = [provider.token(kind), "alice", ""]
        _warm_up(opts, two.url, "list", args)
        runs = [wrk.run(two.url, "list", opts.duration, opts.connections, args) for _ in range(opts.runs)]
        summary = Summary.of("list", "ours WORKERS=2", runs)
        lines.append(
            f"- WORKERS=2, list ({kind} tokens): {summary.rps:,.0f} req/s, p99 {summary.p99_ms:.1f} ms, "
            f"{summary.non_2xx} non-2xx, RSS {two.rss_mib():.0f} MiB (parent + workers); "
            "on 2 cores wrk and PostgreSQL share them with the workers."
        )
    finally:
        two.stop()
    lines.append(f"- The bench's JWKS endpoint answered {provider.jwks_requests} GETs over the whole run.")
    return lines


def _rss_line(running: dict[str, Server]) -> str:
    return ", ".join(f"{name} {server.rss_mib():.0f} MiB" for name, server in running.items())


def _inv(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "inv"), *args]


def _inv_run_to_health(url: str, provider: Provider) -> float:
    server = Server("inv run", _inv("run"), servers.our_env(url, provider))
    try:
        return server.start()
    finally:
        server.stop()


def _env_check_time(url: str, provider: Provider) -> str:
    listing = subprocess.run(_inv("--list"), capture_output=True, text=True, check=False, cwd=servers.ROOT)
    if "env-check" not in listing.stdout:
        return "not measured: this checkout has no `inv env-check` task yet"
    env = {**os.environ, **servers.our_env(url, provider), "PORT": str(free_port())}
    took, status = _timed(
        lambda: subprocess.run(_inv("env-check"), env=env, cwd=servers.ROOT, capture_output=True, check=False)
    )
    return f"{took:.2f} s (exit status {status}; its JWKS check reads the bench's endpoint)"


def _timed(call: Callable[[], subprocess.CompletedProcess[bytes]]) -> tuple[float, int]:
    began = time.perf_counter()
    completed = call()
    return time.perf_counter() - began, completed.returncode


def _header(
    opts: argparse.Namespace,
    argv: Sequence[str],
    *,
    started: datetime,
    load_before: tuple[float, float, float],
    database: str,
) -> str:
    cpu = _cpu_model()
    versions = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    peer_versions = ", ".join(f"{name} {version(name)}" for name in PEER_PACKAGES)
    shown = _without_note(argv)
    command = " ".join(["nox -s bench", *(["--", shlex.join(shown)] if shown else [])])
    note = f"\n**{opts.note}**\n" if opts.note else ""
    return f"""# Benchmark results

Run {started:%Y-%m-%d %H:%M} UTC with `{command}` ({opts.connections} connections, {opts.warmup} s warm-up,
{opts.runs} runs of {opts.duration} s per server, servers alternating run by run; medians).
{note}
- Machine: {cpu}, {psutil.cpu_count()} logical CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB,
  {platform.platform()}; load average before the run {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}.
- Python {platform.python_version()}; {wrk.version()}; {database}.
- Ours: {versions}.
- Peer: {peer_versions}.
- Tokens: the JWKS endpoint is the bench's own (benchmarks/tokens.py), shaped like Better Auth's: one Ed25519
  key with a `kid`, no `alg`, no `use`, no cache headers; tokens with header `{{alg, kid}}` (no `typ`) and
  Better Auth's claims. Ours reads it in JWKS mode (BETTER_AUTH_URL at the endpoint, the shared secret set
  too); the peer with PyJWT's `PyJWKClient`. The HS256 pass signs the same claims with the shared secret.
"""


def _without_note(argv: Sequence[str]) -> list[str]:
    """The arguments as typed, but the note (the report prints it on its own)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if not skip and arg != "--note" and not arg.startswith("--note="):
            shown.append(arg)
        skip = arg == "--note"
    return shown


def _sections(summaries: dict[Kind, dict[tuple[str, str], Summary]]) -> str:
    """A table of numbers and one of ratios per token kind; the ceilings come from the first pass."""
    ceilings = next(iter(summaries.values()), {})
    parts = []
    for kind, found in summaries.items():
        ratios = report.ratios(
            found, ceilings=ceilings, targets=report.TARGETS[kind], ceiling_targets=report.CEILING_TARGETS[kind]
        )
        parts.append(
            f"""
## {TITLES[kind]}

{report.table(found.values())}

{ratios}
"""
        )
    return "".join(parts)


def _also_measured(extras: list[str]) -> str:
    return f"""
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
