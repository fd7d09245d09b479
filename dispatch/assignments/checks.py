"""The checks a booking passes: who may dispatch the trip, and which vehicle and driver fit.

Manual assignment, optimizer proposals and suggestions use the same checks.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.assignments import rules
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from fleet.errors import Conflict, Forbidden, Invalid
from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden
from fleet.identity.service import get_org
from fleet.registry.models import Driver, Vehicle
from fleet.registry.service import DRIVER_READ
from fleet.registry.visibility import VEHICLE_READ, UnitOrg, vehicle_visibility

DISPATCH = ("dispatcher",)
ASSIGNABLE = ("approved", "reassigned")  # trip states that wait for a booking


async def trip_to_dispatch(
    session: AsyncSession, principal: Principal, trip_id: int, roles: tuple[str, ...] = DISPATCH
) -> tuple[TripRequest, Org]:
    """The locked trip and its unit, for a dispatcher (or `roles`) covering the requesting unit:
    403 without the role, 404 when not visible (as missing), 403 when visible but not theirs."""
    principal.require(roles)
    trip = await load_trip(session, principal, trip_id, lock=True)
    unit = await get_org(session, trip.unit_id)
    principal.check(roles, unit.path, unit.system_path, what="trip")
    return trip, unit


async def usable_vehicle(session: AsyncSession, principal: Principal, vehicle_id: int) -> Vehicle:
    """A vehicle the dispatcher may send (own scope, or a pool shared with it): 404 when the
    caller cannot see it at all, 403 when they see it (another role) but may not send it."""
    # The vehicle and whether the dispatcher may send it, in one round trip; only a refusal
    # asks the second question (may they see it at all), so a booking costs one statement.
    row = (
        await session.execute(
            select(Vehicle, vehicle_visibility(principal, DISPATCH).label("usable"))
            .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
            .where(Vehicle.id == vehicle_id)
        )
    ).one_or_none()
    if row is not None and row.usable:
        vehicle: Vehicle = row[0]
        return vehicle
    visible = row is not None and await session.scalar(
        select(vehicle_visibility(principal, VEHICLE_READ))
        .select_from(Vehicle)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .where(Vehicle.id == vehicle_id)
    )
    if not visible:
        raise hidden("vehicle", vehicle_id, field="vehicle_id")
    raise Forbidden(
        "vehicle is neither your scope's nor in a pool shared with it",
        code="out_of_scope",
        field="vehicle_id",
    )


def check_vehicle(trip: TripRequest, vehicle: Vehicle) -> None:
    """Vehicle rules against the trip (no database): status, body type, seats, NEV range."""
    if vehicle.status != "in_service":
        raise Conflict(
            f"vehicle {vehicle.plate} is {vehicle.status}, not in service",
            field="vehicle_id",
            code="vehicle_not_in_service",
        )
    if vehicle.body_type not in trip.allowed_body_types:
        raise Invalid(
            f"a {vehicle.body_type} is not allowed for this trip "
            f"(allowed: {', '.join(trip.allowed_body_types)})",
            field="vehicle_id",
            code="body_type_not_allowed",
        )
    capacity = rules.passenger_capacity(vehicle.seats)
    if capacity < trip.passengers:
        raise Invalid(
            f"vehicle seats {capacity} passengers besides the driver; the trip has "
            f"{trip.passengers}",
            field="vehicle_id",
            code="not_enough_seats",
        )
    if vehicle.energy == "bev" and (vehicle.nev_range_km or 0) < trip.planned_km:
        raise Invalid(
            f"battery range {vehicle.nev_range_km} km is less than the planned "
            f"{trip.planned_km:.0f} km",
            field="vehicle_id",
            code="nev_range_insufficient",
        )


def check_driver(trip: TripRequest, vehicle: Vehicle, driver: Driver) -> None:
    if driver.status != "active":
        raise Conflict(f"driver is {driver.status}", field="driver_id", code="driver_not_active")
    if driver.licence_expires is not None and driver.licence_expires < trip.return_at.date():
        raise Invalid(
            "the driver's licence expires before the trip ends",
            field="driver_id",
            code="licence_expired",
        )
    if not rules.licence_fits(driver.licence_class, vehicle.body_type, vehicle.seats):
        need = rules.required_licence(vehicle.body_type, vehicle.seats)
        raise Invalid(
            f"licence {driver.licence_class} does not cover a {vehicle.seats}-seat "
            f"{vehicle.body_type} (needs {need})",
            field="driver_id",
            code="licence_mismatch",
        )


async def usable_driver(
    session: AsyncSession, principal: Principal, driver_id: int, vehicle: Vehicle
) -> Driver:
    """A driver the dispatcher may send with the vehicle: one of their scope, or one of the
    unit that lends the (pooled) vehicle. 404 when the caller cannot see the driver at all."""
    driver = await session.get(Driver, driver_id)
    unit = await get_org(session, driver.unit_id) if driver is not None else None
    # A pooled vehicle may come with a driver of its own unit.
    if driver is not None and unit is not None and driver.unit_id == vehicle.unit_id:
        return driver
    if (
        driver is None
        or unit is None
        or not principal.covers(DRIVER_READ, unit.path, unit.system_path)
    ):
        raise hidden("driver", driver_id, field="driver_id")
    if not principal.covers(DISPATCH, unit.path, unit.system_path):
        raise Forbidden("driver is outside your scope", code="out_of_scope", field="driver_id")
    return driver
