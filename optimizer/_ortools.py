"""OR-Tools routing model of an Instance: all index juggling lives here. Private.

Nodes: the included stops first (0..n-1), then a start and an end node per vehicle.
Dimensions: time (service + travel, waiting allowed), load (seats), distance (BEV range,
only when some vehicle has one), driving (travel time only, when some driver has a limit).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from optimizer._instance import TICKS, Instance

_BIG = 10**15


@dataclass(slots=True)
class RoutingResult:
    routes: list[list[int]]
    objective: int
    from_initial: bool


def solve_routing(
    inst: Instance,
    *,
    time_limit: float,
    initial: Sequence[Sequence[int]] | None = None,
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION",
) -> RoutingResult | None:
    """Routes (stop indices per vehicle) of the best solution found, or None if none."""
    started = time.monotonic()
    nv = len(inst.vehicles)
    stop_ids = [
        s for r, stops in enumerate(inst.request_stops) if r not in inst.excluded for s in stops
    ]
    if nv == 0:
        return None
    n = len(stop_ids)
    node_of = {s: i for i, s in enumerate(stop_ids)}
    starts = [n + 2 * v for v in range(nv)]
    ends = [n + 2 * v + 1 for v in range(nv)]
    manager = pywrapcp.RoutingIndexManager(n + 2 * nv, nv, starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    solver = routing.solver()

    node_loc = np.empty(n + 2 * nv, dtype=np.int64)
    service = np.zeros(n + 2 * nv, dtype=np.int64)
    for i, s in enumerate(stop_ids):
        node_loc[i] = inst.stops[s].loc
        service[i] = inst.stop_ticks(s)[2]
    for v, terms in enumerate(inst.vehicles):
        node_loc[starts[v]] = terms.start_loc
        node_loc[ends[v]] = terms.end_loc

    # RegisterTransitMatrix is indexed by node (manager.IndexToNode), evaluated in C++.
    grid = np.ix_(node_loc, node_loc)
    travel = inst.dur[grid]
    dist = inst.dist[grid]
    dist_cb = routing.RegisterTransitMatrix(dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    time_cb = routing.RegisterTransitMatrix((travel + service[:, None]).tolist())

    horizon = max(
        max((inst.vehicle_ticks(v)[1] for v in range(nv)), default=0),
        max((inst.stop_ticks(s)[1] for s in stop_ids), default=0),
    )
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    for i, s in enumerate(stop_ids):
        ready, due, _ = inst.stop_ticks(s)
        time_dim.CumulVar(manager.NodeToIndex(i)).SetRange(ready, max(ready, due))
    for v in range(nv):
        ready, due = inst.vehicle_ticks(v)
        due = max(ready, due)
        time_dim.CumulVar(routing.Start(v)).SetRange(ready, due)
        time_dim.CumulVar(routing.End(v)).SetRange(ready, due)
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))
        routing.AddVariableMaximizedByFinalizer(time_dim.CumulVar(routing.Start(v)))

    _load_dimension(inst, routing, manager, stop_ids, nv)

    if any(t.max_distance is not None for t in inst.vehicles):
        caps = [
            _BIG if t.max_distance is None else int(t.max_distance * inst.dist_scale)
            for t in inst.vehicles
        ]
        routing.AddDimensionWithVehicleCapacity(dist_cb, 0, caps, True, "distance")
    if any(t.max_driving is not None for t in inst.vehicles):
        drive_cb = routing.RegisterTransitMatrix(travel.tolist())
        caps = [
            _BIG if t.max_driving is None else int(t.max_driving * TICKS) for t in inst.vehicles
        ]
        routing.AddDimensionWithVehicleCapacity(drive_cb, 0, caps, True, "driving")

    for v in range(nv):
        routing.SetFixedCostOfVehicle(inst.fixed_cost_int(v), v)

    all_vehicles = nv
    for r, stops in enumerate(inst.request_stops):
        if r in inst.excluded:
            continue
        indices = [manager.NodeToIndex(node_of[s]) for s in stops]
        allowed = inst.allowed[r]
        for index in indices:
            if len(allowed) < all_vehicles:
                # SetAllowedVehiclesForIndex rejects a Python list in OR-Tools 9.15.
                routing.VehicleVar(index).SetValues([-1, *allowed])
            routing.AddDisjunction([index], max(1, inst.penalties[r] // len(indices)))
        if len(indices) == 2:
            pickup, delivery = indices
            routing.AddPickupAndDelivery(pickup, delivery)
            solver.Add(routing.VehicleVar(pickup) == routing.VehicleVar(delivery))
            solver.Add(time_dim.CumulVar(pickup) <= time_dim.CumulVar(delivery))
    for terms in inst.vehicles:
        committed = [manager.NodeToIndex(node_of[s]) for s in terms.committed if s in node_of]
        for a, b in itertools.pairwise(committed):
            solver.Add(time_dim.CumulVar(a) <= time_dim.CumulVar(b))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = getattr(
        routing_enums_pb2.FirstSolutionStrategy, first_solution
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    # Closing the model and reading the start run under this limit too: keep it generous
    # (a start rejected only for lack of time would throw the warm start away).
    params.time_limit.FromMilliseconds(int(max(time_limit, 5.0) * 1000))
    routing.CloseModelWithParameters(params)
    remaining = max(0.05, time_limit - (time.monotonic() - started))
    params.time_limit.FromMilliseconds(int(remaining * 1000))

    assignment = None
    from_initial = False
    if initial is not None:
        node_routes = [[node_of[s] for s in route if s in node_of] for route in initial]
        start_assignment = routing.ReadAssignmentFromRoutes(node_routes, True)
        if start_assignment is not None:
            from_initial = True
            remaining = max(0.05, time_limit - (time.monotonic() - started))
            params.time_limit.FromMilliseconds(int(remaining * 1000))
            assignment = routing.SolveFromAssignmentWithParameters(start_assignment, params)
            if assignment is None:
                # Out of time before the first improvement: the checked start is the answer.
                assignment = start_assignment
    if assignment is None:
        assignment = routing.SolveWithParameters(params)
    if assignment is None:
        return None

    routes: list[list[int]] = []
    for v in range(nv):
        route: list[int] = []
        index = assignment.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(index):
            route.append(stop_ids[manager.IndexToNode(index)])
            index = assignment.Value(routing.NextVar(index))
        routes.append(route)
    return RoutingResult(routes=routes, objective=inst.objective(routes), from_initial=from_initial)


def _load_dimension(
    inst: Instance,
    routing: pywrapcp.RoutingModel,
    manager: pywrapcp.RoutingIndexManager,
    stop_ids: list[int],
    nv: int,
) -> None:
    """Seats. Single-stop loads are on board from the depot: with pairs on the same route
    the start load is a variable equal to the single-stop total (end load forced to 0)."""
    caps = [t.capacity for t in inst.vehicles]
    demand = [0] * (len(stop_ids) + 2 * nv)
    for i, s in enumerate(stop_ids):
        node = inst.stops[s]
        single = len(inst.request_stops[node.request]) == 1
        demand[i] = -node.demand if (single and not inst.single_stop_only) else node.demand
    load_cb = routing.RegisterUnaryTransitVector(demand)
    if inst.single_stop_only:
        routing.AddDimensionWithVehicleCapacity(load_cb, 0, caps, True, "load")
        return
    routing.AddDimensionWithVehicleCapacity(load_cb, 0, caps, False, "load")
    load = routing.GetDimensionOrDie("load")
    for v in range(nv):
        load.CumulVar(routing.End(v)).SetValue(0)
    del manager
