"""Urgent suggestions (推荐车辆): which vehicle and driver should take one waiting trip now.

Reads what auto-assign reads (`candidate_vehicles` / `candidate_drivers`: vehicles
the dispatcher can send incl. shared pools, in service, of an allowed body type; active
drivers in scope with a valid licence; active bookings), screens the manual rules that need
no route (seats, BEV range, booked at that time, a free driver whose licence fits), and has
the child process (`suggest.rank_snapshot`, `optimizer.rank_insertions`) rank the rest by
cheapest insertion around their bookings. Nothing is written: reading is not audited; the
dispatcher books a suggestion through the manual `POST /trips/{id}/assign`.

A vehicle sets out from its live position when the fix is at most `LIVE_FRESH_MIN` old, the
trip departs within `LIVE_WITHIN_H` and the car is not on a booking right now; otherwise from
its depot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.assignments import rules
from dispatch.assignments.checks import ASSIGNABLE
from dispatch.assignments.planning import candidate_vehicles
from dispatch.assignments.repository import active_bookings, overlaps
from dispatch.optimize import problem, schemas, suggest
from dispatch.optimize.service import DISPATCH, candidate_drivers, lending_units
from dispatch.optimize.worker import make_executor
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.state import require_state
from fleet.errors import FleetError
from fleet.fields import require_stored_in_range
from fleet.geo import point_from_db
from fleet.identity.principal import Principal
from fleet.identity.service import get_org
from fleet.logging import get_logger
from fleet.registry.models import Driver, Vehicle
from fleet.registry.visibility import UnitOrg, vehicle_visibility

log = get_logger("dispatch.optimize.suggestions")
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
LIVE_FRESH_MIN = 15.0
LIVE_WITHIN_H = 2.0
# Bookings this far before the departure / after the return cannot change the answer.
BOOKING_MARGIN_H = 12.0
RANK_TIMEOUT_S = 10.0
_LIVE = text(
    "SELECT vehicle_id, ST_Y(geom), ST_X(geom), ts FROM latest_positions"
    " WHERE vehicle_id = ANY(:ids) AND ts >= :since AND fix IS NOT FALSE"
)


class SuggestionsUnavailable(FleetError):
    status = 503
    code = "suggestions_unavailable"


class SuggestionPool:
    """The API process's one spawned child for ranking (`suggest.rank_snapshot`).

    Created on first use (spawning and importing take ~1 s), or ahead of it by `start`,
    which the app's lifespan calls so a dispatcher's first urgent request does not pay for
    it; replaced if it breaks; shut down with the app (`dispatch.api.lifespan`)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = make_executor(1, warm=True)
        return self._pool

    def start(self) -> None:
        """Spawn and warm the child now, in the background (returns at once)."""
        self.get()

    def shutdown(self, *, wait: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


async def _rank(pool: SuggestionPool, snap: dict[str, Any], limit: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        future = loop.run_in_executor(pool.get(), suggest.rank_snapshot, snap, limit)
        try:
            return await asyncio.wait_for(future, RANK_TIMEOUT_S)
        except BrokenProcessPool:
            log.error("suggestions.pool_broken", attempt=attempt)
            pool.shutdown()
        except TimeoutError:
            log.error("suggestions.rank_timeout", timeout_s=RANK_TIMEOUT_S)
            pool.shutdown()
            break
    raise SuggestionsUnavailable("the ranking process is unavailable; retry shortly")


def _driver_picker(drivers: list[Driver], lenders: Collection[int] = ()) -> Any:
    """A function vehicle -> driver: a fitting free driver of the vehicle's own unit first,
    then any in scope (drivers of `lenders`, units outside the scope, drive only their own
    unit's pooled cars); the least capable licence that fits (keep A1s for buses), then id."""
    capability = {c: len(rules.LICENCE_COVERS.get(c, ())) for c in rules.LICENCE_COVERS}
    ordered = sorted(drivers, key=lambda d: (capability.get(d.licence_class, 9), d.id))
    by_unit: dict[int, list[Driver]] = {}
    for d in ordered:
        by_unit.setdefault(d.unit_id, []).append(d)
    ordered = [d for d in ordered if d.unit_id not in lenders]
    first_any: dict[str, Driver | None] = {}

    def first(pool: list[Driver], need: str) -> Driver | None:
        return next(
            (d for d in pool if need in rules.LICENCE_COVERS.get(d.licence_class, ())), None
        )

    def pick(v: Vehicle) -> Driver | None:
        need = rules.required_licence(v.body_type, v.seats)
        own = first(by_unit.get(v.unit_id, []), need)
        if own is not None:
            return own
        if need not in first_any:
            first_any[need] = first(ordered, need)
        return first_any[need]

    return pick


def _why(
    v: Vehicle,
    d: Driver,
    s: dict[str, Any],
    trip: TripRequest,
    start: str,
    position_at: datetime | None,
    now: datetime,
) -> str:
    where = (
        f"live position {max(0, (now - position_at).total_seconds()) / 60:.0f} min ago"
        if start == "live" and position_at is not None
        else "its depot"
    )
    pickup = datetime.fromisoformat(s["pickup_at"]).astimezone(LOCAL_TZ)
    when = "on time" if s["late_min"] < 0.5 else f"{s['late_min']:.0f} min after the departure"
    booked = (
        f"{s['bookings_before']} booking(s) before, {s['bookings_after']} after, kept"
        if s["bookings_before"] or s["bookings_after"]
        else "no other booking around it"
    )
    same = ", same unit" if d.unit_id == v.unit_id else ""
    return (
        f"{v.plate}: {v.body_type} with {rules.passenger_capacity(v.seats)} passenger seats for "
        f"{trip.passengers}; {s['distance_km']:.1f} km from the pickup ({where}); "
        f"+{s['added_km']:.1f} km driven; pickup {pickup:%H:%M} ({when}); {booked}; "
        f"driver {d.name} ({d.licence_class}{same}) free then"
    )


async def suggest_for_trip(
    session: AsyncSession,
    principal: Principal,
    trip_id: int,
    *,
    limit: int,
    pool: SuggestionPool,
) -> schemas.SuggestionsOut:
    """Up to `limit` vehicle + driver suggestions for a waiting trip, best first."""
    started = time.perf_counter()
    principal.require(DISPATCH)
    trip = await load_trip(session, principal, trip_id)
    unit = await get_org(session, trip.unit_id)
    principal.check(DISPATCH, unit.path, unit.system_path, what="trip")
    require_state(trip, *ASSIGNABLE, action="suggest vehicles for")
    require_stored_in_range(
        "the trip's departure or return", "departure_at", trip.departure_at, trip.return_at
    )
    now = datetime.now(UTC)
    allowed = list(trip.allowed_body_types)

    # Every vehicle the dispatcher can send: counted by why it is out before any route.
    visible, not_in_service, wrong_type = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Vehicle.status != "in_service"),
                func.count().filter(
                    Vehicle.status == "in_service", Vehicle.body_type.not_in(allowed)
                ),
            )
            .select_from(Vehicle)
            .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
            .where(vehicle_visibility(principal, DISPATCH))
        )
    ).one()
    excluded: dict[str, int] = {}

    def out(reason: str, n: int = 1) -> None:
        if n:
            excluded[reason] = excluded.get(reason, 0) + n

    out("vehicle_not_in_service", int(not_in_service))
    out("body_type_not_allowed", int(wrong_type))
    rows: Sequence[Any] = (
        await session.execute(
            candidate_vehicles(principal, allowed).add_columns(
                UnitOrg.name, func.ST_Y(Vehicle.depot), func.ST_X(Vehicle.depot)
            )
        )
    ).all()
    vehicles: list[tuple[Vehicle, str, tuple[float, float]]] = []
    for v, unit_name, lat, lon in rows:
        if rules.passenger_capacity(v.seats) < trip.passengers:
            out("not_enough_seats")
        elif v.energy == "bev" and (v.nev_range_km or 0) < trip.planned_km:
            out("nev_range_insufficient")
        else:
            vehicles.append((v, unit_name, (float(lat), float(lon))))
    paths = principal.paths(DISPATCH)
    lenders = await lending_units(session, paths, {v.unit_id for v, _, _ in vehicles})
    drivers = list(
        (await session.execute(candidate_drivers(paths, trip.return_at.date(), lenders))).scalars()
    )
    margin = timedelta(hours=BOOKING_MARGIN_H)
    vehicle_ids = [v.id for v, _, _ in vehicles]
    bookings = await active_bookings(
        session,
        max(now, trip.departure_at - margin),
        trip.return_at + margin,
        vehicle_ids=vehicle_ids,
        driver_ids=[d.id for d in drivers],
    )
    v_busy: dict[int, list[tuple[int, datetime, datetime]]] = {}
    v_clash: set[int] = set()
    d_clash: set[int] = set()
    for b in bookings:
        v_busy.setdefault(b.vehicle_id, []).append((b.id, b.starts_at, b.ends_at))
        if overlaps(b.starts_at, b.ends_at, trip.departure_at, trip.return_at):
            v_clash.add(b.vehicle_id)
            d_clash.add(b.driver_id)
    pick = _driver_picker([d for d in drivers if d.id not in d_clash], lenders)
    live: dict[int, tuple[float, float, datetime]] = {}
    if trip.departure_at <= now + timedelta(hours=LIVE_WITHIN_H) and vehicle_ids:
        since = now - timedelta(minutes=LIVE_FRESH_MIN)
        fixes: Sequence[Any] = (
            await session.execute(_LIVE, {"ids": vehicle_ids, "since": since})
        ).all()
        for vid, flat, flon, ts in fixes:
            live[int(vid)] = (float(flat), float(flon), ts)
    read_ms = (time.perf_counter() - started) * 1000.0

    chosen: dict[int, tuple[Vehicle, str, Driver, str, datetime | None]] = {}
    snap_vehicles: list[dict[str, Any]] = []
    for v, unit_name, depot in vehicles:
        if v.id in v_clash:
            out("vehicle_double_booked")
            continue
        driver = pick(v)
        if driver is None:
            out("no_driver")
            continue
        busy = sorted(v_busy.get(v.id, ()), key=lambda b: b[1])
        on_booking_now = any(s <= now < e for _, s, e in busy)
        fix = live.get(v.id) if not on_booking_now else None
        start = "live" if fix is not None else "depot"
        chosen[v.id] = (v, unit_name, driver, start, fix[2] if fix else None)
        snap_vehicles.append(
            {
                "vehicle_id": v.id,
                "plate": v.plate,
                "depot": list(depot),
                "start": [fix[0], fix[1]] if fix is not None else None,
                "capacity": rules.passenger_capacity(v.seats),
                "body_type": v.body_type,
                "energy": v.energy,
                "range_km": v.nev_range_km,
                "driver_id": None,
                "licence": None,
                "busy": [
                    [a, max(0.0, (s - now).total_seconds()), (e - now).total_seconds()]
                    for a, s, e in busy
                ],
                "zone": None,
            }
        )
    origin_pt = point_from_db(trip.origin) or {"lat": 0.0, "lon": 0.0}
    dest_pt = point_from_db(trip.destination) or origin_pt
    request = suggest.trip_request(
        problem.TripIn(
            id=trip.id,
            origin=(origin_pt["lat"], origin_pt["lon"]),
            destination=(dest_pt["lat"], dest_pt["lon"]),
            departure_at=trip.departure_at,
            return_at=trip.return_at,
            round_trip=trip.round_trip,
            passengers=trip.passengers,
            body_types=tuple(allowed),
            urgency=trip.urgency,
            planned_km=trip.planned_km,
            label=f"#{trip.id} {trip.origin_address} → {trip.destination_address}",
        ),
        now,
    )
    last = max(
        [request["due_s"] + request["block_s"], *(b[2] for sv in snap_vehicles for b in sv["busy"])]
    )
    snap = {
        "origin": now.isoformat(),
        "horizon_s": last + 4 * 3600.0,  # room to drive back to the depot
        "requests": [],
        "request": request,
        "vehicles": snap_vehicles,
    }
    built_ms = (time.perf_counter() - started) * 1000.0 - read_ms
    ranked: dict[str, Any] = {
        "suggestions": [],
        "feasible": 0,
        "excluded": {},
        "complete": True,
        "rank_ms": 0.0,
    }
    if snap_vehicles:
        ranked = await _rank(pool, snap, limit)
    for reason, n in ranked["excluded"].items():
        out(reason, n)
    suggestions = []
    for i, s in enumerate(ranked["suggestions"], start=1):
        v, unit_name, d, start, position_at = chosen[s["vehicle_id"]]
        suggestions.append(
            schemas.Suggestion(
                rank=i,
                vehicle=schemas.SuggestedVehicle(
                    id=v.id,
                    plate=v.plate,
                    body_type=v.body_type,
                    seats=v.seats,
                    energy=v.energy,
                    unit_id=v.unit_id,
                    unit_name=unit_name,
                    shared_pool=v.shared_pool,
                    start="live" if start == "live" else "depot",
                    position_at=position_at,
                    distance_km=s["distance_km"],
                ),
                driver=schemas.SuggestedDriver(
                    id=d.id, name=d.name, licence_class=d.licence_class, unit_id=d.unit_id
                ),
                added_km=s["added_km"],
                pickup_at=datetime.fromisoformat(s["pickup_at"]),
                late_min=s["late_min"],
                score=s["score"],
                bookings_before=s["bookings_before"],
                bookings_after=s["bookings_after"],
                why=_why(v, d, s, trip, start, position_at, now),
            )
        )
    total_ms = (time.perf_counter() - started) * 1000.0
    log.info(
        "suggestions.ranked",
        trip=trip.id,
        candidates=len(snap_vehicles),
        eligible=ranked["feasible"],
        total_ms=round(total_ms, 1),
    )
    return schemas.SuggestionsOut(
        trip_id=trip.id,
        state=trip.state,
        urgency=trip.urgency,
        departure_at=trip.departure_at,
        vehicles_visible=int(visible),
        eligible=int(ranked["feasible"]),
        excluded=dict(sorted(excluded.items())),
        suggestions=suggestions,
        complete=bool(ranked["complete"]),
        timings_ms={
            "read": round(read_ms, 1),
            "build": round(built_ms, 1),
            "rank_child": float(ranked["rank_ms"]),
            "total": round(total_ms, 1),
        },
    )
