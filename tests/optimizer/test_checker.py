"""The checker catches each kind of violation on hand-made plans."""

from __future__ import annotations

from optimizer import (
    XY,
    BodyType,
    Driver,
    EnergyType,
    Licence,
    Plan,
    PlannedStop,
    Problem,
    Request,
    Route,
    StopKind,
    StopRef,
    TimeWindow,
    Unserved,
    UnservedReason,
    Vehicle,
    Visit,
    check,
)

P, D = StopKind.PICKUP, StopKind.DROPOFF
HORIZON = TimeWindow(0, 1000)


def stop(rid: str, kind: StopKind) -> PlannedStop:
    return PlannedStop(rid, kind, 0.0, 0.0, 0.0, 0)


def route(vid: str, *stops: tuple[str, StopKind]) -> Route:
    return Route(vid, tuple(stop(r, k) for r, k in stops), 0.0, 0.0, 0.0, 0.0)


def ride(rid: str, x: float, n: int = 1, due: float = 1000, **kw: object) -> Request:
    return Request(
        rid,
        pickup=Visit(XY(x, 0), TimeWindow(0, due)),
        dropoff=Visit(XY(x + 10, 0), TimeWindow(0, due)),
        passengers=n,
        **kw,  # type: ignore[arg-type]
    )


def base(*vehicles: Vehicle, requests: tuple[Request, ...] | None = None, **kw: object) -> Problem:
    reqs = requests or (ride("a", 10, n=3), ride("b", 20, n=3))
    return Problem(reqs, vehicles or (Vehicle("v", 4, XY(0, 0)),), horizon=HORIZON, **kw)  # type: ignore[arg-type]


def kinds(problem: Problem, plan: Plan, **kw: object) -> set[str]:
    return check(problem, plan, **kw).kinds()  # type: ignore[arg-type]


def test_a_good_plan_passes_and_distance_is_recomputed() -> None:
    p = base()
    plan = Plan((route("v", ("a", P), ("a", D), ("b", P), ("b", D)),))
    report = check(p, plan)
    assert report.ok, report.violations
    assert report.vehicles == 1
    assert abs(report.distance - 60.0) < 1e-9  # 0 -> 10 -> 20 -> 20 -> 30 -> 0


def test_capacity() -> None:
    plan = Plan((route("v", ("a", P), ("b", P), ("a", D), ("b", D)),))
    assert "capacity" in kinds(base(), plan)


def test_time_window_and_return_late() -> None:
    p = base(requests=(ride("a", 10, due=15), ride("b", 20)))
    plan = Plan((route("v", ("b", P), ("b", D), ("a", P), ("a", D)),))
    assert "time_window" in kinds(p, plan)
    early = Problem(
        (ride("a", 10),), (Vehicle("v", 4, XY(0, 0), available=TimeWindow(0, 30)),), horizon=HORIZON
    )
    assert kinds(early, Plan((route("v", ("a", P), ("a", D)),))) == {"return_late"}


def test_precedence_and_split() -> None:
    plan = Plan((route("v", ("a", D), ("a", P), ("b", P), ("b", D)),))
    assert "precedence" in kinds(base(), plan)
    two = base(Vehicle("v", 4, XY(0, 0)), Vehicle("w", 4, XY(0, 0)))
    plan = Plan((route("v", ("a", P), ("b", P), ("b", D)), route("w", ("a", D))))
    assert "split" in kinds(two, plan)


def test_served_twice_missing_and_unknown() -> None:
    plan = Plan((route("v", ("a", P), ("a", D), ("a", P), ("a", D)),))
    assert {"served_twice", "missing"} <= kinds(base(), plan)
    listed = Plan(
        (route("v", ("a", P), ("a", D)),),
        unserved=(Unserved("b", UnservedReason.NO_CAPACITY_LEFT, ""),),
    )
    assert kinds(base(), listed) == set()
    assert kinds(base(), listed, require_all=True) == {"missing"}
    assert "unknown_vehicle" in kinds(base(), Plan((route("x", ("a", P), ("a", D)),)))


def test_body_type_range_driving_licence_committed() -> None:
    sedan_only = (ride("a", 10, allowed_body_types=frozenset({BodyType.SEDAN})),)
    mpv = Vehicle("v", 7, XY(0, 0), body_type=BodyType.MPV)
    plan = Plan((route("v", ("a", P), ("a", D)),))
    assert kinds(base(mpv, requests=sedan_only), plan) == {"body_type"}

    bev = Vehicle("v", 4, XY(0, 0), energy=EnergyType.BEV, range_km=0.03)  # 30 units < 40
    assert kinds(base(bev, requests=(ride("a", 10),)), plan) == {"range"}

    driven = Vehicle("v", 4, XY(0, 0), driver_id="d")
    p = base(driven, requests=(ride("a", 10),), drivers=(Driver("d", Licence.C1, max_driving=30),))
    assert kinds(p, plan) == {"driving_limit"}

    committed = Vehicle("v", 4, XY(0, 0), committed=(StopRef("a", P), StopRef("a", D)))
    other = Vehicle("w", 4, XY(0, 0))
    p = base(committed, other, requests=(ride("a", 10),))
    assert kinds(p, Plan((route("w", ("a", P), ("a", D)),))) == {"committed"}
