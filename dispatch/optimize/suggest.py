"""Urgent suggestions, the pure half: rank the vehicles that could take one trip now.

The API (`suggestions.py`) reads the candidates and hands this module a JSON snapshot in
the auto-assign shape (`problem.py`: vehicles with their bookings as committed blocks at the
depot, the trip as a request), plus each vehicle's start (a fresh live position or the
depot). `rank_snapshot` runs in a child process: it asks `optimizer.rank_insertions` for
every vehicle's cheapest feasible insertion (committed bookings fixed) and orders them by

    score = added km + LATE_KM_PER_MIN x minutes the pickup is later than the departure

so a near, free car wins, a car that can only come late pays for it, and a car booked at
that time has no feasible insertion at all (it is counted as excluded, with its reason).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dispatch.optimize import problem
from fleet.distance import great_circle_m

# Pickup may start up to this late (an urgent trip waits for the nearest car rather than
# getting none); the booking itself stays [departure, return).
LATE_SLACK_MIN = 60.0
# Turnaround after the block before the car's next booking (auto-assign's default slack).
TURNAROUND_MIN = 10.0
# Ranking: a minute of lateness weighs like half a km of extra driving.
LATE_KM_PER_MIN = 0.5
# The optimizer's infeasibility reasons in the manual assignment's words.
_REASON = {
    "time_window": "cannot_reach_in_time",
    "range": "nev_range_insufficient",
    "no_allowed_body_type": "body_type_not_allowed",
    "not_enough_seats": "not_enough_seats",
}


def trip_request(
    trip: problem.TripIn, origin: datetime, *, late_slack_min: float = LATE_SLACK_MIN
) -> dict[str, Any]:
    """The trip as a snapshot request: pickup from its departure (or now) to `late_slack_min`
    later, the vehicle held for the whole booking plus the turnaround."""
    ready = max(0.0, (trip.departure_at - origin).total_seconds())
    block = (trip.return_at - trip.departure_at).total_seconds() + TURNAROUND_MIN * 60.0
    return {
        "trip_id": trip.id,
        "label": trip.label,
        "pickup": list(trip.origin),
        "dropoff": list(trip.origin if trip.round_trip else trip.destination),
        "ready_s": ready,
        "due_s": ready + late_slack_min * 60.0,
        "departure_s": (trip.departure_at - origin).total_seconds(),
        "block_s": block,
        "passengers": trip.passengers,
        "body_types": list(trip.body_types),
        "priority": problem.PRIORITY.get(trip.urgency, 1),
        "planned_km": trip.planned_km,
        "zone": None,
    }


def rank_snapshot(snap: dict[str, Any], limit: int, time_limit_s: float = 0.8) -> dict[str, Any]:
    """The best `limit` vehicles for the snapshot's one request, with counts by reason.

    Runs in the API's suggestion process: pure, JSON in and out."""
    import dataclasses

    from optimizer import Plan, StopKind, rank_insertions

    base = problem.to_problem({**snap, "requests": []})
    # Nearest first, not fewest vehicles: opening an unused car costs nothing extra here.
    base = dataclasses.replace(base, vehicle_cost=0.0, name="suggest")
    r = snap["request"]
    request = problem.request_of(r)
    ranking = rank_insertions(Plan(routes=()), base, request, time_limit=time_limit_s)
    origin = datetime.fromisoformat(snap["origin"])
    vehs = {f"v{v['vehicle_id']}": v for v in snap["vehicles"]}
    scored = []
    for ins in ranking.insertions:
        v = vehs[ins.vehicle_id]
        pickup = next(
            s for s in ins.route.stops if s.request_id == request.id and s.kind is StopKind.PICKUP
        )
        late_min = max(0.0, (pickup.start - max(r["departure_s"], 0.0)) / 60.0)
        added_km = ins.added_distance / 1000.0
        before = sum(
            1
            for s in ins.route.stops
            if s.kind is StopKind.PICKUP and s.request_id[0] == "b" and s.start < pickup.start
        )
        start = v.get("start") or v["depot"]
        scored.append(
            {
                "vehicle_id": v["vehicle_id"],
                "added_km": round(added_km, 2),
                "late_min": round(late_min, 1),
                "score": round(added_km + LATE_KM_PER_MIN * late_min, 2),
                "pickup_at": (origin + timedelta(seconds=pickup.start)).isoformat(),
                "distance_km": round(great_circle_m(start[0], start[1], *r["pickup"]) / 1000, 2),
                "bookings_before": before,
                "bookings_after": len(v["busy"]) - before,
            }
        )
    scored.sort(key=lambda s: (s["score"], s["vehicle_id"]))
    excluded: dict[str, int] = {}
    for reason, n in ranking.excluded:
        key = _REASON.get(reason, reason)
        excluded[key] = excluded.get(key, 0) + n
    return {
        "suggestions": scored[:limit],
        "feasible": ranking.feasible,
        "excluded": excluded,
        "complete": ranking.complete,
        "rank_ms": round(ranking.elapsed * 1000.0, 1),
    }
