"""The problem compiled to indices and arrays, shared by the OR-Tools model, the VROOM warm
start, the plan builder and urgent insertion. Private.

Times are compiled relative to the horizon start. Integer matrices round travel times *up*
to ticks (never optimistic about time windows) and distances to the nearest integer.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optimizer.matrix import MatrixProvider, TravelMatrix, default_provider
from optimizer.model import (
    EnergyType,
    Location,
    Problem,
    Request,
    StopKind,
    TimeWindow,
    UnservedReason,
    Vehicle,
)

IntMatrix = npt.NDArray[np.int64]

#: integer ticks per second of time (1 ms resolution).
TICKS = 1000
#: cap for automatic costs so they fit VROOM's unsigned 32-bit inputs.
_COST_CAP = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StopNode:
    """One stop to serve: a pickup or a drop-off of request `request`."""

    request: int
    kind: StopKind
    loc: int
    ready: float
    due: float
    duration: float
    demand: int


@dataclass(frozen=True, slots=True)
class VehicleTerms:
    """What the model needs of a vehicle, in float seconds / metres relative to the horizon."""

    index: int
    start_loc: int
    end_loc: int
    ready: float
    due: float
    capacity: int
    max_distance: float | None
    max_driving: float | None
    fixed_cost: float
    committed: tuple[int, ...]


@dataclass(slots=True)
class Instance:
    problem: Problem
    locations: list[Location]
    matrix: TravelMatrix
    dur: IntMatrix
    dist: IntMatrix
    dist_scale: float
    origin: float
    stops: list[StopNode]
    request_stops: list[tuple[int, ...]]
    vehicles: list[VehicleTerms]
    allowed: list[list[int]]
    excluded: dict[int, tuple[UnservedReason, str]]
    penalties: list[int]
    committed_owner: dict[int, int] = field(default_factory=dict)
    single_stop_only: bool = True

    def stop_ticks(self, s: int) -> tuple[int, int, int]:
        """(ready, due, duration) of stop `s` in ticks."""
        node = self.stops[s]
        return (
            math.ceil(node.ready * TICKS - 1e-6),
            math.floor(node.due * TICKS + 1e-6),
            math.ceil(node.duration * TICKS - 1e-6),
        )

    def vehicle_ticks(self, v: int) -> tuple[int, int]:
        terms = self.vehicles[v]
        return math.ceil(terms.ready * TICKS - 1e-6), math.floor(terms.due * TICKS + 1e-6)

    def fixed_cost_int(self, v: int) -> int:
        return min(_COST_CAP, round(self.vehicles[v].fixed_cost * self.dist_scale))

    def route_cost(self, v: int, route: list[int]) -> int:
        """Integer objective of one route (fixed cost + scaled distance); 0 when empty."""
        if not route:
            return 0
        terms = self.vehicles[v]
        locs = [terms.start_loc, *(self.stops[s].loc for s in route), terms.end_loc]
        return self.fixed_cost_int(v) + int(
            sum(self.dist[a, b] for a, b in itertools.pairwise(locs))
        )

    def objective(self, routes: list[list[int]]) -> int:
        """Integer objective of a solution, the same as OR-Tools': costs + unserved penalties."""
        served = {self.stops[s].request for route in routes for s in route}
        penalty = sum(
            self.penalties[r]
            for r in range(len(self.request_stops))
            if r not in served and r not in self.excluded
        )
        return penalty + sum(self.route_cost(v, route) for v, route in enumerate(routes))


def vehicle_window(problem: Problem, vehicle: Vehicle) -> TimeWindow | None:
    """Availability ∩ driver shift ∩ horizon; None if empty."""
    window: TimeWindow | None = problem.horizon
    if vehicle.available is not None and window is not None:
        window = window.intersect(vehicle.available)
    driver = problem.driver_of(vehicle)
    if driver is not None and driver.shift is not None and window is not None:
        window = window.intersect(driver.shift)
    return window


def max_distance_m(vehicle: Vehicle) -> float | None:
    """Hard distance cap: the range of a battery-electric vehicle (PHEVs can burn fuel)."""
    if vehicle.energy is EnergyType.BEV and vehicle.range_km is not None:
        return vehicle.range_km * 1000.0
    return None


def make_node(problem: Problem, ri: int, kind: StopKind, loc: int) -> StopNode:
    """The stop `kind` of request `ri`, times relative to the horizon start."""
    request = problem.requests[ri]
    visit = request.pickup if kind is StopKind.PICKUP else request.dropoff
    if visit is None:
        raise ValueError(f"request {request.id} has no {kind}")
    window = visit.window or problem.horizon
    origin = problem.horizon.start
    demand = request.passengers
    if kind is StopKind.DROPOFF and request.pickup is not None:
        demand = -request.passengers
    return StopNode(
        request=ri,
        kind=kind,
        loc=loc,
        ready=max(0.0, window.start - origin),
        due=min(problem.horizon.end - origin, window.end - origin),
        duration=visit.duration,
        demand=demand,
    )


def vehicle_terms(
    problem: Problem, vi: int, start_loc: int, end_loc: int, fixed_cost: float = 0.0
) -> VehicleTerms | None:
    """Float terms of vehicle `vi` (None if its windows do not overlap)."""
    vehicle = problem.vehicles[vi]
    window = vehicle_window(problem, vehicle)
    if window is None:
        return None
    driver = problem.driver_of(vehicle)
    return VehicleTerms(
        index=vi,
        start_loc=start_loc,
        end_loc=end_loc,
        ready=window.start - problem.horizon.start,
        due=window.end - problem.horizon.start,
        capacity=vehicle.seats,
        max_distance=max_distance_m(vehicle),
        max_driving=driver.max_driving if driver is not None else None,
        fixed_cost=fixed_cost,
        committed=(),
    )


def compile_problem(problem: Problem, provider: MatrixProvider | None = None) -> Instance:
    """Indexes the problem, asks the provider for the matrix, screens eligibility."""
    provider = provider or default_provider(problem.is_planar)
    locations: list[Location] = []
    loc_index: dict[Location, int] = {}

    def loc(p: Location) -> int:
        i = loc_index.get(p)
        if i is None:
            i = loc_index[p] = len(locations)
            locations.append(p)
        return i

    origin = problem.horizon.start
    stops: list[StopNode] = []
    request_stops: list[tuple[int, ...]] = []
    single_only = True
    for ri, request in enumerate(problem.requests):
        ids: list[int] = []
        if request.pickup is not None:
            single_only = False
        for kind, visit in request.visits():
            ids.append(len(stops))
            stops.append(make_node(problem, ri, kind, loc(visit.point)))
        request_stops.append(tuple(ids))

    stop_of = {(problem.requests[stops[s].request].id, stops[s].kind): s for s in range(len(stops))}
    vehicles: list[VehicleTerms] = []
    unusable: set[int] = set()
    for vi, vehicle in enumerate(problem.vehicles):
        window = vehicle_window(problem, vehicle)
        if window is None:
            unusable.add(vi)
            window = TimeWindow(problem.horizon.start, problem.horizon.start)
        driver = problem.driver_of(vehicle)
        vehicles.append(
            VehicleTerms(
                index=vi,
                start_loc=loc(vehicle.depot),
                end_loc=loc(vehicle.end),
                ready=window.start - origin,
                due=window.end - origin,
                capacity=vehicle.seats,
                max_distance=max_distance_m(vehicle),
                max_driving=driver.max_driving if driver is not None else None,
                fixed_cost=0.0,  # filled in below, once distances are known
                committed=tuple(stop_of[(c.request_id, c.kind)] for c in vehicle.committed),
            )
        )

    matrix = provider.matrix(locations)
    dist_scale = 1000.0 if problem.is_planar else 1.0
    dur = np.ceil(matrix.durations * TICKS - 1e-6).astype(np.int64)
    dist = np.rint(matrix.distances * dist_scale).astype(np.int64)
    np.fill_diagonal(dur, 0)
    np.fill_diagonal(dist, 0)

    auto_fixed = _auto_vehicle_cost(matrix, stops, vehicles)
    for vi, vehicle in enumerate(problem.vehicles):
        if vehicle.fixed_cost is not None:
            cost = vehicle.fixed_cost
        elif problem.vehicle_cost is not None:
            cost = problem.vehicle_cost
        else:
            cost = auto_fixed
        vehicles[vi] = dataclasses.replace(vehicles[vi], fixed_cost=cost)

    inst = Instance(
        problem=problem,
        locations=locations,
        matrix=matrix,
        dur=dur,
        dist=dist,
        dist_scale=dist_scale,
        origin=origin,
        stops=stops,
        request_stops=request_stops,
        vehicles=vehicles,
        allowed=[],
        excluded={},
        penalties=[],
        single_stop_only=single_only,
    )
    for v in vehicles:
        for s in v.committed:
            inst.committed_owner[stops[s].request] = v.index
    _screen(inst, unusable)
    max_fixed = max((inst.fixed_cost_int(v) for v in range(len(vehicles))), default=0)
    bound = max_fixed + _route_bound(inst)
    for ri, request in enumerate(problem.requests):
        weight = request.priority * (1000 if ri in inst.committed_owner else 1)
        inst.penalties.append(10 * bound * weight)
    return inst


def _auto_vehicle_cost(
    matrix: TravelMatrix, stops: list[StopNode], vehicles: list[VehicleTerms]
) -> float:
    """A cost per vehicle above any route's length: fewer vehicles first, then distance."""
    if not stops:
        return 1.0
    locs = sorted({s.loc for s in stops} | {v.start_loc for v in vehicles})
    sub = matrix.distances[np.ix_(locs, locs)]
    # Any route is at most the sum of the longest edge out of each stop and its depot.
    bound = float(sub.max(axis=1).sum()) + float(sub.max())
    return max(1.0, bound)


def _route_bound(inst: Instance) -> int:
    locs = sorted({s.loc for s in inst.stops} | {v.start_loc for v in inst.vehicles})
    if not locs:
        return 1
    sub = inst.dist[np.ix_(locs, locs)]
    return int(sub.max(axis=1).sum()) + 1


def _screen(inst: Instance, unusable: set[int]) -> None:
    """Per request, the vehicles that could serve it alone; otherwise why none can.

    Checks run in order body type -> seats -> time windows -> range -> driving limit; the
    reason reported is the stage at which the last candidate vehicle dropped out.
    """
    problem = inst.problem
    nv = len(inst.vehicles)
    start_loc = np.array([v.start_loc for v in inst.vehicles], dtype=np.int64)
    end_loc = np.array([v.end_loc for v in inst.vehicles], dtype=np.int64)
    ready = np.array([v.ready for v in inst.vehicles], dtype=np.float64)
    due = np.array([v.due for v in inst.vehicles], dtype=np.float64)
    seats = np.array([v.capacity for v in inst.vehicles], dtype=np.int64)
    max_dist = np.array(
        [math.inf if v.max_distance is None else v.max_distance for v in inst.vehicles]
    )
    max_drive = np.array(
        [math.inf if v.max_driving is None else v.max_driving for v in inst.vehicles]
    )
    usable = np.ones(nv, dtype=bool)
    usable[list(unusable)] = False
    body = [v.body_type for v in problem.vehicles]
    durs, dists = inst.matrix.durations, inst.matrix.distances
    eps = 1e-9

    for ri, request in enumerate(problem.requests):
        owner = inst.committed_owner.get(ri)
        mask = usable.copy()
        if owner is not None:
            only = np.zeros(nv, dtype=bool)
            only[owner] = True
            mask &= only
        stages: list[tuple[UnservedReason, str]] = []
        if nv == 0:
            inst.excluded[ri] = (UnservedReason.NO_VEHICLES, "no vehicle is available")
            inst.allowed.append([])
            continue
        if request.allowed_body_types is not None:
            allowed_types = request.allowed_body_types
            mask &= np.array([b in allowed_types for b in body])
        stages.append(
            (
                UnservedReason.NO_ALLOWED_BODY_TYPE,
                "no available vehicle has an allowed body type "
                f"({', '.join(sorted(allowed_types)) if request.allowed_body_types else 'any'})",
            )
        )
        masks = [mask.copy()]
        mask &= seats >= request.passengers
        masks.append(mask.copy())
        stages.append(
            (
                UnservedReason.NOT_ENOUGH_SEATS,
                f"no allowed vehicle has {request.passengers} seats",
            )
        )
        t, d, drive, ok = _solo(inst, request, ri, start_loc, end_loc, ready, durs, dists)
        mask &= ok & (t <= due + eps)
        masks.append(mask.copy())
        stages.append(
            (
                UnservedReason.TIME_WINDOW,
                "no allowed vehicle can reach it within its time windows and availability",
            )
        )
        mask &= d <= max_dist + eps
        masks.append(mask.copy())
        stages.append((UnservedReason.RANGE, "the trip exceeds the range of every allowed vehicle"))
        mask &= drive <= max_drive + eps
        masks.append(mask.copy())
        stages.append(
            (
                UnservedReason.DRIVING_LIMIT,
                "the trip exceeds the daily driving limit of every allowed driver",
            )
        )
        allowed = [int(i) for i in np.flatnonzero(mask)]
        inst.allowed.append(allowed)
        if not allowed:
            for stage_mask, stage in zip(masks, stages, strict=True):
                if not stage_mask.any():
                    inst.excluded[ri] = stage
                    break


def _solo(
    inst: Instance,
    request: Request,
    ri: int,
    start_loc: npt.NDArray[np.int64],
    end_loc: npt.NDArray[np.int64],
    ready: npt.NDArray[np.float64],
    durs: npt.NDArray[np.float64],
    dists: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.bool_],
]:
    """Vectorised over vehicles: depot -> (pickup) -> drop-off -> end depot alone.

    Returns the return time, the distance, the driving time and whether every stop's
    window was met.
    """
    t = ready.copy()
    here = start_loc
    dist = np.zeros_like(ready)
    drive = np.zeros_like(ready)
    ok = np.ones(len(ready), dtype=bool)
    for s in inst.request_stops[ri]:
        node = inst.stops[s]
        travel = durs[here, node.loc]
        t = np.maximum(t + travel, node.ready)
        ok &= t <= node.due + 1e-9
        t = t + node.duration
        dist = dist + dists[here, node.loc]
        drive = drive + travel
        here = np.full_like(start_loc, node.loc)
    t = t + durs[here, end_loc]
    dist = dist + dists[here, end_loc]
    drive = drive + durs[here, end_loc]
    return t, dist, drive, ok
