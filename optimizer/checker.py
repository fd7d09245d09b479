"""Independent feasibility checker for plans, used by tests and benchmarks.

Written apart from the solver on purpose: it re-times every route from the problem's
data alone (earliest service starts, waiting allowed), computes planar distances itself in
double precision (`math.hypot`), and takes travel times for geographic problems from the
matrix provider (the definition of travel time there), one small matrix per route. It
trusts nothing in the plan but the vehicle of each route and the order of its stops.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from optimizer.matrix import MatrixProvider, default_provider
from optimizer.model import (
    LICENCE_PERMITS,
    XY,
    EnergyType,
    Location,
    Plan,
    PlannedStop,
    Problem,
    Request,
    StopKind,
    StopRef,
    Visit,
)

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    subject: str
    detail: str


@dataclass(slots=True)
class CheckReport:
    """Violations found, plus the plan's vehicle count and distance recomputed here."""

    violations: list[Violation] = field(default_factory=list)
    vehicles: int = 0
    distance: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def kinds(self) -> set[str]:
        return {v.kind for v in self.violations}


def _planar_leg(a: Location, b: Location) -> tuple[float, float]:
    assert isinstance(a, XY) and isinstance(b, XY)
    d = math.hypot(a.x - b.x, a.y - b.y)
    return d, d


def _provider_legs(
    provider: MatrixProvider, points: Sequence[Location]
) -> list[tuple[float, float]]:
    """(seconds, metres) of each consecutive leg, from one small matrix per route."""
    matrix = provider.matrix(points)
    return [
        (float(matrix.durations[i, i + 1]), float(matrix.distances[i, i + 1]))
        for i in range(len(points) - 1)
    ]


def check(
    problem: Problem,
    plan: Plan,
    *,
    require_all: bool = False,
    provider: MatrixProvider | None = None,
) -> CheckReport:
    """Checks every hard rule. `require_all` makes any unserved request a violation
    (benchmarks); otherwise a request must be served or listed as unserved."""
    report = CheckReport()
    bad = report.violations.append
    matrix_provider = None
    if provider is not None or not problem.is_planar:
        matrix_provider = provider or default_provider(problem.is_planar)
    requests = {r.id: r for r in problem.requests}
    vehicles = {v.id: v for v in problem.vehicles}
    drivers = {d.id: d for d in problem.drivers}
    seen_stops: dict[tuple[str, StopKind], str] = {}
    served_by: dict[str, str] = {}
    used_vehicles: set[str] = set()

    for route in plan.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            bad(Violation("unknown_vehicle", route.vehicle_id, "not in the problem"))
            continue
        if route.vehicle_id in used_vehicles:
            bad(Violation("vehicle_twice", vehicle.id, "two routes for one vehicle"))
        used_vehicles.add(vehicle.id)
        if not route.stops:
            continue
        report.vehicles += 1
        driver = drivers.get(vehicle.driver_id) if vehicle.driver_id else None
        if driver is not None and vehicle.body_type not in LICENCE_PERMITS[driver.licence]:
            bad(Violation("licence", vehicle.id, f"{driver.licence} cannot drive it"))

        # Vehicle window = horizon ∩ availability ∩ driver shift.
        ready, due = problem.horizon.start, problem.horizon.end
        for w in (vehicle.available, driver.shift if driver else None):
            if w is not None:
                ready, due = max(ready, w.start), min(due, w.end)

        t = ready
        load = 0
        onboard: set[str] = set()
        visits: list[tuple[Request, StopKind, Visit]] = []
        for stop in route.stops:
            request = requests.get(stop.request_id)
            if request is None:
                bad(Violation("unknown_request", stop.request_id, f"on {vehicle.id}"))
                continue
            key = (request.id, stop.kind)
            if key in seen_stops:
                bad(Violation("served_twice", request.id, f"{stop.kind} on {vehicle.id} again"))
            seen_stops[key] = vehicle.id
            visit = request.pickup if stop.kind is StopKind.PICKUP else request.dropoff
            if visit is None:
                bad(Violation("unknown_stop", request.id, f"has no {stop.kind}"))
                continue
            visits.append((request, stop.kind, visit))
            if request.pickup is None:
                load += request.passengers  # single stop: on board from the depot
        route_points = [vehicle.depot, *(visit.point for _, _, visit in visits), vehicle.end]
        if matrix_provider is None:
            legs = [_planar_leg(a, b) for a, b in itertools.pairwise(route_points)]
        else:
            legs = _provider_legs(matrix_provider, route_points)
        distance = 0.0
        driving = 0.0
        for (request, kind, visit), (travel, length) in zip(visits, legs, strict=False):
            served_by.setdefault(request.id, vehicle.id)
            if served_by[request.id] != vehicle.id:
                bad(Violation("split", request.id, "pickup and drop-off on different vehicles"))
            allowed = request.allowed_body_types
            if (
                allowed is not None
                and vehicle.body_type not in allowed
                and kind is StopKind.DROPOFF
            ):
                bad(Violation("body_type", request.id, f"{vehicle.body_type} not allowed"))
            distance += length
            driving += travel
            t += travel
            window = visit.window or problem.horizon
            t = max(t, window.start)
            if t > window.end + _EPS:
                bad(
                    Violation(
                        "time_window", request.id, f"{kind} starts {t:.3f} > due {window.end:.3f}"
                    )
                )
            t += visit.duration
            if kind is StopKind.PICKUP:
                onboard.add(request.id)
                load += request.passengers
            elif request.pickup is None:
                load -= request.passengers
            else:
                if request.id not in onboard:
                    bad(Violation("precedence", request.id, "drop-off before its pickup"))
                onboard.discard(request.id)
                load -= request.passengers
            if load > vehicle.seats:
                bad(Violation("capacity", vehicle.id, f"load {load} > {vehicle.seats} seats"))
        if onboard:
            bad(Violation("precedence", vehicle.id, f"never dropped off: {sorted(onboard)}"))
        travel, length = legs[-1]
        t += travel
        distance += length
        driving += travel
        if t > due + _EPS:
            bad(Violation("return_late", vehicle.id, f"back at {t:.3f} > {due:.3f}"))
        range_km = vehicle.range_km if vehicle.energy is EnergyType.BEV else None
        if range_km is not None and distance > range_km * 1000.0 + _EPS:
            bad(Violation("range", vehicle.id, f"{distance:.0f} m > {range_km} km"))
        limit = driver.max_driving if driver is not None else None
        if limit is not None and driving > limit + _EPS:
            bad(Violation("driving_limit", vehicle.id, f"{driving:.0f} s driving > {limit}"))
        _check_committed(vehicle.committed, route.stops, vehicle.id, bad)
        report.distance += distance

    listed = {u.request_id for u in plan.unserved}
    for request in problem.requests:
        complete = all((request.id, kind) in seen_stops for kind, _ in request.visits())
        partial = any((request.id, kind) in seen_stops for kind, _ in request.visits())
        if partial and not complete:
            bad(Violation("precedence", request.id, "only part of the request is served"))
        if complete and request.id in listed:
            bad(Violation("served_twice", request.id, "served and listed as unserved"))
        if not partial and (require_all or request.id not in listed):
            bad(Violation("missing", request.id, "not served"))
    for vehicle in problem.vehicles:
        for ref in vehicle.committed:
            if seen_stops.get((ref.request_id, ref.kind)) != vehicle.id:
                bad(Violation("committed", ref.request_id, f"not on {vehicle.id} any more"))
    return report


def _check_committed(
    committed: Sequence[StopRef],
    stops: Sequence[PlannedStop],
    vehicle_id: str,
    bad: Callable[[Violation], None],
) -> None:
    """Committed stops must appear on their vehicle in the committed order."""
    if not committed:
        return
    keys = [(s.request_id, s.kind) for s in stops]
    want = [(c.request_id, c.kind) for c in committed]
    positions = [keys.index(w) for w in want if w in keys]
    if positions != sorted(positions):
        bad(Violation("committed", vehicle_id, "committed stops reordered"))
