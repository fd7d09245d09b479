"""The synthetic city day: 2,000 requests, 800 vehicles, solved in region mode, checked."""

from __future__ import annotations

import time
from collections import Counter

from optimizer.checker import check
from optimizer.region import solve_region
from optimizer.synthetic import city_day


def run_city(*, requests: int, vehicles: int, time_limit: float, seed: int) -> list[str]:
    problem = city_day(requests=requests, vehicles=vehicles, seed=seed)
    started = time.monotonic()
    plan = solve_region(problem, time_limit=time_limit, seed=seed, workers=2)
    seconds = time.monotonic() - started
    check_started = time.monotonic()
    report = check(problem, plan)
    check_s = time.monotonic() - check_started
    reasons = Counter(u.reason.value for u in plan.unserved)
    served = len(problem.requests) - len(plan.unserved)
    lines = [
        f"city day {problem.name}: {len(problem.requests)} requests, "
        f"{len(problem.vehicles)} vehicles, limit {time_limit:g}s",
        f"  wall {seconds:.1f}s (target <= 60s); served {served}/{len(problem.requests)}; "
        f"vehicles used {plan.vehicles_used}; distance {plan.distance / 1000:.0f} km",
        f"  unserved by reason: {dict(reasons) or 'none'}",
        f"  checker: {'OK, every hard rule kept' if report.ok else report.violations[:5]} "
        f"({len(report.violations)} violations, {check_s:.1f}s); stats {dict(plan.stats)}",
    ]
    for line in lines:
        print(line, flush=True)
    return lines
