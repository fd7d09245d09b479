"""Tiny hand-checkable instances: every hard rule and every unserved reason."""

from __future__ import annotations

import time

from optimizer import (
    XY,
    BodyType,
    Driver,
    EnergyType,
    GeoPoint,
    Licence,
    Plan,
    Problem,
    Request,
    StopKind,
    StopRef,
    TimeWindow,
    UnservedReason,
    Vehicle,
    Visit,
    check,
    insert_urgent,
    solve,
)

DEPOT = XY(0, 0)
LIMIT = 0.5
HORIZON = TimeWindow(0, 1000)


def trip(
    rid: str,
    src: tuple[float, float],
    dst: tuple[float, float],
    *,
    n: int = 1,
    pickup_window: tuple[float, float] | None = None,
    dropoff_window: tuple[float, float] | None = None,
    types: set[BodyType] | None = None,
    priority: int = 1,
) -> Request:
    return Request(
        rid,
        pickup=Visit(XY(*src), TimeWindow(*pickup_window) if pickup_window else None),
        dropoff=Visit(XY(*dst), TimeWindow(*dropoff_window) if dropoff_window else None),
        passengers=n,
        allowed_body_types=frozenset(types) if types else None,
        priority=priority,
    )


def car(vid: str, seats: int = 4, **kw: object) -> Vehicle:
    return Vehicle(vid, seats=seats, depot=kw.pop("depot", DEPOT), **kw)  # type: ignore[arg-type]


def problem(requests: list[Request], vehicles: list[Vehicle], **kw: object) -> Problem:
    return Problem(tuple(requests), tuple(vehicles), horizon=HORIZON, **kw)  # type: ignore[arg-type]


def solved(p: Problem, **kw: object) -> Plan:
    plan = solve(p, time_limit=LIMIT, **kw)  # type: ignore[arg-type]
    report = check(p, plan)
    assert report.ok, report.violations
    return plan


def reasons(plan: Plan) -> dict[str, UnservedReason]:
    return {u.request_id: u.reason for u in plan.unserved}


def test_capacity_never_exceeded_and_both_served() -> None:
    p = problem(
        [
            trip("r1", (10, 0), (20, 0), n=3, pickup_window=(0, 100)),
            trip("r2", (10, 1), (20, 1), n=3, pickup_window=(0, 100)),
        ],
        [car("v", seats=4)],
    )
    plan = solved(p)
    assert not plan.unserved
    (route,) = plan.routes
    assert max(s.load for s in route.stops) <= 4
    kinds = [s.kind for s in route.stops]
    assert kinds == [StopKind.PICKUP, StopKind.DROPOFF, StopKind.PICKUP, StopKind.DROPOFF]


def test_shared_ride_when_seats_allow() -> None:
    p = problem(
        [trip("r1", (10, 0), (50, 0), n=2), trip("r2", (11, 0), (51, 0), n=2)],
        [car("a", seats=4), car("b", seats=4)],
    )
    plan = solved(p)
    assert plan.vehicles_used == 1
    assert max(s.load for s in plan.routes[0].stops) == 4


def test_unreachable_time_window_is_unserved_with_reason() -> None:
    p = problem([trip("far", (100, 0), (110, 0), pickup_window=(0, 50))], [car("v")])
    plan = solved(p)
    assert reasons(plan) == {"far": UnservedReason.TIME_WINDOW}
    assert plan.routes == ()


def test_body_type_rules() -> None:
    group = trip("g", (10, 0), (20, 0), n=10, types={BodyType.MINIBUS})
    minibus = car("mb", seats=19, body_type=BodyType.MINIBUS)
    plan = solved(problem([group], [car("sedan"), minibus]))
    assert plan.vehicle_of("g") == "mb"
    assert "mb" in plan.assignments[0].why and plan.assignments[0].eligible_vehicles == 1

    plan = solved(problem([group], [car("sedan")]))
    assert reasons(plan) == {"g": UnservedReason.NO_ALLOWED_BODY_TYPE}

    crowd = trip("c", (10, 0), (20, 0), n=25, types={BodyType.MINIBUS})
    plan = solved(problem([crowd], [minibus]))
    assert reasons(plan) == {"c": UnservedReason.NOT_ENOUGH_SEATS}


def test_nev_range_caps_route_distance() -> None:
    # Planar units are metres for range purposes: 0.05 km = 50 units; the trip needs 80.
    bev = car("bev", energy=EnergyType.BEV, range_km=0.05)
    ice = car("ice")
    r = trip("r", (30, 0), (40, 0))
    plan = solved(problem([r], [bev, ice], vehicle_cost=0.0))
    assert plan.vehicle_of("r") == "ice"
    plan = solved(problem([r], [bev]))
    assert reasons(plan) == {"r": UnservedReason.RANGE}
    # A PHEV can burn fuel: its electric range is not a cap.
    phev = car("phev", energy=EnergyType.PHEV, range_km=0.05)
    assert solved(problem([r], [phev])).vehicle_of("r") == "phev"


def test_driving_limit_and_shift() -> None:
    r = trip("r", (30, 0), (40, 0))
    tired = car("v", driver_id="d")
    plan = solved(problem([r], [tired], drivers=(Driver("d", Licence.C1, max_driving=50.0),)))
    assert reasons(plan) == {"r": UnservedReason.DRIVING_LIMIT}
    late_shift = (Driver("d", Licence.C1, shift=TimeWindow(500, 1000)),)
    early = trip("e", (30, 0), (40, 0), pickup_window=(0, 100))
    plan = solved(problem([early], [tired], drivers=late_shift))
    assert reasons(plan) == {"e": UnservedReason.TIME_WINDOW}


def test_priority_decides_who_is_left_out() -> None:
    right = trip("right", (10, 0), (20, 0), pickup_window=(0, 10), dropoff_window=(0, 25))
    left = trip("left", (-10, 0), (-20, 0), pickup_window=(0, 10), dropoff_window=(0, 25))
    vip = Request(left.id, left.dropoff, left.pickup, priority=5)
    plan = solved(problem([right, vip], [car("v")]))
    assert plan.vehicle_of("left") == "v"
    assert reasons(plan) == {"right": UnservedReason.NO_CAPACITY_LEFT}


def test_single_stop_requests_load_from_the_depot() -> None:
    # VRPTW-style deliveries mixed with a pickup-and-delivery pair on 4 seats.
    parcel = Request("parcel", dropoff=Visit(XY(30, 0)), passengers=3)
    ride = trip("ride", (10, 0), (20, 0), n=2)
    plan = solved(problem([parcel, ride], [car("v", seats=4)]))
    # Both fit only if the ride happens after the parcel is dropped: 3 + 2 > 4.
    if plan.vehicle_of("parcel") == plan.vehicle_of("ride"):
        stops = [s.request_id for s in plan.routes[0].stops]
        assert stops.index("parcel") < stops.index("ride")
    assert not plan.unserved


def test_committed_stops_stay_on_their_vehicle_in_order() -> None:
    a = trip("a", (50, 0), (60, 0))
    b = trip("b", (5, 0), (6, 0))
    far = car(
        "far",
        depot=XY(100, 0),
        committed=(StopRef("b", StopKind.PICKUP), StopRef("b", StopKind.DROPOFF)),
    )
    plan = solved(problem([a, b], [car("near"), far]))
    assert plan.vehicle_of("b") == "far"
    assert "committed" in next(x.why for x in plan.assignments if x.request_id == "b")


def test_initial_plan_is_used_as_a_start() -> None:
    p = problem(
        [trip(f"r{i}", (i * 10, 0), (i * 10 + 5, 5)) for i in range(6)], [car("a"), car("b")]
    )
    first = solved(p)
    again = solved(p, initial=first, seed=1)
    assert (again.vehicles_used, round(again.distance, 6)) <= (
        first.vehicles_used,
        round(first.distance, 6),
    )


def test_geographic_problem_with_default_provider() -> None:
    office = GeoPoint(26.08, 119.30)
    requests = [
        Request(
            f"r{i}",
            pickup=Visit(GeoPoint(26.05 + i * 0.01, 119.28), TimeWindow(8 * 3600, 9 * 3600), 120),
            dropoff=Visit(office, TimeWindow(8 * 3600, 11 * 3600), 60),
            passengers=2,
        )
        for i in range(4)
    ]
    vehicles = [Vehicle(f"v{i}", seats=4, depot=GeoPoint(26.06, 119.31)) for i in range(3)]
    p = Problem(tuple(requests), tuple(vehicles), vehicle_cost=5000.0)
    plan = solve(p, time_limit=LIMIT)
    assert check(p, plan).ok
    assert not plan.unserved
    assert all(8 * 3600 <= s.start <= 11 * 3600 for r in plan.routes for s in r.stops)


def test_urgent_insertion_keeps_committed_trips_and_is_fast() -> None:
    base = problem(
        [
            trip("a", (10, 0), (20, 0), pickup_window=(0, 100)),
            trip("b", (0, 10), (0, 20), pickup_window=(0, 100)),
            trip("c", (30, 0), (40, 0), pickup_window=(100, 300)),
        ],
        [car("v1"), car("v2"), car("v3")],
    )
    plan = solved(base)
    urgent = trip("u", (21, 0), (29, 0), pickup_window=(0, 500), priority=10)
    started = time.perf_counter()
    new = insert_urgent(plan, base, urgent, time_limit=0.9)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert new.vehicle_of("u") is not None
    for route in plan.routes:
        after = new.route_of(route.vehicle_id)
        assert after is not None
        kept = [(s.request_id, s.kind) for s in after.stops if s.request_id != "u"]
        assert kept == [(s.request_id, s.kind) for s in route.stops]
    extended = Problem((*base.requests, urgent), base.vehicles, horizon=HORIZON)
    assert check(extended, new).ok


def test_urgent_insertion_reports_why_it_cannot() -> None:
    base = problem([trip("a", (10, 0), (20, 0))], [car("v1")])
    plan = solved(base)
    bus_trip = trip("u", (1, 0), (2, 0), n=30, types={BodyType.BUS})
    new = insert_urgent(plan, base, bus_trip)
    assert reasons(new) == {"u": UnservedReason.NO_ALLOWED_BODY_TYPE}
    impossible = trip("x", (500, 0), (600, 0), pickup_window=(0, 10))
    new = insert_urgent(plan, base, impossible)
    assert reasons(new) == {"x": UnservedReason.NO_CAPACITY_LEFT}
