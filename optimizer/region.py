"""Region mode: decompose by partition key (city/county), solve the parts in parallel
worker processes, merge, then give what is left to the shared pool in a second pass.

Partition: a request belongs to its `zone`; a vehicle with a zone serves that zone; the
shared pool (vehicles with `zone=None`) is split over the parts in proportion to their
requests, nearest part first. Requests committed to a vehicle follow that vehicle. Pass 2
solves the unserved requests of every part with every vehicle no part used, so a request
a county could not serve can still get a car from a neighbour or the pool.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace

from optimizer._instance import compile_problem
from optimizer.matrix import MatrixProvider
from optimizer.model import (
    XY,
    Location,
    Plan,
    Problem,
    Request,
    Unserved,
    UnservedReason,
    Vehicle,
)
from optimizer.solver import SolveOptions, solve

_SHARED = ""


def partition(problem: Problem) -> dict[str, Problem]:
    """Splits `problem` into one sub-problem per zone (the zone "" collects zone=None)."""
    committed_to = {ref.request_id: v.id for v in problem.vehicles for ref in v.committed}
    part_requests: dict[str, list[Request]] = defaultdict(list)
    vehicle_part: dict[str, str] = {}
    for v in problem.vehicles:
        if v.zone is not None:
            vehicle_part[v.id] = v.zone
    for v in problem.vehicles:
        if v.zone is None and v.committed:
            first = problem.request(v.committed[0].request_id)
            vehicle_part[v.id] = first.zone or _SHARED
    for r in problem.requests:
        owner = committed_to.get(r.id)
        part = vehicle_part.get(owner, r.zone or _SHARED) if owner else (r.zone or _SHARED)
        part_requests[part].append(r)

    zones = sorted(part_requests)
    pool = [v for v in problem.vehicles if v.id not in vehicle_part]
    total = sum(len(rs) for rs in part_requests.values()) or 1
    quota = {z: math.ceil(len(pool) * len(part_requests[z]) / total) for z in zones}
    centroid = {z: _centroid([r.dropoff.point for r in part_requests[z]]) for z in zones}
    for v in sorted(pool, key=lambda v: v.id):
        here = _xy(v.depot)
        open_zones = [z for z in zones if quota[z] > 0] or zones
        if not open_zones:
            break
        best = min(open_zones, key=lambda z: (_d2(here, centroid[z]), z))
        quota[best] -= 1
        vehicle_part[v.id] = best

    part_vehicles: dict[str, list[Vehicle]] = defaultdict(list)
    for v in problem.vehicles:
        part_vehicles[vehicle_part.get(v.id, _SHARED)].append(v)
    parts: dict[str, Problem] = {}
    for z in sorted(set(part_requests) | set(part_vehicles)):
        vehicles = part_vehicles.get(z, [])
        driver_ids = {v.driver_id for v in vehicles if v.driver_id}
        parts[z] = Problem(
            requests=tuple(part_requests.get(z, [])),
            vehicles=tuple(vehicles),
            drivers=tuple(d for d in problem.drivers if d.id in driver_ids),
            horizon=problem.horizon,
            vehicle_cost=problem.vehicle_cost,
            name=f"{problem.name}/{z or 'shared'}",
        )
    return parts


def _xy(p: Location) -> tuple[float, float]:
    return (p.x, p.y) if isinstance(p, XY) else (p.lon, p.lat)


def _centroid(points: list[Location]) -> tuple[float, float]:
    if not points:
        return (0.0, 0.0)
    xs, ys = zip(*(_xy(p) for p in points), strict=True)
    return (sum(xs) / len(xs), sum(ys) / len(ys))


def _d2(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


# Pass 2 offers each leftover request at most this many unused vehicles: the nearest of
# those that could serve it alone. All unused vehicles made pass 2 a routing model with
# ~1,700 vehicles for a city scope of 2,000 (bench.auto_assign), which OR-Tools did not
# finish within minutes of a 50 s limit.
PASS2_VEHICLES_PER_REQUEST = 20


def _pass2_problem(
    second: Problem, provider: MatrixProvider | None
) -> tuple[Problem, list[Unserved]]:
    """`second` restricted to the vehicles worth offering: per request, the nearest ones
    (start to its first stop) among those the solver's own screening says could serve it
    alone (body type, seats, time windows and availability, range, driving limit)."""
    inst = compile_problem(second, provider)
    dist = inst.matrix.distances
    chosen: set[int] = set()
    for ri, allowed in enumerate(inst.allowed):
        first = inst.stops[inst.request_stops[ri][0]].loc
        near = sorted(allowed, key=lambda vi: (dist[inst.vehicles[vi].start_loc, first], vi))
        chosen.update(near[:PASS2_VEHICLES_PER_REQUEST])
    vehicles = tuple(v for vi, v in enumerate(second.vehicles) if vi in chosen)
    driver_ids = {v.driver_id for v in vehicles}
    hopeless = [
        Unserved(second.requests[ri].id, reason, detail)
        for ri, (reason, detail) in sorted(inst.excluded.items())
    ]
    restricted = replace(
        second, vehicles=vehicles, drivers=tuple(d for d in second.drivers if d.id in driver_ids)
    )
    return restricted, hopeless


def _solve_part(
    args: tuple[Problem, float, int, MatrixProvider | None, SolveOptions | None],
) -> Plan:
    problem, limit, seed, provider, options = args
    if not problem.requests or not problem.vehicles:
        return solve(problem, time_limit=0.1, seed=seed, provider=provider, options=options)
    return solve(problem, time_limit=limit, seed=seed, provider=provider, options=options)


class _PartClock:
    """Time limits for the parts so that all of them end by `deadline`.

    Each part gets the time left divided by the rounds still to run (`workers` parts at a
    time), less the overrun seen so far: a solve takes longer than its limit (building the
    model, VROOM's uninterruptible construction, process hand-off), and on a 2-core machine
    that is ~1–2 s a part — with ten parts, a fixed split overshot the whole budget by 20 %.
    """

    def __init__(self, deadline: float, parts: int, workers: int) -> None:
        self.deadline = deadline
        self.left = parts
        self.workers = workers
        self.overruns: list[float] = []
        self.limits: list[float] = []

    def next_limit(self) -> float:
        rounds = max(1, math.ceil(self.left / self.workers))
        overrun = max(self.overruns[-self.workers * 2 :], default=0.0)
        limit = max(0.5, (self.deadline - time.monotonic()) / rounds - overrun)
        self.left -= 1
        self.limits.append(limit)
        return limit

    def finished(self, limit: float, took: float) -> None:
        self.overruns.append(max(0.0, took - limit))

    def mean_limit(self) -> float:
        return sum(self.limits) / len(self.limits) if self.limits else 0.0


def solve_region(
    problem: Problem,
    *,
    time_limit: float,
    seed: int = 0,
    workers: int = 2,
    provider: MatrixProvider | None = None,
    options: SolveOptions | None = None,
    second_pass_share: float = 0.2,
) -> Plan:
    """Solves the parts in `workers` processes, merges, re-plans leftovers with the pool."""
    started = time.monotonic()
    # One VROOM thread per worker process: the workers already fill the cores.
    options = options or SolveOptions(vroom_threads=1)
    parts = partition(problem)
    busy = [p for p in parts.values() if p.requests and p.vehicles]
    idle = [p for p in parts.values() if not (p.requests and p.vehicles)]
    # Parts are solved `workers` at a time; keep a share of the time for pass 2 and merging.
    budget = time_limit * (1.0 - second_pass_share) * 0.95
    sched = _PartClock(started + budget, len(busy), max(1, workers))
    solved: list[Plan | None] = [None] * len(busy)
    if workers > 1 and len(busy) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            running: dict[Future[Plan], tuple[int, float, float]] = {}
            queue = list(enumerate(busy))
            while queue or running:
                while queue and len(running) < workers:
                    i, part = queue.pop(0)
                    limit = sched.next_limit()
                    job = (part, limit, seed, provider, options)
                    running[pool.submit(_solve_part, job)] = (i, limit, time.monotonic())
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i, limit, t0 = running.pop(fut)
                    solved[i] = fut.result()
                    sched.finished(limit, time.monotonic() - t0)
    else:
        for i, part in enumerate(busy):
            limit = sched.next_limit()
            t0 = time.monotonic()
            solved[i] = _solve_part((part, limit, seed, provider, options))
            sched.finished(limit, time.monotonic() - t0)
    plans = [p for p in solved if p is not None]
    assert len(plans) == len(busy)
    per_part = sched.mean_limit()

    routes = [r for plan in plans for r in plan.routes]
    assignments = [a for plan in plans for a in plan.assignments]
    leftover_ids = {u.request_id for plan in plans for u in plan.unserved}
    leftover_ids |= {r.id for p in idle for r in p.requests}
    used = {r.vehicle_id for r in routes}
    leftover = tuple(r for r in problem.requests if r.id in leftover_ids)
    spare = tuple(v for v in problem.vehicles if v.id not in used)
    unserved = [u for plan in plans for u in plan.unserved]
    stats = {
        "parts": str(len(busy)),
        "per_part_s": f"{per_part:.1f}",
        "parts_s": f"{time.monotonic() - started:.1f}",
    }
    if leftover and spare:
        second = Problem(
            requests=leftover,
            vehicles=spare,
            drivers=tuple(d for d in problem.drivers if d.id in {v.driver_id for v in spare}),
            horizon=problem.horizon,
            vehicle_cost=problem.vehicle_cost,
            name=f"{problem.name}/pass2",
        )
        second, hopeless = _pass2_problem(second, provider)
        stats["pass2_vehicles"] = f"{len(second.vehicles)} of {len(spare)}"
        stats["pass2_requests"] = str(len(leftover))
        if second.vehicles:
            remaining = time_limit - (time.monotonic() - started)
            plan2 = solve(
                second,
                time_limit=max(0.5, remaining * 0.9),
                seed=seed,
                provider=provider,
                options=options,
            )
            routes += plan2.routes
            assignments += plan2.assignments
            unserved = list(plan2.unserved)
            stats.update({f"pass2_{k}": v for k, v in plan2.stats if k.endswith("_s")})
        else:  # no unused vehicle could serve any leftover, even alone: say why
            unserved = hopeless
        stats["pass2_served"] = str(len(leftover) - len(unserved))
    else:
        unserved += [
            Unserved(r.id, UnservedReason.NO_VEHICLES, "no vehicle in its zone or the pool")
            for p in idle
            for r in p.requests
        ]
    stats["solve_s"] = f"{time.monotonic() - started:.3f}"
    return Plan(
        routes=tuple(routes),
        assignments=tuple(assignments),
        unserved=tuple(unserved),
        stats=tuple(sorted(stats.items())),
    )
