"""Dispatch ↔ optimizer mapping, as plain JSON so the worker process needs no database.

The API reads the scope and builds a *snapshot* (`build_snapshot`); the worker turns it into
an `optimizer.Problem` (`to_problem`), solves it in a child process (`solve_snapshot`) and
gets back the proposal as JSON. Times in a snapshot are seconds from `origin` (UTC).

How a trip maps (the booking, [departure, return), is what the database holds per vehicle
and driver, so the model keeps the vehicle busy for exactly that block):
- pickup at the trip's origin, service may start within [departure, departure + late slack];
  its service time is the whole booking plus the slack, so nothing else fits inside it and
  two trips of one vehicle never overlap as bookings;
- drop-off where the vehicle ends up: the origin for a wait-and-return trip, the destination
  for a one-way trip (its travel after the block makes the model conservative);
- passengers, allowed body types, priority from urgency;
- existing bookings of a vehicle are committed blocks at its depot (unavailability);
- each vehicle gets one driver whose licence covers it (our rules, `rules.licence_fits`) and
  whose own bookings lie within that vehicle's: the optimizer pairs drivers with vehicles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatch.assignments import rules

PRIORITY = {"normal": 1, "urgent": 10, "emergency": 50}
BOARDING_S = 120.0
# Scopes with requests from several counties and at least this many requests are solved in
# region mode (one part per county, in parallel); below it one solve is as fast and better.
REGION_MIN_REQUESTS = 200
# Cost of using one more vehicle, in metres: about 20 km of driving.
VEHICLE_COST_M = 20_000.0
# Our licence classes -> the optimizer's: A3 (city bus) drives cars like C1 for our purposes.
_LICENCE = {"A1": "A1", "A2": "A2", "A3": "C1", "B1": "B1", "B2": "B2", "C1": "C1", "C2": "C2"}


@dataclass(frozen=True)
class TripIn:
    id: int
    origin: tuple[float, float]  # (lat, lon)
    destination: tuple[float, float]
    departure_at: datetime
    return_at: datetime
    round_trip: bool
    passengers: int
    body_types: tuple[str, ...]
    urgency: str
    planned_km: float
    label: str
    zone: str | None = None  # the requesting unit's county (region mode's partition key)


@dataclass(frozen=True)
class VehicleIn:
    id: int
    plate: str
    unit_id: int
    depot: tuple[float, float]
    seats: int
    body_type: str
    energy: str
    nev_range_km: int | None
    busy: tuple[tuple[int, datetime, datetime], ...]  # (assignment id, start, end)
    zone: str | None = None  # its unit's county; None: serves any part (a city-level pool)


@dataclass(frozen=True)
class DriverIn:
    id: int
    name: str
    unit_id: int
    licence_class: str
    busy: frozenset[int]  # assignment ids
    own_unit_only: bool = False  # outside the scope: drives only its own unit's (pooled) cars


def _s(t: datetime, origin: datetime) -> float:
    return round((t - origin).total_seconds(), 3)


def pair_drivers(vehicles: list[VehicleIn], drivers: list[DriverIn]) -> dict[int, DriverIn]:
    """One driver per vehicle, greedily: vehicles needing rarer licences first, drivers of the
    vehicle's own unit first, then the least capable licence that fits (keep A1s for buses).

    Drivers are bucketed by (licence, unit) so a city scope pairs in milliseconds."""
    order = {"A1": 0, "B1": 1, "C1": 2}
    capability = {c: len(rules.LICENCE_COVERS.get(c, ())) for c in _LICENCE}
    classes = sorted({d.licence_class for d in drivers}, key=lambda c: (capability.get(c, 9), c))
    by_unit: dict[tuple[str, int], list[DriverIn]] = {}
    by_class: dict[str, list[DriverIn]] = {}
    for d in sorted(drivers, key=lambda d: d.id):
        by_unit.setdefault((d.licence_class, d.unit_id), []).append(d)
        if not d.own_unit_only:
            by_class.setdefault(d.licence_class, []).append(d)
    used: set[int] = set()

    def take(bucket: list[DriverIn], booked: set[int]) -> DriverIn | None:
        while bucket and bucket[0].id in used:
            bucket.pop(0)  # lazily forget drivers paired through the other bucket
        for d in bucket:
            # A driver already booked elsewhere fits only if those bookings are this vehicle's.
            if d.id not in used and d.busy <= booked:
                return d
        return None

    out: dict[int, DriverIn] = {}
    for v in sorted(
        vehicles, key=lambda v: (order[rules.required_licence(v.body_type, v.seats)], v.id)
    ):
        booked = {a for a, _, _ in v.busy}
        fitting = [c for c in classes if rules.licence_fits(c, v.body_type, v.seats)]
        found = None
        for buckets in ([by_unit.get((c, v.unit_id), []) for c in fitting],
                        [by_class.get(c, []) for c in fitting]):  # fmt: skip
            for bucket in buckets:
                found = take(bucket, booked)
                if found is not None:
                    break
            if found is not None:
                break
        if found is not None:
            used.add(found.id)
            out[v.id] = found
    return out


def build_snapshot(
    trips: list[TripIn],
    vehicles: list[VehicleIn],
    drivers: list[DriverIn],
    *,
    window_start: datetime,
    window_end: datetime,
    late_slack_min: float,
) -> dict[str, Any]:
    """The optimizer's input for one scope and window, as JSON."""
    origin = window_start
    slack = late_slack_min * 60.0
    pairs = pair_drivers(vehicles, drivers)
    end = max([window_end, *(t.return_at for t in trips)]) + timedelta(seconds=slack)
    end = max([end, *(e for v in vehicles for _, _, e in v.busy)])
    horizon = _s(end, origin) + 4 * 3600.0  # room to drive back to the depot
    reqs = []
    for t in trips:
        block = _s(t.return_at, origin) - _s(t.departure_at, origin)
        reqs.append(
            {
                "trip_id": t.id,
                "label": t.label,
                "pickup": list(t.origin),
                "dropoff": list(t.origin if t.round_trip else t.destination),
                "ready_s": _s(t.departure_at, origin),
                "due_s": _s(t.departure_at, origin) + slack,
                "block_s": block + slack,
                "passengers": t.passengers,
                "body_types": list(t.body_types),
                "priority": PRIORITY.get(t.urgency, 1),
                "planned_km": t.planned_km,
                "zone": t.zone,
            }
        )
    vehs = []
    for v in vehicles:
        d = pairs.get(v.id)
        if d is None:
            continue
        vehs.append(
            {
                "vehicle_id": v.id,
                "plate": v.plate,
                "depot": list(v.depot),
                "capacity": rules.passenger_capacity(v.seats),
                "body_type": v.body_type,
                "energy": v.energy,
                "range_km": v.nev_range_km,
                "driver_id": d.id,
                "driver_name": d.name,
                "licence": _LICENCE.get(d.licence_class, "C1"),
                "busy": [
                    [a, max(0.0, _s(s, origin)), _s(e, origin)]
                    for a, s, e in sorted(v.busy, key=lambda b: b[1])
                    if e > origin
                ],
                "zone": v.zone,
            }
        )
    return {
        "origin": origin.isoformat(),
        "horizon_s": horizon,
        "late_slack_s": slack,
        "requests": reqs,
        "vehicles": vehs,
        "vehicles_without_driver": len(vehicles) - len(vehs),
    }


def request_of(r: dict[str, Any]) -> Any:
    """One snapshot request as an `optimizer.Request` (see the module docstring)."""
    from optimizer import BodyType, GeoPoint, Request, TimeWindow, Visit

    return Request(
        id=f"t{r['trip_id']}",
        pickup=Visit(
            GeoPoint(*r["pickup"]),
            TimeWindow(r["ready_s"], r["due_s"]),
            service=BOARDING_S,
            wait=max(0.0, r["block_s"] - BOARDING_S),
        ),
        dropoff=Visit(GeoPoint(*r["dropoff"]), service=BOARDING_S),
        passengers=r["passengers"],
        allowed_body_types=frozenset(BodyType(b) for b in r["body_types"]),
        priority=r["priority"],
        zone=r.get("zone"),
    )


def to_problem(snap: dict[str, Any]) -> Any:
    """The snapshot as an `optimizer.Problem` (imported here: the API need not load OR-Tools)."""
    from optimizer import (
        BodyType,
        Driver,
        EnergyType,
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

    requests = [request_of(r) for r in snap["requests"]]
    vehicles, drivers = [], []
    for v in snap["vehicles"]:
        depot = GeoPoint(*v["depot"])
        # Where the vehicle sets out (a suggestion's fresh live position); bookings and the
        # day's end stay at the depot.
        start = GeoPoint(*v["start"]) if v.get("start") else depot
        committed = []
        for a, s, e in v["busy"]:
            rid = f"b{a}"
            requests.append(
                Request(
                    id=rid,
                    pickup=Visit(depot, TimeWindow(s, s), wait=max(0.0, e - s)),
                    dropoff=Visit(depot),
                    passengers=0,
                )
            )
            committed += [StopRef(rid, StopKind.PICKUP), StopRef(rid, StopKind.DROPOFF)]
        if v.get("driver_id") is not None:  # a suggestion picks the driver afterwards
            drivers.append(Driver(id=f"d{v['driver_id']}", licence=Licence(v["licence"])))
        vehicles.append(
            Vehicle(
                id=f"v{v['vehicle_id']}",
                seats=v["capacity"],
                depot=start,
                end_depot=depot if start != depot else None,
                body_type=BodyType(v["body_type"]),
                energy=EnergyType(v["energy"]),
                range_km=v["range_km"] if v["energy"] == "bev" and v["range_km"] else None,
                driver_id=f"d{v['driver_id']}" if v.get("driver_id") is not None else None,
                zone=v.get("zone"),
                committed=tuple(committed),
            )
        )
    return Problem(
        requests=tuple(requests),
        vehicles=tuple(vehicles),
        drivers=tuple(drivers),
        horizon=TimeWindow(0.0, snap["horizon_s"]),
        vehicle_cost=VEHICLE_COST_M,
        name="auto-assign",
    )


def solve_snapshot(
    snap: dict[str, Any],
    time_limit_s: float,
    seed: int = 0,
    *,
    region_min_requests: int = REGION_MIN_REQUESTS,
    workers: int = 2,
) -> dict[str, Any]:
    """Solve a snapshot (runs in the worker's child process) and return the proposal JSON.

    A scope spanning several counties with at least `region_min_requests` requests is solved
    in region mode (`optimizer.solve_region`: one part per county in `workers` processes,
    city-level pool vehicles shared, leftovers re-planned with every unused vehicle), as the
    city-day benchmark is; smaller or single-county scopes in one solve.

    Each item names trip, vehicle, driver, planned pickup time and the plan's explanation;
    `unserved` lists every request left out with the optimizer's reason. A BEV whose range is
    below one trip's planned km (the manual rule is per trip) is moved to `unserved`.
    """
    from optimizer import StopKind, solve, solve_region

    problem = to_problem(snap)
    origin = datetime.fromisoformat(snap["origin"])
    reqs = {f"t{r['trip_id']}": r for r in snap["requests"]}
    vehs = {f"v{v['vehicle_id']}": v for v in snap["vehicles"]}
    if not reqs:
        return {"items": [], "unserved": [], "stats": {}, "vehicles_used": 0, "distance_km": 0.0}
    zones = {r.get("zone") for r in snap["requests"]}
    if len(zones) > 1 and len(reqs) >= region_min_requests:
        plan = solve_region(problem, time_limit=time_limit_s, seed=seed, workers=workers)
    else:
        plan = solve(problem, time_limit=time_limit_s, seed=seed)
    why = {a.request_id: a for a in plan.assignments}
    items, unserved = [], []
    for route in plan.routes:
        v = vehs[route.vehicle_id]
        order = 0
        for stop in route.stops:
            r = reqs.get(stop.request_id)
            if r is None or stop.kind is not StopKind.PICKUP:
                continue
            order += 1
            a = why.get(stop.request_id)
            # The optimizer speaks in its own ids; say plate and driver name instead.
            text = (a.why if a else "").replace(route.vehicle_id, v["plate"], 1)
            text = text.replace(f"d{v['driver_id']}", v["driver_name"], 1)
            if v["energy"] == "bev" and (v["range_km"] or 0) < r["planned_km"]:
                unserved.append(
                    {
                        "trip_id": r["trip_id"],
                        "reason": "range",
                        "detail": f"battery range {v['range_km']} km is less than the "
                        f"planned {r['planned_km']} km of this trip",
                    }
                )
                continue
            items.append(
                {
                    "trip_id": r["trip_id"],
                    "label": r["label"],
                    "vehicle_id": v["vehicle_id"],
                    "plate": v["plate"],
                    "driver_id": v["driver_id"],
                    "driver_name": v["driver_name"],
                    "pickup_at": (origin + timedelta(seconds=stop.start)).isoformat(),
                    "sequence": order,
                    "why": text,
                    "eligible_vehicles": a.eligible_vehicles if a else None,
                    "dropped": False,
                    "edited": False,
                }
            )
    for u in plan.unserved:
        r = reqs.get(u.request_id)
        if r is not None:
            unserved.append({"trip_id": r["trip_id"], "reason": str(u.reason), "detail": u.detail})
    stats = dict(plan.stats)
    objective = stats.get("final_objective")
    return {
        "items": sorted(items, key=lambda i: (i["pickup_at"], i["trip_id"])),
        "unserved": sorted(unserved, key=lambda u: u["trip_id"]),
        "stats": stats,
        "objective": float(objective) if objective and _number(objective) else None,
        "vehicles_used": len({i["vehicle_id"] for i in items}),
        "distance_km": round(plan.distance / 1000.0, 3),
    }


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
