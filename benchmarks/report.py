"""Medians, ratios, targets: the table printed and written to results/latest.md."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence

from benchmarks.wrk import Result

# Per token kind, (scenario, minimum ours/peer req/s ratio): issue 17's for EdDSA, the earlier ones for HS256.
TARGETS: dict[str, dict[str, float]] = {"eddsa": {"list": 4.0, "create": 3.0}, "hs256": {"list": 2.0, "create": 1.5}}
# Per token kind, (scenario, minimum ours/ceiling req/s ratio).
CEILING_TARGETS: dict[str, dict[str, float]] = {"eddsa": {"list": 0.5}, "hs256": {}}


@dataclasses.dataclass(frozen=True)
class Summary:
    """The medians of one server's runs of one scenario."""

    scenario: str
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    runs: int
    rps_min: float = 0.0  # the slowest and fastest run: the noise band
    rps_max: float = 0.0

    @classmethod
    def of(cls, scenario: str, server: str, results: Sequence[Result]) -> Summary:
        return cls(
            scenario,
            server,
            statistics.median(r.rps for r in results),
            statistics.median(r.p50_us for r in results) / 1000,
            statistics.median(r.p99_us for r in results) / 1000,
            sum(r.non_2xx for r in results),
            sum(r.socket_errors for r in results),
            len(results),
            min(r.rps for r in results),
            max(r.rps for r in results),
        )


def table(summaries: Iterable[Summary]) -> str:
    lines = [
        "| scenario | server | req/s | runs: slowest-fastest req/s | p50 ms | p99 ms | non-2xx "
        "| socket errors/timeouts |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.scenario} | {s.server} | {s.rps:,.0f} | {s.rps_min:,.0f}-{s.rps_max:,.0f} | {s.p50_ms:.1f} "
            f"| {s.p99_ms:.1f} | {s.non_2xx} | {s.socket_errors} |"
        )
    return "\n".join(lines)


def ratios(
    summaries: Mapping[tuple[str, str], Summary],
    *,
    ceilings: Mapping[tuple[str, str], Summary],
    targets: Mapping[str, float],
    ceiling_targets: Mapping[str, float],
) -> str:
    """Ours against the peer and the ceiling (looked up in `ceilings`: the same run's first pass)."""
    lines = [
        "| scenario | ours/peer req/s | target | ours/ceiling req/s | ceiling Hypercorn/uvicorn "
        "| p99 ours vs peer (ms) | verdict |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    scenarios = dict.fromkeys(scenario for scenario, server in summaries if server == "ours")
    for scenario in scenarios:
        ours = summaries[(scenario, "ours")]
        peer = summaries.get((scenario, "peer"))
        ceiling = ceilings.get((scenario, "ceiling"))
        uvicorn = ceilings.get((scenario, "ceiling-uvicorn"))
        hypercorn = _ratio(ceiling, uvicorn)
        to_peer = ours.rps / peer.rps if peer and peer.rps else None
        to_ceiling = ours.rps / ceiling.rps if ceiling and ceiling.rps else None
        target, floor = targets.get(scenario), ceiling_targets.get(scenario)
        p99 = f"{ours.p99_ms:.1f} vs {peer.p99_ms:.1f}" if peer else "-"
        verdict = _verdict(ours, peer, to_peer=to_peer, target=target, to_ceiling=to_ceiling, floor=floor)
        shown = f"{to_peer:.2f}x" if to_peer is not None else "-"
        wanted = f">= {target:.1f}x" if target else "-"
        against = f"{to_ceiling:.2f}x" if to_ceiling is not None else "-"
        against += f" (target >= {floor:.1f}x)" if floor else ""
        lines.append(f"| {scenario} | {shown} | {wanted} | {against} | {hypercorn} | {p99} | {verdict} |")
    return "\n".join(lines)


def _ratio(top: Summary | None, bottom: Summary | None) -> str:
    return f"{top.rps / bottom.rps:.2f}x" if top and bottom and bottom.rps else "-"


def _verdict(
    ours: Summary,
    peer: Summary | None,
    *,
    to_peer: float | None,
    target: float | None,
    to_ceiling: float | None,
    floor: float | None,
) -> str:
    problems = []
    if peer is not None and not peer.rps:
        problems.append("the peer answered nothing: no ratio")
    if ours.non_2xx or ours.socket_errors:
        problems.append(f"{ours.non_2xx} non-2xx, {ours.socket_errors} socket errors")
    if target is not None and peer is not None and peer.rps and ours.p99_ms >= peer.p99_ms:
        problems.append("p99 not below the peer's")
    if target is not None and to_peer is not None and to_peer < target:
        problems.append(f"below {target:.1f}x the peer")
    if floor is not None and to_ceiling is not None and to_ceiling < floor:
        problems.append(f"below {floor:.1f}x the ceiling")
    if problems:
        return "; ".join(problems)
    return "met" if target is not None or floor is not None else "no errors (no ratio target)"
