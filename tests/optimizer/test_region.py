"""Region mode: partition by zone with a shared pool, parallel parts, merge, second pass."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from optimizer import (
    BodyType,
    GeoPoint,
    Problem,
    Request,
    TimeWindow,
    UnservedReason,
    Vehicle,
    Visit,
    check,
    solve_region,
)
from optimizer.region import PASS2_VEHICLES_PER_REQUEST, _pass2_problem, partition
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


def test_second_pass_offers_each_leftover_its_nearest_able_vehicles() -> None:
    """Pass 2 gets the nearest vehicles that could serve a leftover alone, not every unused
    one (all of them made OR-Tools run for minutes at city scale)."""
    here = GeoPoint(22.82, 108.38)
    window = TimeWindow(3600.0, 5400.0)
    request = Request(
        "r1",
        pickup=Visit(here, window),
        dropoff=Visit(GeoPoint(22.85, 108.40)),
        passengers=3,
        allowed_body_types=frozenset({BodyType.SEDAN}),
    )

    def car(i: int, km: float, **kw: Any) -> Vehicle:
        kw.setdefault("seats", 4)
        return Vehicle(f"v{i:02d}", depot=GeoPoint(22.82 + km / 111.2, 108.38), **kw)

    vehicles = [car(i, 1.0 + i) for i in range(30)]  # v00 nearest, v29 farthest
    vehicles[0] = car(0, 1.0, body_type=BodyType.BUS)  # nearest, but not allowed
    vehicles[1] = car(1, 2.0, available=TimeWindow(40_000.0, 80_000.0))  # free too late
    vehicles[2] = car(2, 3.0, seats=2)  # too small
    second = Problem(requests=(request,), vehicles=tuple(vehicles), horizon=TimeWindow(0, 86_400))
    restricted, hopeless = _pass2_problem(second, None)
    ids = [v.id for v in restricted.vehicles]
    assert ids == [f"v{i:02d}" for i in range(3, 3 + PASS2_VEHICLES_PER_REQUEST)]
    assert hopeless == []

    far = replace(request, pickup=Visit(GeoPoint(30.0, 120.0), window))  # ~1,500 km away
    restricted, hopeless = _pass2_problem(replace(second, requests=(far,)), None)
    assert restricted.vehicles == ()
    assert [(u.request_id, u.reason) for u in hopeless] == [("r1", UnservedReason.TIME_WINDOW)]
