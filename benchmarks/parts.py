"""The parts of a request that py-spy's samples fall in, for benchmarks/profile.py.

Each sample is walked from its innermost frame outwards; the first frame that
belongs to a part names the part. So `json.loads` called by joserfc counts as
token work, and a socket write under Hypercorn as a socket write, not as
Hypercorn. Frames are py-spy's "function (path:line)" with the site-packages
prefix cut.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

Rule = tuple[str, Callable[[str], bool]]


def _in(*paths: str) -> Callable[[str], bool]:
    return lambda frame: any(f"({path}" in frame for path in paths)


def _named(*functions: str) -> Callable[[str], bool]:
    return lambda frame: frame.split(" (", 1)[0] in functions


# uvloop's C code (epoll, socket reads, callbacks) shows as its Python caller, Runner.run.
EVENT_LOOP = "event loop: uvloop's C code (epoll, socket reads, callbacks)"
H11_SERIALIZE = "HTTP/1.1 serialize the response (h11)"
H11_PARSE = "HTTP/1.1 parse the request (h11)"
# In order: the first rule a frame meets wins; innermost frames are tried first.
RULES: tuple[Rule, ...] = (
    (EVENT_LOOP, _in("backend/server.py", "backend/__main__.py", "asyncio/runners.py", "uvloop/")),
    ("request id: uuid4()", _in("uuid.py")),
    ("token: Ed25519 signature check (OpenSSL via joserfc)", _in("joserfc/_rfc8037/", "cryptography/")),
    ("token: JWKS key lookup (backend/jwks.py)", _in("backend/jwks.py")),
    ("token: the verified-token cache (backend/tokencache.py, hashlib)", _in("backend/tokencache.py", "hashlib")),
    ("token: split, base64, JSON, claims (joserfc, backend/verifier.py)", _in("joserfc/", "backend/verifier.py")),
    ("JSON encode (msgspec)", _named("JSONResponse.render")),
    (
        "pool acquire/release and the line (backend/pgpool.py; databases)",
        _in("backend/pgpool.py", "databases/", "asyncpg/pool.py"),
    ),
    ("SQL: asyncpg send, wait, rows", _in("asyncpg/")),
    ("the retry and timeout wrapper (backend/database.py)", _in("backend/database.py", "asyncio/timeouts.py")),
    (
        "queries: statements, bind values, rows to tasks (queries.py, pgdriver.py, pgstatements.py)",
        _in("backend/queries.py", "backend/pgdriver.py", "backend/pgstatements.py"),
    ),
    (H11_PARSE, _in("h11/")),
    ("socket writes (asyncio streams, transport)", _in("asyncio/streams.py", "asyncio/transports.py")),
    (
        "our middleware (request id, headers, CORS, body deadline, shutdown)",
        _in(
            "backend/middleware.py",
            "backend/cors.py",
            "backend/bodydeadline.py",
            "backend/shutdown.py",
            "starlette/middleware/cors.py",
            "starlette/datastructures",
        ),
    ),
    ("Starlette routing, Request, Response, error middleware", _in("starlette/")),
    ("Hypercorn protocol, a task per request", _in("hypercorn/")),
    (
        "query and body decoding (backend/payloads.py, validation.py, schemas.py)",
        _in("backend/payloads.py", "backend/validation.py", "backend/schemas.py", "msgspec"),
    ),
    ("endpoints and the rest of backend/", _in("backend/")),
)
OTHER = "asyncio tasks, locks, futures and the rest"


def part_of(frames: list[str]) -> str:
    """The part a sample belongs to; `frames` outermost first, as py-spy writes them."""
    for frame in reversed(frames):
        for part, belongs in RULES:
            if belongs(frame):
                if part == H11_PARSE and any("_send_h11_event" in outer for outer in frames):
                    return H11_SERIALIZE
                return part
    return OTHER


def table(samples: Iterable[tuple[list[str], int]], cpu_us_per_request: float) -> str:
    """Each part's share of the samples, and that share of the CPU time per request."""
    parts: collections.Counter[str] = collections.Counter()
    for frames, count in samples:
        parts[part_of(frames)] += count
    total = sum(parts.values()) or 1
    lines = [
        f"where a request's {cpu_us_per_request:,.0f} us of server CPU goes (share of samples x CPU per request;",
        "py-spy counts a thread the kernel preempted as busy where it stopped: on a busy machine that inflates",
        "the system calls that wake another process, socket writes to wrk and to PostgreSQL above all):",
        "",
        "    share   us/req  part",
    ]
    for part, count in parts.most_common():
        share = count / total
        lines.append(f"  {100 * share:6.1f}%  {share * cpu_us_per_request:7.0f}  {part}")
    return "\n".join(lines)
