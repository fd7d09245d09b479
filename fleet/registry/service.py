"""Registry rules: which vehicles and drivers a caller lists or reads, what may change, and the
audit of it. Who may see a vehicle is fleet/registry/visibility.py's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.clock import local_today
from fleet.errors import Conflict, Invalid
from fleet.geo import point_from_db, point_to_db
from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden, scope_clause, territory_of, under
from fleet.identity.service import get_org, load_org
from fleet.identity.users import load_user
from fleet.paging import fetch_page
from fleet.registry import schemas
from fleet.registry.models import Driver, Vehicle
from fleet.registry.visibility import VEHICLE_READ, UnitOrg, vehicle_visibility

VEHICLE_WRITE = ("admin", "dispatcher")
VEHICLE_CREATE = ("admin",)
DRIVER_READ = ("admin", "dispatcher", "auditor")
DRIVER_WRITE = ("admin",)

# Lifecycle (全周期): which status may follow which.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "in_service": ("under_repair", "sealed", "awaiting_disposal"),
    "under_repair": ("in_service", "awaiting_disposal"),
    "sealed": ("in_service",),
    "awaiting_disposal": ("in_service", "scrapped"),
    "scrapped": (),
}


def vehicle_out(v: Vehicle) -> schemas.VehicleOut:
    data = {c: getattr(v, c) for c in schemas.VehicleOut.model_fields if c != "depot"}
    return schemas.VehicleOut(**data, depot=point_from_db(v.depot) or {})


def driver_out(d: Driver) -> schemas.DriverOut:
    return schemas.DriverOut.model_validate(d)


def _vehicle_query(principal: Principal, roles: tuple[str, ...]) -> Select[Vehicle]:
    return (
        select(Vehicle)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .where(vehicle_visibility(principal, roles))
    )


async def list_vehicles(
    session: AsyncSession,
    principal: Principal,
    *,
    filters: dict[str, Any],
    under: int | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Vehicle], int]:
    stmt = _vehicle_query(principal, VEHICLE_READ)
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(getattr(Vehicle, name) == value)
    if under is not None:
        root = await get_org(session, under, field="under")
        stmt = stmt.where(UnitOrg.path.op("<@")(root.path))
    if q:
        like = f"%{q.upper()}%"
        stmt = stmt.where(or_(func.upper(Vehicle.plate).like(like), Vehicle.vin.like(like)))
    return await fetch_page(session, stmt, Vehicle.id, limit=limit, offset=offset)


async def read_vehicle(
    session: AsyncSession,
    principal: Principal,
    vehicle_id: int,
    roles: tuple[str, ...] = VEHICLE_READ,
    *,
    field: str = "id",
) -> Vehicle:
    """A vehicle the caller may see through `roles` (own scope, or for dispatchers a pool
    shared with it); 403 without the roles, else 404 for one they cannot see, as for a
    missing one. The one check for every vehicle id a request carries."""
    principal.require(roles)
    vehicle = (
        await session.execute(
            select(Vehicle)
            .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
            .where(Vehicle.id == vehicle_id, vehicle_visibility(principal, roles))
        )
    ).scalar_one_or_none()
    if vehicle is None:
        raise hidden("vehicle", vehicle_id, field=field)
    return vehicle


async def _writable_vehicle(
    session: AsyncSession, principal: Principal, vehicle_id: int
) -> Vehicle:
    principal.require(VEHICLE_WRITE)
    vehicle = await read_vehicle(session, principal, vehicle_id)
    unit = await get_org(session, vehicle.unit_id)
    # Writing needs the owning unit in scope: a shared pool lends vehicles, not ownership.
    principal.check(VEHICLE_WRITE, unit.path, unit.system_path, what="vehicle")
    return vehicle


async def _unit_in_scope(
    session: AsyncSession, principal: Principal, unit_id: int, roles: tuple[str, ...]
) -> Org:
    unit = await load_org(session, principal, unit_id, field="unit_id", act=roles)
    if unit.kind != "unit":
        raise Invalid("unit_id must name an organisation of kind 'unit'", field="unit_id")
    return unit


def check_energy(energy: str, nev_range_km: int | None, engine_l: object) -> None:
    """Energy type decides which of NEV range and engine size must be given."""
    if energy != "ice" and nev_range_km is None:
        raise Invalid("nev_range_km is required for bev and phev vehicles", field="nev_range_km")
    if energy == "bev" and engine_l is not None:
        raise Invalid("engine_l must be empty for a bev vehicle", field="engine_l")
    if energy != "bev" and engine_l is None:
        raise Invalid("engine_l is required for ice and phev vehicles", field="engine_l")


async def create_vehicle(
    session: AsyncSession, principal: Principal, body: schemas.VehicleIn
) -> Vehicle:
    await _unit_in_scope(session, principal, body.unit_id, VEHICLE_CREATE)
    check_energy(body.energy, body.nev_range_km, body.engine_l)
    if body.purchase_date > local_today():
        raise Invalid("purchase_date cannot be in the future", field="purchase_date")
    for field in ("plate", "vin"):
        value = getattr(body, field)
        if await session.scalar(select(Vehicle.id).where(getattr(Vehicle, field) == value)):
            raise Conflict(f"a vehicle with {field} {value!r} already exists", field=field)
    data = body.model_dump(exclude={"depot"})
    vehicle = Vehicle(**data, depot=point_to_db(body.depot.lat, body.depot.lon))
    session.add(vehicle)
    await session.flush()
    await session.refresh(vehicle)
    await audit.record(
        session,
        principal.actor,
        "vehicle.create",
        "vehicle",
        vehicle.id,
        to_state=vehicle.status,
        data=body.model_dump(mode="json"),
    )
    return vehicle


async def update_vehicle(
    session: AsyncSession, principal: Principal, vehicle_id: int, body: schemas.VehiclePatch
) -> Vehicle:
    vehicle = await _writable_vehicle(session, principal, vehicle_id)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if body.unit_id is not None:
        await _unit_in_scope(session, principal, body.unit_id, VEHICLE_WRITE)
    plate_taken = body.plate not in (None, vehicle.plate) and await session.scalar(
        select(Vehicle.id).where(Vehicle.plate == body.plate)
    )
    if plate_taken:
        raise Conflict(f"a vehicle with plate {body.plate!r} already exists", field="plate")
    if "nev_range_km" in changes:
        check_energy(vehicle.energy, body.nev_range_km, vehicle.engine_l)
    for name, value in body.model_dump(exclude_unset=True, exclude={"depot"}).items():
        if value is not None or name == "nev_range_km":
            setattr(vehicle, name, value)
    if body.depot is not None:
        vehicle.depot = point_to_db(body.depot.lat, body.depot.lon)
    await session.flush()
    await session.refresh(vehicle)
    await audit.record(
        session, principal.actor, "vehicle.update", "vehicle", vehicle.id, data=changes
    )
    return vehicle


async def change_status(
    session: AsyncSession, principal: Principal, vehicle_id: int, body: schemas.StatusChange
) -> Vehicle:
    vehicle = await _writable_vehicle(session, principal, vehicle_id)
    # Lock the row so two concurrent changes cannot both start from the same status.
    await session.refresh(vehicle, with_for_update=True)
    current = vehicle.status
    if body.status not in TRANSITIONS[current]:
        raise Conflict(
            f"cannot change status from {current} to {body.status}",
            field="status",
            code="illegal_transition",
            current=current,
            allowed=list(TRANSITIONS[current]),
        )
    vehicle.status = body.status
    await session.flush()
    await session.refresh(vehicle)
    await audit.record(
        session,
        principal.actor,
        "vehicle.status",
        "vehicle",
        vehicle.id,
        from_state=current,
        to_state=body.status,
        reason=body.reason,
    )
    return vehicle


# ---- drivers ---------------------------------------------------------------------------


def _driver_query(principal: Principal, roles: tuple[str, ...]) -> Select[Driver]:
    paths = principal.require(roles)
    return (
        select(Driver)
        .join(UnitOrg, UnitOrg.id == Driver.unit_id)
        .where(scope_clause(paths, UnitOrg.path, UnitOrg.system_path))
    )


async def list_drivers(
    session: AsyncSession,
    principal: Principal,
    *,
    under: int | None,
    q: str | None,
    licence_class: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Driver], int]:
    stmt = _driver_query(principal, DRIVER_READ)
    if under is not None:
        root = await get_org(session, under, field="under")
        stmt = stmt.where(UnitOrg.path.op("<@")(root.path))
    if q:
        stmt = stmt.where(or_(Driver.name.like(f"%{q}%"), Driver.licence_no.like(f"%{q}%")))
    if licence_class:
        stmt = stmt.where(Driver.licence_class == licence_class)
    if status:
        stmt = stmt.where(Driver.status == status)
    return await fetch_page(session, stmt, Driver.id, limit=limit, offset=offset)


async def read_driver(
    session: AsyncSession,
    principal: Principal,
    driver_id: int,
    roles: tuple[str, ...] = DRIVER_READ,
    *,
    field: str = "id",
) -> Driver:
    """A driver of a unit in the scope of `roles`; 404 otherwise, as for a missing one."""
    principal.require(roles)
    driver = await session.get(Driver, driver_id)
    unit = await session.get(Org, driver.unit_id) if driver is not None else None
    if driver is None or unit is None or not principal.covers(roles, unit.path, unit.system_path):
        raise hidden("driver", driver_id, field=field)
    return driver


async def _check_driver_user(
    session: AsyncSession,
    principal: Principal,
    user_id: int | None,
    driver_id: int | None,
    unit_id: int,
) -> None:
    """A driver's login: a user the admin can see (404 otherwise) of the driver's county (the
    linked user reads the driver's trips), not linked to another driver."""
    if user_id is None:
        return
    user = await load_user(session, principal, user_id, roles=DRIVER_WRITE, field="user_id")
    unit = await get_org(session, unit_id)
    home = await get_org(session, user.org_id)
    if not under(home.path, territory_of(unit.path)):
        raise Invalid(
            "the driver's login must be a user of the driver's county",
            field="user_id",
            code="user_not_in_county",
        )
    taken = await session.scalar(select(Driver.id).where(Driver.user_id == user_id))
    if taken is not None and taken != driver_id:
        raise Conflict("that user is already linked to another driver", field="user_id")


async def create_driver(
    session: AsyncSession, principal: Principal, body: schemas.DriverIn
) -> Driver:
    await _unit_in_scope(session, principal, body.unit_id, DRIVER_WRITE)
    if await session.scalar(select(Driver.id).where(Driver.licence_no == body.licence_no)):
        raise Conflict("a driver with that licence number exists", field="licence_no")
    await _check_driver_user(session, principal, body.user_id, None, body.unit_id)
    driver = Driver(**body.model_dump())
    session.add(driver)
    await session.flush()
    await session.refresh(driver)
    await audit.record(
        session,
        principal.actor,
        "driver.create",
        "driver",
        driver.id,
        to_state=driver.status,
        data=body.model_dump(mode="json"),
    )
    return driver


async def update_driver(
    session: AsyncSession, principal: Principal, driver_id: int, body: schemas.DriverPatch
) -> Driver:
    principal.require(DRIVER_WRITE)
    driver = await read_driver(session, principal, driver_id)
    unit = await get_org(session, driver.unit_id)
    principal.check(DRIVER_WRITE, unit.path, unit.system_path, what="driver")
    changes = body.model_dump(exclude_unset=True, mode="json")
    if body.unit_id is not None:
        await _unit_in_scope(session, principal, body.unit_id, DRIVER_WRITE)
    await _check_driver_user(
        session, principal, body.user_id, driver.id, body.unit_id or driver.unit_id
    )
    before = driver.status
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is not None or name in ("phone", "licence_expires", "user_id"):
            setattr(driver, name, value)
    await session.flush()
    await session.refresh(driver)
    await audit.record(
        session,
        principal.actor,
        "driver.update",
        "driver",
        driver.id,
        from_state=before,
        to_state=driver.status,
        data=changes,
    )
    return driver
