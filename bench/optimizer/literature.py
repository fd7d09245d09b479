"""Our solver and VROOM side by side on Li & Lim / Solomon instances, same wall time."""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from optimizer.checker import check
from optimizer.model import XY, Plan, PlannedStop, Route, StopKind
from optimizer.readers import BenchmarkInstance, read_instance
from optimizer.solver import solve

REPO_ROOT = Path(__file__).resolve().parents[2]
SETS = {"lilim_100": "lilim", "solomon_100": "solomon"}


def benchmarks_dir() -> Path:
    """`FLEET_BENCHMARKS_DIR`, else ../shared/benchmarks next to the repository."""
    env = os.environ.get("FLEET_BENCHMARKS_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "benchmarks")


@dataclass(slots=True)
class Outcome:
    vehicles: int
    distance: float
    seconds: float
    ok: bool
    note: str = ""


@dataclass(slots=True)
class Row:
    name: str
    bks_vehicles: int
    bks_distance: float
    ours: Outcome
    vroom: Outcome | None


def load_bks(folder: Path) -> dict[str, tuple[int, float]]:
    with (folder / "bks.csv").open(encoding="utf-8") as fh:
        return {
            r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(fh)
        }


def run_ours(inst: BenchmarkInstance, time_limit: float, seed: int) -> Outcome:
    started = time.monotonic()
    plan = solve(inst.problem, time_limit=time_limit, seed=seed)
    seconds = time.monotonic() - started
    report = check(inst.problem, plan, require_all=True)
    note = "" if report.ok else ",".join(sorted(report.kinds()))
    return Outcome(report.vehicles, report.distance, seconds, report.ok, note)


def run_vroom(inst: BenchmarkInstance, time_limit: float, threads: int = 2) -> Outcome:
    """VROOM exploration level 5 with a fixed cost per vehicle above any route's cost,
    times scaled x1000 and rounded up; distances recomputed by the checker."""
    import vroom

    problem = inst.problem
    points: list[XY] = []
    index: dict[XY, int] = {}

    def loc(p: object) -> int:
        assert isinstance(p, XY)
        if p not in index:
            index[p] = len(points)
            points.append(p)
        return index[p]

    depot = loc(problem.vehicles[0].depot)
    steps: dict[int, tuple[str, StopKind]] = {}
    scale = 1000
    jobs = []
    for request in problem.requests:
        for _, visit in request.visits():
            loc(visit.point)
    xy = np.array([[p.x, p.y] for p in points])
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    durations = np.ceil(dist * scale - 1e-6).astype(np.uint32)
    started = time.monotonic()
    vinput = vroom.Input()
    vinput.set_durations_matrix("car", durations)
    fixed = int(min(2**31, durations.max(axis=1).sum() + 1))
    horizon = problem.horizon
    for v in problem.vehicles:
        w = v.available or horizon
        vinput.add_vehicle(
            vroom.Vehicle(
                int(v.id.lstrip("v")),
                start=depot,
                end=depot,
                capacity=[v.seats],
                time_window=vroom.TimeWindow(int(w.start * scale), int(w.end * scale)),
                costs=vroom.VehicleCosts(fixed=fixed),
            )
        )
    next_id = 1
    for request in problem.requests:
        made = []
        for kind, visit in request.visits():
            window = visit.window or horizon
            steps[next_id] = (request.id, kind)
            made.append(
                dict(
                    id=next_id,
                    location=index[visit.point],  # type: ignore[index]
                    default_service=math.ceil(visit.duration * scale - 1e-6),
                    time_windows=[
                        vroom.TimeWindow(
                            math.ceil(window.start * scale - 1e-6),
                            math.floor(window.end * scale + 1e-6),
                        )
                    ],
                )
            )
            next_id += 1
        if len(made) == 2:
            vinput.add_shipment(
                vroom.ShipmentStep(**made[0]),
                vroom.ShipmentStep(**made[1]),
                amount=vroom.Amount([request.passengers]),
            )
        else:
            jobs.append(vroom.Job(**made[0], delivery=vroom.Amount([request.passengers])))
    if jobs:
        vinput.add_job(jobs)
    solution = vinput.solve(
        exploration_level=5, nb_threads=threads, timeout=timedelta(seconds=time_limit)
    )
    seconds = time.monotonic() - started
    routes = []
    for route in solution.to_dict().get("routes", []):
        stops = tuple(
            PlannedStop(*steps[int(s["id"])], 0.0, 0.0, 0.0, 0)
            for s in route["steps"]
            if s["type"] in ("job", "pickup", "delivery")
        )
        routes.append(Route(f"v{route['vehicle']}", stops, 0.0, 0.0, 0.0, 0.0))
    plan = Plan(routes=tuple(routes))
    report = check(problem, plan, require_all=True)
    note = "" if report.ok else ",".join(sorted(report.kinds()))
    return Outcome(report.vehicles, report.distance, seconds, report.ok, note)


def gap(outcome: Outcome, bks_vehicles: int, bks_distance: float) -> float | None:
    if outcome.vehicles != bks_vehicles or not outcome.ok:
        return None
    return (outcome.distance - bks_distance) / bks_distance * 100.0


def worse(a: Outcome, b: Outcome) -> bool:
    """a is worse than b under the hierarchical objective (infeasible is worst)."""
    if a.ok != b.ok:
        return not a.ok
    return (a.vehicles, round(a.distance, 4)) > (b.vehicles, round(b.distance, 4))


def _fmt(o: Outcome | None, bv: int, bd: float) -> str:
    if o is None:
        return f"{'-':>20}"
    g = gap(o, bv, bd)
    gs = f"{g:6.2f}%" if g is not None else "   -   "
    flag = "" if o.ok else f" INFEASIBLE({o.note})"
    return f"{o.vehicles:3d} {o.distance:9.2f} {gs} {o.seconds:5.1f}s{flag}"


def run_set(
    set_name: str,
    *,
    time_limit: float,
    seed: int,
    only: list[str] | None,
    with_vroom: bool,
    out: list[str],
) -> list[Row]:
    folder = benchmarks_dir() / set_name
    fmt = SETS[set_name]
    bks = load_bks(folder)
    names = sorted(bks) if not only else [n for n in sorted(bks) if n in only]
    header = (
        f"{'instance':10} {'BKS':>14} | {'ours: veh dist gap time':>31} | "
        f"{'VROOM: veh dist gap time':>31} | vs VROOM"
    )
    print(header, flush=True)
    out.append(header)
    rows: list[Row] = []
    for name in names:
        path = folder / f"{name}.txt"
        inst = read_instance(path, fmt)
        bv, bd = bks[name]
        ours = run_ours(inst, time_limit, seed)
        theirs = run_vroom(inst, time_limit) if with_vroom else None
        cmp = "-"
        if theirs is not None:
            cmp = "WORSE" if worse(ours, theirs) else ("better" if worse(theirs, ours) else "same")
        line = (
            f"{name:10} {bv:3d} {bd:10.2f} | {_fmt(ours, bv, bd)} | {_fmt(theirs, bv, bd)} | {cmp}"
        )
        print(line, flush=True)
        out.append(line)
        rows.append(Row(name, bv, bd, ours, theirs))
    for line in summary(set_name, rows):
        print(line, flush=True)
        out.append(line)
    return rows


def summary(set_name: str, rows: list[Row]) -> list[str]:
    lines = [f"summary {set_name} ({len(rows)} instances)"]
    solvers: list[tuple[str, list[Outcome]]] = [("ours", [r.ours for r in rows])]
    if all(r.vroom is not None for r in rows):
        solvers.append(("VROOM", [r.vroom for r in rows if r.vroom is not None]))
    for label, outcomes in solvers:
        hits = [
            (o, r)
            for o, r in zip(outcomes, rows, strict=True)
            if o.ok and o.vehicles <= r.bks_vehicles
        ]
        gaps = [
            g
            for o, r in zip(outcomes, rows, strict=True)
            if (g := gap(o, r.bks_vehicles, r.bks_distance)) is not None
        ]
        feasible = sum(o.ok for o in outcomes)
        lines.append(
            f"  {label:6} BKS vehicles {len(hits)}/{len(rows)}; "
            f"vehicles {sum(o.vehicles for o in outcomes)} "
            f"(BKS {sum(r.bks_vehicles for r in rows)}); "
            f"gap on hits mean {statistics.fmean(gaps) if gaps else float('nan'):.2f}% "
            f"max {max(gaps) if gaps else float('nan'):.2f}%; feasible {feasible}/{len(rows)}; "
            f"time mean {statistics.fmean(o.seconds for o in outcomes):.2f}s"
        )
    if len(solvers) == 2:
        worse_names = [r.name for r in rows if r.vroom is not None and worse(r.ours, r.vroom)]
        better = sum(1 for r in rows if r.vroom is not None and worse(r.vroom, r.ours))
        lines.append(
            f"  ours worse than VROOM on {len(worse_names)} "
            f"({', '.join(worse_names) or 'none'}); better on {better}"
        )
    return lines
