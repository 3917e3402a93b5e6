"""Where our server's time goes under load: py-spy while wrk runs a scenario.

    nox -s bench -- profile list [--tokens eddsa|hs256]    (or: python -m benchmarks.profile list)

py-spy samples the running server from outside (no code change, no
slowdown worth the name); the collapsed stacks are summed into the share of
samples each function is on the stack for ("inclusive") and written beside
the results (benchmarks/results/profile-SCENARIO-TOKENS.txt); the raw stacks
(loadable in speedscope.app) stay in a temporary folder.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from benchmarks import parts, postgres, servers, wrk
from benchmarks.bench import RESULTS, SCENARIOS
from benchmarks.servers import Server
from benchmarks.tokens import KINDS, Provider

TOP = 40


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("scenario", choices=[name for name in SCENARIOS if name != "health"] + ["health"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/profile-SCENARIO-TOKENS.txt")
    opts = parser.parse_args(argv)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        url = pg.create("profile")
        ids = postgres.reseed(url)["alice"]
        server = servers.ours(url, provider)
        try:
            server.start()
            args = [provider.token(opts.tokens), "alice", ",".join(map(str, ids))]
            wrk.run(server.url, opts.scenario, 2, opts.connections, args)
            raw, result, cpu = _record(opts, server, args)
        finally:
            server.stop()
    cpu_us = cpu / result.requests * 1e6
    summary = summarize(raw.read_text(), f"{opts.scenario} with {opts.tokens} tokens", result, cpu_us)
    target = opts.output or RESULTS / f"profile-{opts.scenario}-{opts.tokens}.txt"
    target.write_text(summary)
    print(summary)
    print(f"written to {target}; the raw stacks (for speedscope.app) are in {raw}")
    return 0


def _record(opts: argparse.Namespace, server: Server, args: list[str]) -> tuple[Path, wrk.Result, float]:
    """py-spy's stacks during one wrk run, wrk's result, and the server's CPU seconds in it."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = Path(tempfile.mkdtemp()) / "stacks.txt"
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    record = ["record", "--pid", str(server.process.pid), "--format", "raw", "--rate", "250"]
    spy = subprocess.Popen(
        [py_spy, *record, "--duration", str(opts.seconds), "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    before = process.cpu_times()
    result = wrk.run(server.url, opts.scenario, opts.seconds, opts.connections, args)
    after = process.cpu_times()
    spy.wait(opts.seconds + 30)
    return raw, result, (after.user - before.user) + (after.system - before.system)


def summarize(stacks: str, scenario: str, result: wrk.Result, cpu_us: float) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    samples = list(_samples(stacks))
    total = sum(count for _, count in samples) or 1
    for names, count in samples:
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [
        f"py-spy profile of ours, scenario {scenario}: {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.1f} ms;"
        f" {total} samples; the server used {cpu_us:,.0f} us of CPU per request (user + system)",
        "",
        parts.table(samples, cpu_us),
        "",
        "inclusive %  function (module:line)",
    ]
    lines += [f"{100 * n / total:10.1f}  {name}" for name, n in inclusive.most_common(TOP)]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in own.most_common(TOP // 2)]
    return "\n".join(lines) + "\n"


def _samples(stacks: str) -> Iterator[tuple[list[str], int]]:
    for line in stacks.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            yield [_short(frame) for frame in frames.split(";")], int(count)


def _short(frame: str) -> str:
    # py-spy raw frames: "function (path/to/module.py:line)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").split("site-packages/")[-1].split(f"{servers.ROOT}/")[-1]
    path = path.rsplit(":", 1)[0]
    return f"{name} ({path})"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
