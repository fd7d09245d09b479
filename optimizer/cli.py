"""`fleet solve FILE --format lilim|solomon --time-limit S --json` as a plain function."""

from __future__ import annotations

import json
import sys

from optimizer.checker import check
from optimizer.readers import read_instance
from optimizer.solver import solve


def solve_file(path: str, fmt: str, time_limit: float, as_json: bool, seed: int = 0) -> int:
    """Solves a literature instance and prints the routes; returns the exit code.

    JSON: `{"vehicles": k, "distance": d, "routes": [[node ids, depot excluded], ...]}`,
    distance in double precision recomputed by the independent checker. Exit code 0 when
    every task is served and the checker finds nothing, 1 otherwise, 2 on a bad input.
    """
    try:
        instance = read_instance(path, fmt)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plan = solve(instance.problem, time_limit=time_limit, seed=seed)
    report = check(instance.problem, plan, require_all=True)
    routes = [[instance.node_ids[(s.request_id, s.kind)] for s in r.stops] for r in plan.routes]
    if as_json:
        print(
            json.dumps({"vehicles": report.vehicles, "distance": report.distance, "routes": routes})
        )
    else:
        print(f"{instance.name}: {report.vehicles} vehicles, distance {report.distance:.2f}")
        for i, route in enumerate(routes, 1):
            print(f"  route {i}: {' '.join(map(str, route))}")
    for violation in report.violations:
        print(
            f"violation: {violation.kind} {violation.subject}: {violation.detail}", file=sys.stderr
        )
    return 0 if report.ok else 1
