"""The optimizer's entry points: `solve` (day plan) and `insert_urgent`.

`solve` = compile -> VROOM warm start with vehicle elimination (when pyvroom is installed
and can model the problem) -> OR-Tools routing with guided local search from that start,
checked against every hard rule -> Plan with explanations. Pure: no database, no HTTP
(unless the caller passes an HTTP matrix provider).

Longer than 500 lines because the two entry points share the staged search (warm start,
elimination, polishing, deadline bookkeeping); the OR-Tools model itself is in `model.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer import _vroom
from optimizer._instance import (
    Instance,
    StopNode,
    compile_problem,
    make_node,
    vehicle_terms,
)
from optimizer._ortools import solve_routing
from optimizer._schedule import Timeline, simulate
from optimizer.matrix import MatrixProvider, default_provider
from optimizer.model import (
    LICENCE_PERMITS,
    Assignment,
    Location,
    Plan,
    PlannedStop,
    Problem,
    Request,
    Route,
    StopKind,
    Unserved,
    UnservedReason,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Knobs of the solve pipeline; the defaults are what the benchmarks measured.

    Fractions are of the time limit: vehicle elimination with VROOM runs until
    `eliminate_until` at the latest and gives up `patience` of the limit after its last
    success; noisy VROOM local searches for distance follow for `polish` of the limit;
    OR-Tools guided local search gets the rest.
    """

    use_vroom: bool = True
    eliminate_until: float = 0.8
    patience: float = 0.5
    polish: float = 0.05
    vroom_threads: int = 2
    vroom_noise: float = 0.3


def solve(
    problem: Problem,
    *,
    time_limit: float,
    seed: int = 0,
    initial: Plan | None = None,
    provider: MatrixProvider | None = None,
    options: SolveOptions | None = None,
) -> Plan:
    """Plans the problem within about `time_limit` seconds of wall time.

    Never returns an infeasible plan: what cannot be served is listed in `Plan.unserved`
    with a reason. `seed` drives the randomised warm-start restarts; `initial` (e.g. the
    current plan) is used as a starting point when it is still feasible and better.
    """
    if time_limit <= 0:
        raise ValueError("time_limit must be > 0")
    options = options or SolveOptions()
    started = time.monotonic()
    inst = compile_problem(problem, provider)
    stats: dict[str, str] = {"compile_s": f"{time.monotonic() - started:.3f}"}

    candidates: list[_vroom.Candidate] = []
    if options.use_vroom and _vroom.usable(inst) and len(inst.excluded) < len(inst.request_stops):
        try:
            best, vroom_stats = _vroom.warm_start(
                inst,
                deadline=started + options.eliminate_until * time_limit,
                patience=options.patience * time_limit,
                # On a loaded machine VROOM's own search may need most of the limit:
                # let it finish (up to 90 %) rather than start from a cut-short solution.
                baseline_deadline=started + 0.9 * time_limit,
                seed=seed,
                threads=options.vroom_threads,
                noise=options.vroom_noise,
            )
            stats.update(vroom_stats)
        except Exception as exc:  # the warm start is optional: OR-Tools alone still works
            log.warning("optimizer.vroom_failed error=%r", exc)
            best = None
            stats["vroom"] = f"failed: {exc!r}"[:200]
        if best is not None:
            best, tries = _vroom.polish(
                inst,
                best,
                deadline=time.monotonic() + options.polish * time_limit,
                seed=seed,
                threads=options.vroom_threads,
                noise=options.vroom_noise,
            )
            stats["vroom_polish_runs"] = str(tries)
            candidates.append(best)
    if initial is not None:
        given = routes_of_plan(inst, initial)
        if given is not None:
            served = len({inst.stops[s].request for route in given for s in route})
            candidates.append(_vroom.Candidate(given, served, inst.objective(given)))
    start = min(candidates, key=lambda c: c.key()) if candidates else None
    start_routes = start.routes if start is not None else None
    if start is not None:
        stats["start_objective"] = str(start.objective)

    remaining = time_limit - (time.monotonic() - started)
    result = solve_routing(inst, time_limit=max(0.1, remaining), initial=start_routes)
    routes: list[list[int]] = [[] for _ in inst.vehicles]
    if start is not None and (result is None or result.objective > start.objective):
        # OR-Tools ran out of time before matching the warm start (loaded machine): keep
        # the start; build_plan re-times every route in floats as the last guard.
        routes = [list(r) for r in start.routes]
        stats["fallback"] = "warm start kept"
    elif result is not None:
        routes = result.routes
        stats["warm_start_accepted"] = str(result.from_initial)
        stats["final_objective"] = str(result.objective)
        stats["ortools_s"] = f"{time.monotonic() - started - (time_limit - remaining):.2f}"
    stats["solve_s"] = f"{time.monotonic() - started:.3f}"
    return build_plan(inst, routes, stats)


def routes_of_plan(inst: Instance, plan: Plan) -> list[list[int]] | None:
    """A plan's routes as stop indices of `inst`, or None if it names unknown things."""
    vehicle_index = {v.id: i for i, v in enumerate(inst.problem.vehicles)}
    stop_index = {
        (inst.problem.requests[node.request].id, node.kind): s for s, node in enumerate(inst.stops)
    }
    routes: list[list[int]] = [[] for _ in inst.vehicles]
    for route in plan.routes:
        v = vehicle_index.get(route.vehicle_id)
        if v is None:
            return None
        for stop in route.stops:
            s = stop_index.get((stop.request_id, stop.kind))
            if s is None or v not in inst.allowed[inst.stops[s].request]:
                return None  # unknown stop, or a vehicle the request may no longer use
            routes[v].append(s)
    for v, terms in enumerate(inst.vehicles):
        positions = [routes[v].index(s) for s in terms.committed if s in routes[v]]
        if len(positions) != len(terms.committed) or positions != sorted(positions):
            return None  # committed stops missing or reordered
    return routes


# ------------------------------------------------------------------------- plan building


def build_plan(inst: Instance, routes: Sequence[Sequence[int]], stats: dict[str, str]) -> Plan:
    """Schedules each route in floats; a route that fails (never expected: the model
    rounds travel times up) is dropped and its requests reported unserved."""
    problem = inst.problem
    out_routes: list[Route] = []
    assignments: list[Assignment] = []
    served: set[int] = set()
    broken: set[int] = set()
    for v, route in enumerate(routes):
        if not route:
            continue
        nodes = [inst.stops[s] for s in route]
        timeline = simulate(nodes, inst.vehicles[v], inst.matrix.durations, inst.matrix.distances)
        if isinstance(timeline, str):
            log.error("optimizer.route_infeasible vehicle=%s reason=%s", v, timeline)
            broken.update(n.request for n in nodes)
            continue
        out_routes.append(route_from_timeline(problem, v, nodes, timeline))
        requests = list(dict.fromkeys(n.request for n in nodes))
        for r in requests:
            served.add(r)
            assignments.append(
                Assignment(
                    request_id=problem.requests[r].id,
                    vehicle_id=problem.vehicles[v].id,
                    why=explain(inst, r, v, len(requests) - 1, timeline),
                    eligible_vehicles=len(inst.allowed[r]),
                )
            )
    unserved: list[Unserved] = []
    for r, request in enumerate(problem.requests):
        if r in served:
            continue
        if r in inst.excluded:
            reason, detail = inst.excluded[r]
        elif r in broken:
            reason, detail = UnservedReason.TIME_WINDOW, "its route failed the final schedule check"
        else:
            reason = UnservedReason.NO_CAPACITY_LEFT
            detail = (
                f"all {len(inst.allowed[r])} eligible vehicles were busy or full at that time; "
                "serving it would have broken a time window, seat or range limit"
            )
        unserved.append(Unserved(request.id, reason, detail))
    stats["vehicles"] = str(len(out_routes))
    stats["unserved"] = str(len(unserved))
    return Plan(
        routes=tuple(out_routes),
        assignments=tuple(assignments),
        unserved=tuple(unserved),
        stats=tuple(sorted(stats.items())),
    )


def route_from_timeline(
    problem: Problem, v: int, nodes: Sequence[StopNode], timeline: Timeline
) -> Route:
    origin = problem.horizon.start
    stops = tuple(
        PlannedStop(
            request_id=problem.requests[node.request].id,
            kind=node.kind,
            arrival=origin + timeline.arrivals[i],
            start=origin + timeline.starts[i],
            departure=origin + timeline.starts[i] + node.duration,
            load=timeline.loads[i],
        )
        for i, node in enumerate(nodes)
    )
    return Route(
        vehicle_id=problem.vehicles[v].id,
        stops=stops,
        start=origin + timeline.depart,
        end=origin + timeline.end,
        distance=timeline.distance,
        driving=timeline.driving,
    )


def explain(inst: Instance, r: int, v: int, others: int, timeline: Timeline) -> str:
    """Why request r rides vehicle v, in one sentence of facts."""
    problem = inst.problem
    request, vehicle = problem.requests[r], problem.vehicles[v]
    facts = [f"{vehicle.body_type} with {vehicle.seats} seats for {request.passengers}"]
    if request.allowed_body_types is not None:
        facts.append(f"body type allowed ({', '.join(sorted(request.allowed_body_types))})")
    if vehicle.range_km is not None:
        facts.append(
            f"{vehicle.energy} range {vehicle.range_km:g} km covers the "
            f"{timeline.distance / (1 if problem.is_planar else 1000):.1f}"
            f"{'' if problem.is_planar else ' km'} route"
        )
    driver = problem.driver_of(vehicle)
    if driver is not None:
        facts.append(f"driver {driver.id} ({driver.licence}) within shift")
    if r in inst.committed_owner:
        facts.append("committed to this vehicle earlier")
    share = f"shares the route with {others} other request(s)" if others else "a route of its own"
    return (
        f"{vehicle.id}: {'; '.join(facts)}; one of {len(inst.allowed[r])} eligible vehicles; "
        f"{share}, the cheapest arrangement found for the whole plan"
    )


# --------------------------------------------------------------------------- urgent insertion


@dataclass(frozen=True, slots=True)
class Insertion:
    """One vehicle's cheapest feasible place for a new request.

    `cost` is the distance added plus, if the vehicle had no route yet, its opening cost;
    `route` is the vehicle's route with the request in it (times from the plan origin)."""

    vehicle_id: str
    cost: float
    added_distance: float
    route: Route


@dataclass(frozen=True, slots=True)
class InsertionRanking:
    """Every vehicle's cheapest insertion, cheapest first (at most `limit` of them).

    `eligible` counts vehicles whose body type, seats and driver's licence fit; `excluded`
    counts the others and the eligible ones with no feasible position, by reason
    (`no_allowed_body_type`, `not_enough_seats`, `licence`, `unavailable`, or the schedule's
    `time_window`, `range`, `driving_limit`, `capacity`). `feasible` counts vehicles with a
    feasible position (may exceed `len(insertions)`); `complete` is False when `time_limit`
    cut the scan short."""

    insertions: tuple[Insertion, ...]
    eligible: int
    feasible: int
    excluded: tuple[tuple[str, int], ...]
    complete: bool
    elapsed: float


def rank_insertions(
    plan: Plan,
    problem: Problem,
    request: Request,
    *,
    limit: int | None = None,
    time_limit: float = 0.9,
    provider: MatrixProvider | None = None,
) -> InsertionRanking:
    """Each vehicle's cheapest feasible insertion of `request` into `plan`, ranked by cost.

    Every position pair in the vehicle's current route (its `plan` route, or else its
    committed stops) is tried without reordering it, as `insert_urgent` does. A vehicle
    without a route in `plan` pays the opening cost (its `fixed_cost`, else the problem's
    `vehicle_cost`, else about the longest route) unless it has committed stops.
    """
    started = time.monotonic()
    extended = _with_request(problem, request)
    provider = provider or default_provider(extended.is_planar)
    ri = len(extended.requests) - 1
    index_of = {r.id: i for i, r in enumerate(extended.requests)}
    routes = {route.vehicle_id: route for route in plan.routes}
    drivers = {d.id: d for d in extended.drivers}
    auto_cost = _fixed_cost_hint(plan)
    found: list[Insertion] = []
    excluded: dict[str, int] = {}
    eligible = 0
    complete = True

    def exclude(reason: str) -> None:
        excluded[reason] = excluded.get(reason, 0) + 1

    for vi, vehicle in enumerate(extended.vehicles):
        if time.monotonic() - started > time_limit and found:
            complete = False
            break
        if request.allowed_body_types is not None and (
            vehicle.body_type not in request.allowed_body_types
        ):
            exclude(UnservedReason.NO_ALLOWED_BODY_TYPE)
            continue
        if vehicle.seats < request.passengers:
            exclude(UnservedReason.NOT_ENOUGH_SEATS)
            continue
        driver = drivers.get(vehicle.driver_id) if vehicle.driver_id is not None else None
        if driver is not None and vehicle.body_type not in LICENCE_PERMITS[driver.licence]:
            exclude("licence")
            continue
        eligible += 1
        route = routes.get(vehicle.id)
        existing = [
            (index_of[s.request_id], s.kind)
            for s in (route.stops if route is not None else vehicle.committed)
        ]
        points = [vehicle.depot, vehicle.end]
        points += [_visit_point(extended, r, k) for r, k in existing]
        new_kinds = [k for k, _ in request.visits()]
        points += [_visit_point(extended, ri, k) for k in new_kinds]
        matrix = provider.matrix(points)
        terms = vehicle_terms(extended, vi, 0, 1)
        if terms is None:
            exclude("unavailable")
            continue
        base = [make_node(extended, r, k, 2 + i) for i, (r, k) in enumerate(existing)]
        new = [make_node(extended, ri, k, 2 + len(existing) + i) for i, k in enumerate(new_kinds)]
        if route is not None:
            base_distance = route.distance
        else:
            # Its commitments alone, or the empty trip from its start to its end depot (a
            # car out on the road drives home anyway): only the difference is added.
            before = simulate(base, terms, matrix.durations, matrix.distances)
            if isinstance(before, str):
                exclude(before)  # its commitments alone do not fit (never expected)
                continue
            base_distance = before.distance
        opening = next(
            c for c in (vehicle.fixed_cost, problem.vehicle_cost, auto_cost) if c is not None
        )
        extra_cost = 0.0 if route is not None or base else opening
        best: tuple[float, list[StopNode], Timeline] | None = None
        failures: dict[str, int] = {}
        for nodes in _insertions(base, new):
            timeline = simulate(nodes, terms, matrix.durations, matrix.distances)
            if isinstance(timeline, str):
                failures[timeline] = failures.get(timeline, 0) + 1
                continue
            cost = timeline.distance - base_distance + extra_cost
            if best is None or cost < best[0]:
                best = (cost, nodes, timeline)
        if best is None:
            # The reason most positions failed for (time windows, when in doubt).
            exclude(max(sorted(failures), key=lambda k: failures[k], default="time_window"))
            continue
        cost, nodes, timeline = best
        found.append(
            Insertion(
                vehicle_id=vehicle.id,
                cost=cost,
                added_distance=cost - extra_cost,
                route=route_from_timeline(extended, vi, nodes, timeline),
            )
        )
    found.sort(key=lambda i: i.cost)  # stable: equal costs keep the vehicles' order
    return InsertionRanking(
        insertions=tuple(found[:limit] if limit is not None else found),
        eligible=eligible,
        feasible=len(found),
        excluded=tuple(sorted(excluded.items())),
        complete=complete,
        elapsed=time.monotonic() - started,
    )


def insert_urgent(
    plan: Plan,
    problem: Problem,
    request: Request,
    *,
    time_limit: float = 0.9,
    provider: MatrixProvider | None = None,
) -> Plan:
    """Inserts one urgent request into `plan` (made for `problem`) at its cheapest place.

    Every committed stop keeps its vehicle and its order; only times may move later within
    their windows. Exact best insertion over every vehicle and position pair, so it
    typically takes milliseconds; `time_limit` bounds it for very large plans (the best
    position found so far is kept). The returned plan is for `problem` plus `request`.
    """
    ranking = rank_insertions(
        plan, problem, request, limit=1, time_limit=time_limit, provider=provider
    )
    new_routes = list(plan.routes)
    assignments = list(plan.assignments)
    unserved = list(plan.unserved)
    if not ranking.insertions:
        wrong_type = dict(ranking.excluded).get(UnservedReason.NO_ALLOWED_BODY_TYPE, 0)
        # 0: no vehicle of an allowed body type, 1: none with the seats (and licence), 2: no room
        stage = 2 if ranking.eligible else (1 if wrong_type < len(problem.vehicles) else 0)
        reason = [
            (UnservedReason.NO_ALLOWED_BODY_TYPE, "no vehicle has an allowed body type"),
            (UnservedReason.NOT_ENOUGH_SEATS, f"no allowed vehicle has {request.passengers} seats"),
            (
                UnservedReason.NO_CAPACITY_LEFT,
                "no vehicle can take it without moving a committed trip",
            ),
        ][stage]
        unserved.append(Unserved(request.id, reason[0], reason[1]))
    else:
        best = ranking.insertions[0]
        route = best.route
        replaced = False
        for i, old in enumerate(new_routes):
            if old.vehicle_id == best.vehicle_id:
                new_routes[i] = route
                replaced = True
        if not replaced:
            new_routes.append(route)
        others = len(route.request_ids()) - 1
        assignments.append(
            Assignment(
                request_id=request.id,
                vehicle_id=best.vehicle_id,
                why=(
                    f"{best.vehicle_id}: cheapest feasible insertion (+{best.cost:.1f} distance) "
                    f"among all vehicles, committed trips unchanged; "
                    + (f"shares the route with {others} request(s)" if others else "own route")
                ),
                eligible_vehicles=ranking.eligible,
            )
        )
    stats = dict(plan.stats)
    stats["urgent_insert_s"] = f"{ranking.elapsed:.4f}"
    return Plan(
        routes=tuple(new_routes),
        assignments=tuple(assignments),
        unserved=tuple(unserved),
        stats=tuple(sorted(stats.items())),
    )


def _with_request(problem: Problem, request: Request) -> Problem:
    return Problem(
        requests=(*problem.requests, request),
        vehicles=problem.vehicles,
        drivers=problem.drivers,
        horizon=problem.horizon,
        vehicle_cost=problem.vehicle_cost,
        name=problem.name,
    )


def _fixed_cost_hint(plan: Plan) -> float:
    """Without a configured vehicle cost, opening a vehicle costs about the longest route."""
    return max((r.distance for r in plan.routes), default=0.0) + 1.0


def _visit_point(problem: Problem, r: int, kind: StopKind) -> Location:
    request = problem.requests[r]
    visit = request.pickup if kind is StopKind.PICKUP else request.dropoff
    assert visit is not None
    return visit.point


def _insertions(base: list[StopNode], new: list[StopNode]) -> list[list[StopNode]]:
    """Every way to insert the new stops (in order) into base without reordering base."""
    n = len(base)
    if len(new) == 1:
        return [[*base[:i], new[0], *base[i:]] for i in range(n + 1)]
    pickup, dropoff = new
    out = []
    for i in range(n + 1):
        for j in range(i, n + 1):
            out.append([*base[:i], pickup, *base[i:j], dropoff, *base[j:]])
    return out
