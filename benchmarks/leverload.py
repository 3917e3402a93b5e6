"""What each lever of benchmarks/levers.py gains under load: ours with and without it, side by side.

    nox -s bench -- levers list [--levers token-cache,request-id] [--duration 5 --runs 3] [--tokens eddsa]

Serves ours as it is, ours with each lever alone and with all of them
(`python -m benchmarks.levers NAMES`), each on its own database, alternating
run by run as the bench does; prints wrk's medians and each variant's
throughput against ours as it is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

from benchmarks import postgres, servers, wrk
from benchmarks.bench import alternate
from benchmarks.levers import LEVERS
from benchmarks.servers import Server
from benchmarks.tokens import KINDS, Provider


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- levers", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["list", "create", "get", "toggle"])
    parser.add_argument("--levers", default=",".join(LEVERS), help="comma-separated, from: " + ", ".join(LEVERS))
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per server")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    opts = parser.parse_args(argv)
    chosen = [name for name in opts.levers.split(",") if name]
    variants = {"ours": "", **{f"ours + {name}": name for name in chosen}}
    if len(chosen) > 1:
        variants["ours + all"] = ",".join(chosen)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        urls = {name: pg.create(f"lever{index}") for index, name in enumerate(variants)}
        running = {name: _variant(urls[name], provider, levers) for name, levers in variants.items()}
        results = _load(opts, running, urls, provider.token(opts.tokens))
    print(_table(results))
    return 0


def _variant(url: str, provider: Provider, levers: str) -> Server:
    command = [sys.executable, "-m", "benchmarks.levers", levers]
    return Server("ours", command, servers.our_env(url, provider), ready_path="/ready")


def _load(
    opts: argparse.Namespace, running: dict[str, Server], urls: dict[str, str], token: str
) -> dict[str, list[wrk.Result]]:
    try:
        for server in running.values():
            server.start()
        ids = {name: postgres.reseed(url)["alice"] for name, url in urls.items()}
        args = {name: [token, "alice", ",".join(map(str, ids[name]))] for name in running}
        return alternate(opts, opts.scenario, running, args)
    finally:
        for server in running.values():
            server.stop()


def _table(results: dict[str, list[wrk.Result]]) -> str:
    lines = ["| server | req/s | vs ours | p50 ms | p99 ms | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    base = statistics.median(r.rps for r in results["ours"])
    for name, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        lines.append(
            f"| {name} | {rps:,.0f} | {rps / base:.2f}x | {statistics.median(r.p50_us for r in runs) / 1000:.1f}"
            f" | {statistics.median(r.p99_us for r in runs) / 1000:.1f} | {sum(r.non_2xx for r in runs)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
