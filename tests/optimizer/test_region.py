"""Region mode: partition by zone with a shared pool, parallel parts, merge, second pass."""

from __future__ import annotations

from optimizer import check, solve_region
from optimizer.region import partition
from optimizer.synthetic import city_day


def test_partition_keeps_everything_once() -> None:
    problem = city_day(requests=120, vehicles=60, zones=3, seed=1)
    parts = partition(problem)
    assert sorted(r.id for p in parts.values() for r in p.requests) == sorted(
        r.id for r in problem.requests
    )
    assert sorted(v.id for p in parts.values() for v in p.vehicles) == sorted(
        v.id for v in problem.vehicles
    )
    for zone, part in parts.items():
        assert all(r.zone == zone for r in part.requests)
        assert all(v.zone in (zone, None) for v in part.vehicles)


def test_small_city_in_two_workers_keeps_every_rule() -> None:
    problem = city_day(requests=90, vehicles=45, zones=3, seed=2)
    plan = solve_region(problem, time_limit=6.0, workers=2)
    report = check(problem, plan)
    assert report.ok, report.violations[:5]
    served = len(problem.requests) - len(plan.unserved)
    assert served >= 0.9 * len(problem.requests)
    on_routes = {s.request_id for route in plan.routes for s in route.stops}
    assert {a.request_id for a in plan.assignments} == on_routes
    assert len(on_routes) == served
