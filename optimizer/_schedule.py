"""Float schedule of one route: earliest service starts, loads, distance, driving. Private.

Used to turn a solver's visiting order into a Plan and to try urgent insertions. The
feasibility checker in `optimizer.checker` is written separately on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optimizer._instance import StopNode, VehicleTerms
from optimizer.model import StopKind

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Timeline:
    """Times are relative to the horizon start; `starts[i]` is when service i begins."""

    depart: float
    arrivals: tuple[float, ...]
    starts: tuple[float, ...]
    loads: tuple[int, ...]
    end: float
    distance: float
    driving: float


def is_single(node: StopNode) -> bool:
    """A single-stop request's drop-off: its load is on board from the depot."""
    return node.kind is StopKind.DROPOFF and node.demand > 0


def simulate(
    nodes: Sequence[StopNode],
    terms: VehicleTerms,
    durations: npt.NDArray[np.float64],
    distances: npt.NDArray[np.float64],
) -> Timeline | str:
    """The earliest feasible schedule of `nodes` in order, or why there is none."""
    load = sum(n.demand for n in nodes if is_single(n))
    if load > terms.capacity:
        return "capacity"
    t = terms.ready
    here = terms.start_loc
    dist = 0.0
    drive = 0.0
    arrivals: list[float] = []
    starts: list[float] = []
    loads: list[int] = []
    open_pickups: set[int] = set()
    for node in nodes:
        travel = float(durations[here, node.loc])
        arrive = t + travel
        start = max(arrive, node.ready)
        if start > node.due + _EPS:
            return "time_window"
        if node.kind is StopKind.PICKUP:
            open_pickups.add(node.request)
            load += node.demand
        elif is_single(node):
            load -= node.demand
        else:
            if node.request not in open_pickups:
                return "precedence"
            open_pickups.discard(node.request)
            load += node.demand
        if load > terms.capacity or load < 0:
            return "capacity"
        dist += float(distances[here, node.loc])
        drive += travel
        arrivals.append(arrive)
        starts.append(start)
        loads.append(load)
        t = start + node.duration
        here = node.loc
    if open_pickups:
        return "precedence"
    travel = float(durations[here, terms.end_loc])
    end = t + travel
    dist += float(distances[here, terms.end_loc])
    drive += travel
    if end > terms.due + _EPS:
        return "time_window"
    if terms.max_distance is not None and dist > terms.max_distance + _EPS:
        return "range"
    if terms.max_driving is not None and drive > terms.max_driving + _EPS:
        return "driving_limit"
    depart = terms.ready
    if nodes:
        # Leave as late as the first stop allows instead of waiting there.
        first_leg = float(durations[terms.start_loc, nodes[0].loc])
        depart = max(terms.ready, starts[0] - first_leg)
        arrivals[0] = depart + first_leg
    return Timeline(
        depart=depart,
        arrivals=tuple(arrivals),
        starts=tuple(starts),
        loads=tuple(loads),
        end=end,
        distance=dist,
        driving=drive,
    )
