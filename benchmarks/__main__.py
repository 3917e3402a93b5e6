"""`python -m benchmarks [OPTIONS]` runs the benchmark (`--help`); `python -m benchmarks TOOL ...` runs a tool:

- `profile SCENARIO`: py-spy on ours under load, the time per request by part (benchmarks/profile.py);
- `cost SCENARIO`: our app's CPU per request, no HTTP; `--compare` without each lever, `--against REF`
  another commit's backend (benchmarks/cost.py);
- `pieces`: each piece of a request timed alone (benchmarks/pieces.py);
- `levers SCENARIO`: ours with each lever switched off, and another commit (`--against REF`), under load
  (benchmarks/leverload.py);
- `startup`: `inv run` to the first /health, by import (benchmarks/startup.py);
- `sqlcost`: one list query through each database layer (benchmarks/sqlcost.py);
- `tail SCENARIO`: where slow requests wait (benchmarks/tail.py);
- `roundtrips`: database round trips per request, ours and the peer's (benchmarks/roundtrips.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from benchmarks import bench, cost, leverload, pieces, profile, roundtrips, sqlcost, startup, tail

TOOLS: dict[str, Callable[[Sequence[str]], int]] = {
    "profile": profile.main,
    "cost": cost.main,
    "pieces": pieces.main,
    "levers": leverload.main,
    "startup": startup.main,
    "sqlcost": sqlcost.main,
    "tail": tail.main,
    "roundtrips": roundtrips.main,
}

if __name__ == "__main__":
    args = sys.argv[1:]
    tool = TOOLS.get(args[0]) if args else None
    sys.exit(tool(args[1:]) if tool else bench.main(args))
