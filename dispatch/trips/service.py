"""Trip request rules: filing, editing drafts, submitting, cancelling, reading in scope."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.approvals import service as approvals
from dispatch.assignments.booking import release_assignment
from dispatch.assignments.models import Assignment
from dispatch.standards.service import allowed_body_types
from dispatch.trips import repository, schemas
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.state import BEFORE_DEPARTURE, require_state, transition
from fleet import audit
from fleet.distance import great_circle_m
from fleet.errors import Forbidden, Invalid
from fleet.fields import limits
from fleet.geo import point_to_db
from fleet.identity.models import Org
from fleet.identity.principal import Principal, territory_of
from fleet.identity.service import get_org, load_org
from fleet.paging import fetch_page

REQUEST = ("requester",)
CANCEL_AS_STAFF = ("dispatcher", "admin")
# Road distance ≈ great-circle distance × circuity (typical for Chinese road networks, 1.2–1.4).
CIRCUITY = 1.3
MAX_TRIP = timedelta(days=14)


def planned_km(points: list[tuple[float, float]], round_trip: bool) -> float:
    """Planned road km: great-circle legs × circuity, doubled for wait-and-return."""
    legs = sum(great_circle_m(*a, *b) for a, b in itertools.pairwise(points)) / 1000
    return round(legs * CIRCUITY * (2 if round_trip else 1), 2)


async def derive_kind(
    session: AsyncSession, unit: Org, body: schemas.TripIn
) -> tuple[str, int | None]:
    """Request kind for the approval chain, and the destination's county.

    A place's county is the one whose drawn border covers it (`repository.county_at`), so
    the chain follows the county the requester saw on the map."""
    counties = [
        await repository.county_at(session, place.lat, place.lon)
        for place in (body.destination, *body.stops)
    ]
    dest_county = counties[0]
    if body.urgency == "emergency":
        return "emergency", dest_county.id if dest_county else None
    home = territory_of(unit.path)
    home_city = ".".join(unit.path.split(".")[:2])
    kind = "in_county"
    for county in counties:
        if county is None:
            continue
        if not (county.path == home or county.path.startswith(home + ".")):
            if county.path.startswith(home_city + ".") and home_city != home:
                kind = "cross_county" if kind == "in_county" else kind
            else:
                kind = "cross_city"
    return kind, dest_county.id if dest_county else None


async def _check_passengers(session: AsyncSession, unit: Org, body: schemas.TripIn) -> list[int]:
    """Passenger accounts read the trip and may rate it, so each must be an existing, active
    user of the requesting unit's territory (its county; a city's or the region's own unit:
    that city or region). A missing, inactive or foreign id gets the same 422."""
    ids = list(dict.fromkeys(body.passenger_user_ids))
    if len(ids) > body.passengers:
        raise Invalid(
            f"{len(ids)} passenger accounts for {body.passengers} passengers",
            field="passenger_user_ids",
            code="invalid_passenger",
        )
    ok = set(await repository.users_in_territory(session, ids, territory_of(unit.path)))
    for i, uid in enumerate(body.passenger_user_ids):
        if uid not in ok:
            raise Invalid(
                f"passenger {uid} is not an active user of this trip's county",
                field=f"passenger_user_ids.{i}",
                code="invalid_passenger",
            )
    return ids


async def _fill(session: AsyncSession, trip: TripRequest, unit: Org, body: schemas.TripIn) -> None:
    # departure_at is bounded near now by its type (fleet.fields.TripTime).
    if body.return_at - body.departure_at > MAX_TRIP:
        raise Invalid("a trip may last at most 14 days", field="return_at")
    allowed = await allowed_body_types(session, body.nature, body.passengers, unit.path)
    if not allowed:
        raise Invalid(
            f"no usage standard allows a {body.nature} trip with {body.passengers} passengers",
            field="passengers",
            code="no_standard",
        )
    passengers = await _check_passengers(session, unit, body)
    kind, dest_org = await derive_kind(session, unit, body)
    points = [(body.origin.lat, body.origin.lon)]
    points += [(s.lat, s.lon) for s in body.stops]
    points.append((body.destination.lat, body.destination.lon))
    trip.unit_id = unit.id
    trip.passengers = body.passengers
    trip.passenger_names = list(body.passenger_names)
    trip.passenger_user_ids = passengers
    trip.nature = body.nature
    trip.purpose = body.purpose
    trip.origin = point_to_db(body.origin.lat, body.origin.lon)
    trip.origin_address = body.origin.address
    trip.destination = point_to_db(body.destination.lat, body.destination.lon)
    trip.destination_address = body.destination.address
    trip.destination_org_id = dest_org
    trip.stops = [s.model_dump() for s in body.stops]
    trip.departure_at = body.departure_at
    trip.return_at = body.return_at
    trip.round_trip = body.round_trip
    trip.urgency = body.urgency
    trip.special_needs = body.special_needs
    trip.kind = kind
    trip.allowed_body_types = allowed
    trip.planned_km = planned_km(points, body.round_trip)


async def _requesting_unit(session: AsyncSession, principal: Principal, unit_id: int) -> Org:
    unit = await load_org(session, principal, unit_id, field="unit_id", act=REQUEST)
    if unit.kind != "unit":
        raise Invalid("unit_id must name an organisation of kind 'unit'", field="unit_id")
    return unit


async def create_trip(
    session: AsyncSession, principal: Principal, body: schemas.TripIn
) -> TripRequest:
    unit = await _requesting_unit(session, principal, body.unit_id or principal.org_id)
    trip = TripRequest(requester_id=principal.user_id, state="draft")
    await _fill(session, trip, unit, body)
    session.add(trip)
    await session.flush()
    await session.refresh(trip)
    await audit.record(
        session,
        principal.actor,
        "trip.create",
        "trip",
        trip.id,
        to_state="draft",
        data=body.model_dump(mode="json", exclude={"submit"}),
    )
    if body.submit:
        await submit(session, principal, trip.id)
    return trip


async def _own_trip(session: AsyncSession, principal: Principal, trip_id: int) -> TripRequest:
    principal.require(REQUEST)
    trip = await load_trip(session, principal, trip_id, lock=True)
    if trip.requester_id != principal.user_id:
        raise Forbidden("only the requester may change this request", code="not_requester")
    return trip


async def update_draft(
    session: AsyncSession, principal: Principal, trip_id: int, body: schemas.TripIn
) -> TripRequest:
    trip = await _own_trip(session, principal, trip_id)
    require_state(trip, "draft", action="edit")
    unit = await _requesting_unit(session, principal, body.unit_id or trip.unit_id)
    await _fill(session, trip, unit, body)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "trip.update",
        "trip",
        trip.id,
        data=body.model_dump(mode="json", exclude={"submit"}),
    )
    if body.submit:
        await submit(session, principal, trip.id)
    await session.refresh(trip)
    return trip


async def submit(session: AsyncSession, principal: Principal, trip_id: int) -> TripRequest:
    trip = await _own_trip(session, principal, trip_id)
    require_state(trip, "draft", action="submit")
    if trip.departure_at < datetime.now(UTC) - timedelta(minutes=limits().trip_past_min):
        raise Invalid("departure_at is in the past; edit the request first", field="departure_at")
    await transition(session, trip, "submitted", principal.actor)
    await approvals.start(session, trip, principal.actor)
    await session.refresh(trip)
    return trip


async def cancel(
    session: AsyncSession, principal: Principal, trip_id: int, reason: str
) -> TripRequest:
    """The requester, or a dispatcher/admin of the unit, cancels before departure."""
    principal.require(REQUEST + CANCEL_AS_STAFF)
    trip = await load_trip(session, principal, trip_id, lock=True)
    if trip.requester_id != principal.user_id:
        unit = await get_org(session, trip.unit_id)
        principal.check(CANCEL_AS_STAFF, unit.path, unit.system_path, what="trip")
    require_state(trip, *BEFORE_DEPARTURE, action="cancel")
    await release_assignment(session, trip.id, "cancelled")
    await approvals.close_open_steps(session, trip.id)
    await transition(session, trip, "cancelled", principal.actor, reason=reason)
    if trip.requester_id != principal.user_id:
        notify.notify_users(
            session,
            [trip.requester_id],
            "cancelled",
            f"用车申请 #{trip.id} 已被取消: {reason}",
            trip_id=trip.id,
            reason=reason,
        )
    return trip


async def read_trip(session: AsyncSession, principal: Principal, trip_id: int) -> TripRequest:
    return await load_trip(session, principal, trip_id)


async def list_trips(
    session: AsyncSession,
    principal: Principal,
    *,
    state: str | None,
    mine: bool,
    unit_id: int | None,
    departure_from: datetime | None,
    departure_to: datetime | None,
    limit: int,
    offset: int,
    vehicle_id: int | None = None,
    driver_id: int | None = None,
) -> tuple[list[TripRequest], int]:
    stmt = repository.trips_query(principal)
    if vehicle_id is not None or driver_id is not None:
        # Trips this vehicle / driver was ever assigned to (declined and reassigned included:
        # an auditor following a vehicle wants every trip it was put on).
        match = select(Assignment.id).where(Assignment.trip_id == TripRequest.id)
        if vehicle_id is not None:
            match = match.where(Assignment.vehicle_id == vehicle_id)
        if driver_id is not None:
            match = match.where(Assignment.driver_id == driver_id)
        stmt = stmt.where(match.exists())
    if state:
        stmt = stmt.where(TripRequest.state == state)
    if mine:
        stmt = stmt.where(TripRequest.requester_id == principal.user_id)
    if unit_id is not None:
        stmt = stmt.where(TripRequest.unit_id == unit_id)
    if departure_from is not None:
        stmt = stmt.where(TripRequest.departure_at >= departure_from)
    if departure_to is not None:
        stmt = stmt.where(TripRequest.departure_at < departure_to)
    order = (TripRequest.departure_at.desc(), TripRequest.id.desc())
    return await fetch_page(session, stmt, order, limit=limit, offset=offset)


async def history(
    session: AsyncSession, principal: Principal, trip_id: int
) -> list[schemas.HistoryOut]:
    await read_trip(session, principal, trip_id)
    return [
        schemas.HistoryOut.model_validate(e) for e in await repository.history(session, trip_id)
    ]
