"""VROOM (pyvroom) as a warm start: a baseline solve, then vehicle elimination. Private.

Elimination: drop the vehicle with the smallest route and ask VROOM to serve everything
with the rest; VROOM is deterministic, so repeated attempts perturb its cost matrix with
seeded noise (travel times stay exact, so every answer is still feasible). Whatever comes
out is only a starting point: OR-Tools re-reads it against the full model.

Notes (see benchmarks/README.md): matrices and windows are unsigned 32-bit, so times are
relative to the horizon start; the summary cost can wrap, so costs are recomputed here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from optimizer._instance import Instance

try:  # pyvroom is optional at run time: without it, solve() uses OR-Tools alone.
    import vroom

    AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    vroom = None
    AVAILABLE = False

_UINT32 = 2**32 - 1
#: requests x vehicles up to which VROOM runs at full exploration (Li & Lim 100: 2,500).
_SMALL = 5_000


@dataclass(slots=True)
class Candidate:
    routes: list[list[int]]
    served: int
    objective: int

    def key(self) -> tuple[int, int]:
        return (self.objective, -self.served)


def usable(inst: Instance) -> bool:
    """VROOM can model the instance exactly (no committed stops, fits in 32 bits)."""
    if not AVAILABLE or any(t.committed for t in inst.vehicles):
        return False
    horizon = max((inst.vehicle_ticks(v)[1] for v in range(len(inst.vehicles))), default=0)
    return horizon < _UINT32 and int(inst.dur.max(initial=0)) < _UINT32


def _solve_once(
    inst: Instance,
    vehicles: list[int],
    *,
    exploration: int,
    threads: int,
    noise: float,
    rng: np.random.Generator,
    timeout: float | None = None,
    priorities: dict[int, int] | None = None,
    initial: list[list[int]] | None = None,
) -> Candidate:
    problem = vroom.Input()
    problem.set_durations_matrix("car", inst.dur.astype(np.uint32))
    costs = inst.dist.astype(np.float64)
    if noise > 0:
        costs = costs * (1.0 + noise * rng.random(costs.shape))
    problem.set_costs_matrix("car", np.minimum(costs, _UINT32).astype(np.uint32))
    has_range = any(inst.vehicles[v].max_distance is not None for v in vehicles)
    if has_range:
        problem.set_distances_matrix("car", inst.dist.astype(np.uint32))

    # Per-request vehicle restrictions as skills: one skill per distinct allowed set.
    skill_of: dict[tuple[int, ...], int] = {}
    vehicle_skills: dict[int, set[int]] = {v: set() for v in vehicles}
    nv = len(inst.vehicles)
    for r, allowed in enumerate(inst.allowed):
        if r in inst.excluded or len(allowed) == nv:
            continue
        key = tuple(allowed)
        if key not in skill_of:
            skill_of[key] = len(skill_of) + 1
            for v in allowed:
                if v in vehicle_skills:
                    vehicle_skills[v].add(skill_of[key])

    for v in vehicles:
        terms = inst.vehicles[v]
        ready, due = inst.vehicle_ticks(v)
        extra: dict[str, Any] = {}
        if terms.max_distance is not None:
            extra["max_distance"] = min(_UINT32, int(terms.max_distance * inst.dist_scale))
        if terms.max_driving is not None:
            extra["max_travel_time"] = int(terms.max_driving * 1000)
        if initial is not None and initial[v]:
            extra["steps"] = [
                vroom.VehicleStepStart(),
                *(_step(inst, s) for s in initial[v]),
                vroom.VehicleStepEnd(),
            ]
        problem.add_vehicle(
            vroom.Vehicle(
                v + 1,
                start=terms.start_loc,
                end=terms.end_loc,
                capacity=[terms.capacity],
                skills=vehicle_skills[v] or None,
                time_window=vroom.TimeWindow(ready, max(ready, due)),
                costs=vroom.VehicleCosts(fixed=inst.fixed_cost_int(v)),
                **extra,
            )
        )
    for r, stops in enumerate(inst.request_stops):
        if r in inst.excluded:
            continue
        allowed = inst.allowed[r]
        skills = {skill_of[tuple(allowed)]} if len(allowed) < nv else None
        priority = min(100, inst.problem.requests[r].priority)
        if priorities is not None:
            priority = min(100, priority + priorities.get(r, 0))
        steps = []
        for s in stops:
            ready, due, duration = inst.stop_ticks(s)
            steps.append(
                dict(
                    id=s + 1,
                    location=inst.stops[s].loc,
                    default_service=duration,
                    time_windows=[vroom.TimeWindow(ready, max(ready, due))],
                )
            )
        amount = inst.stops[stops[0]].demand
        if len(stops) == 2:
            problem.add_shipment(
                vroom.ShipmentStep(**steps[0]),
                vroom.ShipmentStep(**steps[1]),
                amount=vroom.Amount([amount]),
                skills=skills,
                priority=priority,
            )
        else:
            problem.add_job(
                vroom.Job(
                    **steps[0], delivery=vroom.Amount([amount]), skills=skills, priority=priority
                )
            )

    limit = None if timeout is None else timedelta(seconds=max(0.01, timeout))
    solution = problem.solve(exploration_level=exploration, nb_threads=threads, timeout=limit)
    routes: list[list[int]] = [[] for _ in inst.vehicles]
    for route in solution.to_dict().get("routes", []):
        v = int(route["vehicle"]) - 1
        routes[v] = [
            int(step["id"]) - 1
            for step in route["steps"]
            if step["type"] in ("job", "pickup", "delivery")
        ]
    served = len({inst.stops[s].request for route in routes for s in route})
    return Candidate(routes=routes, served=served, objective=inst.objective(routes))


def _step(inst: Instance, s: int) -> Any:
    node = inst.stops[s]
    if len(inst.request_stops[node.request]) == 1:
        return vroom.VehicleStepSingle(s + 1)
    if s == inst.request_stops[node.request][0]:
        return vroom.VehicleStepPickup(s + 1)
    return vroom.VehicleStepDelivery(s + 1)


def warm_start(
    inst: Instance,
    *,
    deadline: float,
    seed: int = 0,
    threads: int = 2,
    noise: float = 0.3,
    patience: float = math.inf,
    baseline_deadline: float | None = None,
) -> tuple[Candidate | None, dict[str, str]]:
    """Baseline VROOM solve, then vehicle elimination with noisy restarts until `deadline`.

    Returns the best candidate (by the instance's integer objective) and a few stats.
    """
    stats: dict[str, str] = {}
    if not usable(inst):
        stats["vroom"] = "unused"
        return None, stats
    rng = np.random.default_rng(seed)
    everyone = list(range(len(inst.vehicles)))
    # VROOM's construction phase cannot be timed out and grows with jobs x vehicles:
    # full exploration on literature-sized instances, the lightest on big city parts.
    size = (len(inst.request_stops) - len(inst.excluded)) * len(inst.vehicles)
    top = 5 if size <= _SMALL else 1
    stats["vroom_exploration"] = str(top)
    best = _solve_once(
        inst,
        everyone,
        exploration=top,
        threads=threads,
        noise=0.0,
        rng=rng,
        timeout=(baseline_deadline or deadline) - time.monotonic(),
    )
    stats["vroom_baseline_vehicles"] = str(sum(1 for r in best.routes if r))
    best, attempts, eliminated = _eliminate(
        inst, best, deadline=deadline, rng=rng, threads=threads, noise=noise, patience=patience
    )
    stats["vroom_elimination"] = f"{eliminated} vehicles in {attempts} attempts"
    return best, stats


def _eliminate(
    inst: Instance,
    best: Candidate,
    *,
    deadline: float,
    rng: np.random.Generator,
    threads: int,
    noise: float,
    patience: float = math.inf,
    restart_after: int = 100,
) -> tuple[Candidate, int, int]:
    """Vehicle elimination as a walk (in the spirit of guided ejection search).

    Empty one of the smallest routes and let VROOM's local search, started from the
    remaining routes, re-insert its requests with one vehicle fewer. A failed attempt is
    not thrown away: its partial solution is the next starting point, and every request it
    left out gains priority (VROOM serves higher priorities first), so the walk keeps
    pushing the hard requests in. Cost noise diversifies the search. After
    `restart_after` failures the walk restarts from the best solution with another victim.
    The walk gives up `patience` seconds after its last success, leaving the time to
    OR-Tools' distance search.
    """
    last_success = time.monotonic()
    attempts = eliminated = failures = 0
    current: list[list[int]] | None = None
    fleet: list[int] = []
    boost: dict[int, int] = {}
    must = {inst.stops[s].request for route in best.routes for s in route}
    while time.monotonic() < min(deadline, last_success + patience):
        if current is None:
            used = [v for v, route in enumerate(best.routes) if route]
            if len(used) <= 1:
                break
            by_size = sorted(
                used, key=lambda v: (len(best.routes[v]), inst.route_cost(v, best.routes[v]))
            )
            # The smallest route first; after restarts, one of the three smallest.
            pick = 0 if failures < restart_after else int(rng.integers(0, min(3, len(used))))
            victim = by_size[pick]
            fleet = [v for v in used if v != victim]
            current = [list(r) if v != victim else [] for v, r in enumerate(best.routes)]
        attempts += 1
        try:
            cand = _solve_once(
                inst,
                fleet,
                exploration=int(rng.integers(1, 4)),
                threads=threads,
                noise=noise,
                rng=rng,
                timeout=deadline - time.monotonic(),
                priorities=boost,
                initial=current,
            )
        except Exception:  # a start VROOM rejects is just a failed attempt
            current = None
            failures += 1
            continue
        served = {inst.stops[s].request for route in cand.routes for s in route}
        if must <= served and cand.key() < best.key():
            best = cand
            eliminated += 1
            current, boost, failures = None, {}, 0
            last_success = time.monotonic()
            continue
        failures += 1
        for r in must - served:
            boost[r] = boost.get(r, 0) + 1
        current = cand.routes
        if failures % restart_after == 0:
            current, boost = None, {}
    return best, attempts, eliminated


def polish(
    inst: Instance,
    best: Candidate,
    *,
    deadline: float,
    seed: int = 0,
    threads: int = 2,
    noise: float = 0.3,
) -> tuple[Candidate, int]:
    """Noisy VROOM local searches from the best solution on its vehicle set (distance)."""
    rng = np.random.default_rng(seed + 1)
    fleet = [v for v, route in enumerate(best.routes) if route]
    tries = 0
    while time.monotonic() < deadline and fleet:
        tries += 1
        cand = _solve_once(
            inst,
            fleet,
            exploration=int(rng.integers(1, 4)),
            threads=threads,
            noise=noise * rng.random(),
            rng=rng,
            timeout=deadline - time.monotonic(),
            initial=best.routes,
        )
        if cand.served >= best.served and cand.key() < best.key():
            best = cand
    return best, tries
