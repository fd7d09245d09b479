from __future__ import annotations

import pytest

from optimizer import (
    XY,
    BodyType,
    Driver,
    GeoPoint,
    Licence,
    Problem,
    Request,
    StopKind,
    StopRef,
    TimeWindow,
    Vehicle,
    Visit,
)

DEPOT = XY(0, 0)


def test_time_window_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="starts after"):
        TimeWindow(10, 5)


def test_points_validate() -> None:
    with pytest.raises(ValueError):
        GeoPoint(91.0, 0.0)
    with pytest.raises(ValueError):
        XY(float("nan"), 0.0)


def test_request_validates() -> None:
    with pytest.raises(ValueError, match="priority"):
        Request("r", dropoff=Visit(XY(1, 1)), priority=0)
    with pytest.raises(ValueError, match="passengers"):
        Request("r", dropoff=Visit(XY(1, 1)), passengers=-1)
    r = Request("r", dropoff=Visit(XY(1, 1)), allowed_body_types={BodyType.MPV})  # type: ignore[arg-type]
    assert r.allowed_body_types == frozenset({BodyType.MPV})


def test_problem_rejects_duplicates_and_mixed_points() -> None:
    v = Vehicle("v", seats=4, depot=DEPOT)
    r = Request("r", dropoff=Visit(XY(1, 1)))
    with pytest.raises(ValueError, match="duplicate request"):
        Problem(requests=(r, r), vehicles=(v,))
    with pytest.raises(ValueError, match="GeoPoint or XY"):
        Problem(requests=(Request("g", dropoff=Visit(GeoPoint(26, 119))),), vehicles=(v,))


def test_licence_must_permit_body_type() -> None:
    bus = Vehicle("bus", seats=40, depot=DEPOT, body_type=BodyType.BUS, driver_id="d")
    with pytest.raises(ValueError, match="does not permit"):
        Problem(requests=(), vehicles=(bus,), drivers=(Driver("d", Licence.C1),))
    Problem(requests=(), vehicles=(bus,), drivers=(Driver("d", Licence.A1),))


def test_driver_on_two_vehicles_is_rejected() -> None:
    a = Vehicle("a", seats=4, depot=DEPOT, driver_id="d")
    b = Vehicle("b", seats=4, depot=DEPOT, driver_id="d")
    with pytest.raises(ValueError, match="two vehicles"):
        Problem(requests=(), vehicles=(a, b), drivers=(Driver("d", Licence.C1),))


def test_committed_stops_must_be_whole_and_ordered() -> None:
    r = Request("r", pickup=Visit(XY(1, 0)), dropoff=Visit(XY(2, 0)))
    only_drop = Vehicle("v", 4, DEPOT, committed=(StopRef("r", StopKind.DROPOFF),))
    with pytest.raises(ValueError, match="before"):
        Problem(requests=(r,), vehicles=(only_drop,))
    half = Vehicle("v", 4, DEPOT, committed=(StopRef("r", StopKind.PICKUP),))
    with pytest.raises(ValueError, match="only part"):
        Problem(requests=(r,), vehicles=(half,))
