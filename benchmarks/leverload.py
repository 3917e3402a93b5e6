"""What each lever gains under load: ours as it is, without each lever, and another commit, side by side.

    nox -s bench -- levers list [--levers token-cache] [--against main] [--duration 5 --runs 3] [--tokens eddsa]

Serves ours as it is, ours with each lever switched off (and with all of
them, benchmarks/levers.py), and with `--against REF` that git ref of the
repository (benchmarks/trees.py), each on its own database, alternating run
by run as the bench does; prints wrk's medians and each variant's throughput
against ours as it is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import levers, postgres, servers, trees, wrk
from benchmarks.bench import alternate
from benchmarks.servers import Server
from benchmarks.tokens import KINDS, Provider


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- levers", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["list", "create", "get", "toggle"])
    parser.add_argument("--levers", default=",".join(levers.SWITCHES), help="from: " + ", ".join(levers.SWITCHES))
    parser.add_argument("--against", metavar="REF", help="a git ref served beside ours")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per server")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    opts = parser.parse_args(argv)
    chosen = levers.chosen(opts.levers)
    variants: dict[str, list[str]] = {"ours": [], **{f"ours - {name}": [name] for name in chosen}}
    if len(chosen) > 1:
        variants["ours - all"] = chosen
    with postgres.BenchPostgres() as pg, Provider() as provider:
        urls = {name: pg.create(f"lever{index}") for index, name in enumerate([*variants, "against"])}
        running = {name: _variant(urls[name], provider, off) for name, off in variants.items()}
        if not opts.against:
            results = _load(opts, running, urls, provider.token(opts.tokens))
        else:
            with trees.checkout(opts.against) as tree:
                label = trees.describe(opts.against)
                running[label], urls[label] = _variant(urls["against"], provider, [], tree), urls["against"]
                results = _load(opts, running, urls, provider.token(opts.tokens))
    print(_table(results))
    return 0


def _variant(url: str, provider: Provider, off: list[str], tree: Path = trees.ROOT) -> Server:
    env = {**servers.our_env(url, provider), **levers.env_without(off)}
    return Server("ours", trees.python_with_backend_from(tree, "backend"), env, ready_path="/ready")


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
