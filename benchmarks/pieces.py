"""Each piece of a request's work timed alone, in process: what a lever can save at most.

    nox -s bench -- pieces [--rounds 2000]

- verifying one token, per kind: our `TokenVerifier` (a token seen before,
  answered by the verified-token cache, and a full verification), joserfc
  alone, PyJWT (the peer's way, with and without `PyJWKClient`'s lookup), the
  `cryptography` primitive (or `hmac`) with the few checks around it; and how
  often one full verification of ours splits, base64-decodes and parses the
  token;
- a request id (`uuid4` before, our counter now), the JSON of a page of 20 tasks;
- h11 parsing the list request and writing its response;
- our middleware around a bare ASGI endpoint, and our whole app
  against bare Starlette on `/health`;
- a pooled connection's acquire and release (`databases`, asyncpg's pool),
  and the line in front of the pool (needs PostgreSQL, as the bench).

Microseconds of this process's CPU per call (time the machine gives to other
processes does not count), the lowest of 9 batches (timeit's rule: the slower
batches measure the neighbours, not the code); the pieces of a section take
turns batch by batch, so a busy moment hits them alike. One process, no
concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks import piecework, postgres
from benchmarks.tokens import Provider


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- pieces", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="calls per batch")
    opts = parser.parse_args(argv)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        url = pg.create("pieces")
        postgres.reseed(url)
        print(asyncio.run(_report(provider, url, opts.rounds)))
    return 0


async def _report(provider: Provider, url: str, rounds: int) -> str:
    closers: list[Callable[[], Awaitable[None]]] = []
    sections = [
        ("verify one EdDSA token (Better Auth's, 12 claims)", await piecework.eddsa(provider)),
        ("verify one HS256 token (the same claims)", await piecework.hs256(provider)),
        ("the rest of a request, piece by piece", await piecework.http_pieces(provider)),
        ("the database path, no query (PostgreSQL on loopback)", await piecework.pool_pieces(url, closers)),
    ]
    lines = [f"us of CPU per call, the lowest of 9 batches of {rounds}:"]
    try:
        for title, pieces in sections:
            lines += ["", f"{title}:"]
            timings = await _timed_in_turns(pieces, rounds)
            lines += [f"  {timing:8.1f}  {name}" for (name, _), timing in zip(pieces, timings, strict=True)]
    finally:
        for close in closers:
            await close()
    lines += ["", "one verification of ours, calls per token (cProfile):", *await piecework.parse_counts(provider)]
    return "\n".join(lines)


async def _timed_in_turns(pieces: piecework.Pieces, rounds: int) -> list[float]:
    """CPU microseconds per call of each piece; a batch of each in turn, the first as warm-up."""
    batches: list[list[float]] = [[] for _ in pieces]
    for _ in range(10):
        for timings, (_, call) in zip(batches, pieces, strict=True):
            timings.append(await _batch(call, rounds))
    return [min(timings[1:]) for timings in batches]


async def _batch(call: Callable[[], Any], rounds: int) -> float:
    began = time.process_time()
    for _ in range(rounds):
        result = call()
        if isinstance(result, Awaitable):
            await result
    return (time.process_time() - began) / rounds * 1e6


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
