"""`python -m benchmarks [OPTIONS]` runs the benchmark (`--help`);
`python -m benchmarks profile SCENARIO` profiles ours under load with py-spy;
`python -m benchmarks sqlcost` times one list query through each database layer;
`python -m benchmarks cost SCENARIO` measures our app's CPU per request, no HTTP;
`python -m benchmarks tail SCENARIO` shows where slow requests wait (benchmarks/tail.py);
`python -m benchmarks roundtrips` counts database round trips per request, ours and the peer's.
"""

from __future__ import annotations

import sys

from benchmarks import bench, cost, profile, roundtrips, sqlcost, tail

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["profile"]:
        sys.exit(profile.main(args[1:]))
    if args[:1] == ["cost"]:
        sys.exit(cost.main(args[1:]))
    if args[:1] == ["sqlcost"]:
        sys.exit(sqlcost.main(args[1:]))
    if args[:1] == ["tail"]:
        sys.exit(tail.main(args[1:]))
    if args[:1] == ["roundtrips"]:
        sys.exit(roundtrips.main(args[1:]))
    sys.exit(bench.main(args))
