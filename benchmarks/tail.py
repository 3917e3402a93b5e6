"""Where the slow requests wait: ours (its fair line in front of the pool) and the peer.

    nox -s bench -- tail list [--duration 5 --runs 3] [--tokens eddsa|hs256]

Runs `python -m benchmarks.probe` beside the peer, alternating run by run,
and prints what wrk saw (req/s, p50, p90, p99) and the percentiles of each
part of our requests' time: the wait for a connection (the line), the whole
app; and the event loop's lag under load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks import postgres, servers, wrk
from benchmarks.bench import alternate
from benchmarks.servers import Server
from benchmarks.tokens import KINDS, Provider

VARIANTS: dict[str, tuple[str, ...]] = {"ours": ()}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- tail", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["list", "create", "get", "toggle"])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per server")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    opts = parser.parse_args(argv)
    variants = dict(VARIANTS)
    probes = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    with postgres.BenchPostgres() as pg, Provider() as provider:
        urls = {"ours": pg.create("ours"), "peer": pg.create("peer")}
        running = {
            name: _probed(urls["ours"], provider, flags, probes / f"{index}.json")
            for index, (name, flags) in enumerate(variants.items())
        }
        if opts.scenario in ("list", "create"):
            running["peer"] = servers.peer(urls["peer"], provider, opts.tokens)
        results = _load(opts, running, urls, provider.token(opts.tokens))
    print(_wrk_table(results))
    for index, name in enumerate(variants):
        print(f"\n{name}, per request (ms):\n")
        print(_probe_table(json.loads((probes / f"{index}.json").read_text())))
    return 0


def _probed(url: str, provider: Provider, flags: tuple[str, ...], out: Path) -> Server:
    env = {**servers.our_env(url, provider), "PROBE_OUT": str(out)}
    return Server("ours", [sys.executable, "-m", "benchmarks.probe", *flags], env, ready_path="/ready")


def _load(
    opts: argparse.Namespace, running: dict[str, Server], urls: dict[str, str], token: str
) -> dict[str, list[wrk.Result]]:
    try:
        for server in running.values():
            server.start()
        ids = {name: postgres.reseed(url)["alice"] for name, url in urls.items()}
        args = {
            name: [token, "alice", ",".join(map(str, ids["peer" if name == "peer" else "ours"]))] for name in running
        }
        return alternate(opts, opts.scenario, running, args)
    finally:
        for server in running.values():
            server.stop()  # SIGTERM: the probe writes its samples on the way out


def _wrk_table(results: dict[str, list[wrk.Result]]) -> str:
    lines = ["| server | req/s | p50 ms | p90 ms | p99 ms | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    for name, runs in results.items():
        median = statistics.median
        lines.append(
            f"| {name} | {median(r.rps for r in runs):,.0f} | {median(r.p50_us for r in runs) / 1000:.1f}"
            f" | {median(r.p90_us for r in runs) / 1000:.1f} | {median(r.p99_us for r in runs) / 1000:.1f}"
            f" | {sum(r.non_2xx for r in runs)} |"
        )
    return "\n".join(lines)


def _probe_table(samples: dict[str, list[float]]) -> str:
    lines = ["| part | n | p50 | p90 | p99 | p99.9 | max |", "|---|---:|---:|---:|---:|---:|---:|"]
    for part in ("line", "app", "lag"):
        values = sorted(samples[part])
        if values:
            shown = " | ".join(f"{_at(values, q) * 1000:.1f}" for q in (0.5, 0.9, 0.99, 0.999, 1.0))
            lines.append(f"| {part} | {len(values):,} | {shown} |")
    return "\n".join(lines)


def _at(values: list[float], quantile: float) -> float:
    return values[min(len(values) - 1, int(len(values) * quantile))]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
