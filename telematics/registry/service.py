"""Terminal and geofence rules: scope by the owning org, secrets issued once, audit."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, MetaData, Select, Table, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from fleet import audit
from fleet.errors import Conflict, Forbidden, Invalid
from fleet.geo import geometry_from_db, multipolygon_to_db
from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden, scope_clause
from fleet.identity.service import load_org
from fleet.paging import fetch_page
from fleet.registry.visibility import visible_vehicle
from telematics.broker.credentials import hash_secret, new_secret
from telematics.registry import schemas
from telematics.registry.models import Geofence, Terminal

READ = ("admin", "dispatcher", "auditor")
WRITE = ("admin",)

OwnerOrg = aliased(Org, name="owner_org")


def _vehicles() -> Table:
    """Terminals are owned through their vehicle's unit. The vehicles table belongs to dispatch,
    which telematics must not import, so it is described here by the columns we read."""
    return _VEHICLES


_VEHICLES = Table("vehicles", MetaData(), Column("id", BigInteger), Column("unit_id", BigInteger))


def terminal_out(t: Terminal, secret: str | None = None) -> schemas.TerminalWithSecret:
    return schemas.TerminalWithSecret(
        id=t.id,
        vehicle_id=t.vehicle_id,
        model=t.model,
        protocol=t.protocol,
        active=t.active,
        phone=t.phone,
        registered_at=t.registered_at,
        created_at=t.created_at,
        updated_at=t.updated_at,
        secret=secret,
    )


def _terminal_query(principal: Principal, roles: tuple[str, ...]) -> Select[Terminal]:
    """Terminals bound to vehicles in scope; unbound terminals only for region-wide admins."""
    paths = principal.require(roles)
    vehicles = _vehicles()
    stmt = (
        select(Terminal)
        .outerjoin(vehicles, vehicles.c.id == Terminal.vehicle_id)
        .outerjoin(OwnerOrg, OwnerOrg.id == vehicles.c.unit_id)
    )
    in_scope = scope_clause(paths, OwnerOrg.path, OwnerOrg.system_path)
    if any("." not in p for p in principal.paths(("admin",))):
        in_scope = or_(in_scope, Terminal.vehicle_id.is_(None))
    return stmt.where(in_scope)


async def list_terminals(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None,
    vehicle_id: int | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Terminal], int]:
    stmt = _terminal_query(principal, READ)
    if q:
        stmt = stmt.where(or_(Terminal.id.ilike(f"%{q}%"), Terminal.phone.ilike(f"%{q}%")))
    if vehicle_id is not None:
        stmt = stmt.where(Terminal.vehicle_id == vehicle_id)
    if active is not None:
        stmt = stmt.where(Terminal.active == active)
    return await fetch_page(session, stmt, Terminal.id, limit=limit, offset=offset)


async def read_terminal(
    session: AsyncSession,
    principal: Principal,
    terminal_id: str,
    roles: tuple[str, ...] = READ,
    *,
    act: tuple[str, ...] | None = None,
) -> Terminal:
    """A terminal bound to a vehicle the caller may see (unbound ones: root admins only);
    404 otherwise, as for a missing one. With `act`, 403 unless those roles reach it too."""
    principal.require(act or roles)
    stmt = _terminal_query(principal, roles).where(Terminal.id == terminal_id)
    term = (await session.execute(stmt)).scalar_one_or_none()
    if term is None:
        raise hidden("terminal", terminal_id, field="id")
    if act is not None:
        reach = _terminal_query(principal, act).where(Terminal.id == terminal_id)
        if (await session.execute(reach)).scalar_one_or_none() is None:
            raise Forbidden("terminal is outside your scope", code="out_of_scope", field="id")
    return term


async def _check_binding(
    session: AsyncSession, principal: Principal, vehicle_id: int | None, terminal_id: str | None
) -> None:
    """A terminal is bound only to a vehicle the caller may see (404 otherwise) and whose
    owning unit they administer (403), and that has no other terminal."""
    if vehicle_id is None:
        return
    vehicle = await visible_vehicle(session, principal, vehicle_id, READ)
    principal.check(WRITE, vehicle.unit_path, vehicle.system_path, what="vehicle")
    bound = await session.scalar(select(Terminal.id).where(Terminal.vehicle_id == vehicle_id))
    if bound is not None and bound != terminal_id:
        raise Conflict(f"vehicle {vehicle_id} already has terminal {bound}", field="vehicle_id")


# A gateway holding a JT/T 808 terminal's connection LISTENs here (telematics/jt808): the
# notification is sent when the transaction commits, so a deactivated terminal is cut off
# at once; the gateway's periodic re-check covers a notification it missed.
TERMINAL_CHANGED = "fleet_terminal_changed"


async def _notify_changed(session: AsyncSession, terminal_id: str) -> None:
    await session.execute(
        text("SELECT pg_notify(:channel, :id)"), {"channel": TERMINAL_CHANGED, "id": terminal_id}
    )


async def _check_phone(session: AsyncSession, phone: str, terminal_id: str | None) -> None:
    """A SIM number names one active terminal (leading zeros are padding)."""
    other = await session.scalar(
        select(Terminal.id).where(
            Terminal.active,
            func.ltrim(Terminal.phone, "0") == phone.lstrip("0"),
            Terminal.id != (terminal_id or ""),
        )
    )
    if other is not None:
        raise Conflict(f"SIM number {phone} already belongs to terminal {other}", field="phone")


async def create_terminal(
    session: AsyncSession, principal: Principal, body: schemas.TerminalIn
) -> schemas.TerminalWithSecret:
    principal.require(WRITE)
    assert body.id is not None  # the schema derives it for jt808
    if await session.get(Terminal, body.id) is not None:
        raise Conflict(f"terminal {body.id} already exists", field="id")
    await _check_binding(session, principal, body.vehicle_id, None)
    if body.phone is not None:
        await _check_phone(session, body.phone, None)
    secret = body.secret or new_secret()
    term = Terminal(
        id=body.id,
        vehicle_id=body.vehicle_id,
        model=body.model,
        protocol=body.protocol,
        phone=body.phone,
        secret_hash=hash_secret(secret),
    )
    session.add(term)
    await session.flush()
    await _notify_changed(session, term.id)
    await session.refresh(term)
    await audit.record(
        session,
        principal.actor,
        "terminal.create",
        "terminal",
        term.id,
        data=body.model_dump(mode="json", exclude={"secret"}),
    )
    return terminal_out(term, secret if body.secret is None else None)


async def update_terminal(
    session: AsyncSession, principal: Principal, terminal_id: str, body: schemas.TerminalPatch
) -> schemas.TerminalWithSecret:
    term = await read_terminal(session, principal, terminal_id, act=WRITE)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "vehicle_id" in changes:
        await _check_binding(session, principal, body.vehicle_id, term.id)
        term.vehicle_id = body.vehicle_id
    if body.model is not None:
        term.model = body.model
    if body.phone is not None and body.phone != term.phone:
        if term.protocol != "jt808":
            raise Invalid("phone is only for jt808 terminals", field="phone")
        if body.active is not False and term.active:
            await _check_phone(session, body.phone, term.id)
        term.phone = body.phone
        term.auth_code_hash = None  # a new SIM: the terminal registers again
        term.registered_at = None
    if body.active is not None:
        if body.active and not term.active and term.phone is not None:
            await _check_phone(session, term.phone, term.id)
        term.active = body.active
    secret = None
    if body.rotate_secret:
        secret = new_secret()
        term.secret_hash = hash_secret(secret)
        term.auth_code_hash = None  # jt808: the registration is revoked with the old secret
        term.registered_at = None
    await session.flush()
    await _notify_changed(session, term.id)
    await session.refresh(term)
    await audit.record(
        session, principal.actor, "terminal.update", "terminal", term.id, data=changes
    )
    return terminal_out(term, secret)


# ---- geofences -----------------------------------------------------------------------------


def geofence_out(
    g: Geofence, geometry: dict[str, Any] | None = None, *, simplified: bool = False
) -> schemas.GeofenceOut:
    """The geofence as a GeoJSON Feature; `geometry` replaces the stored one (a simplified
    outline for display), and `properties.simplified` says which it is."""
    return schemas.GeofenceOut(
        id=g.id,
        geometry=geometry if geometry is not None else geometry_from_db(g.geom),
        properties={
            "name": g.name,
            "purpose": g.purpose,
            "org_id": g.org_id,
            "speed_limit_kmh": g.speed_limit_kmh,
            "active": g.active,
            "updated_at": g.updated_at.isoformat(),
            "simplified": simplified,
        },
    )


async def simplified_outlines(
    session: AsyncSession, ids: list[int], tolerance_deg: float
) -> dict[int, dict[str, Any]]:
    """Display outlines: ST_SimplifyPreserveTopology (no self-intersection, no vanished ring
    of a multipolygon), coordinates to 6 decimals (~0.1 m)."""
    if not ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT id, ST_AsGeoJSON(ST_Multi(ST_SimplifyPreserveTopology(geom, :tol)), 6)"
            " FROM geofences WHERE id = ANY(:ids)"
        ),
        {"ids": ids, "tol": tolerance_deg},
    )
    return {int(r[0]): orjson.loads(str(r[1])) for r in rows.all()}


def _geofence_query(principal: Principal, roles: tuple[str, ...]) -> Select[Geofence]:
    paths = principal.require(roles)
    return (
        select(Geofence)
        .join(OwnerOrg, OwnerOrg.id == Geofence.org_id)
        .where(scope_clause(paths, OwnerOrg.path, OwnerOrg.system_path))
    )


async def list_geofences(
    session: AsyncSession,
    principal: Principal,
    *,
    purpose: str | None,
    org_id: int | None,
    active: bool | None,
    full: bool = True,
    limit: int,
    offset: int,
) -> tuple[list[Geofence], int]:
    stmt = _geofence_query(principal, READ)
    if purpose:
        stmt = stmt.where(Geofence.purpose == purpose)
    if org_id is not None:
        stmt = stmt.where(Geofence.org_id == org_id)
    if active is not None:
        stmt = stmt.where(Geofence.active == active)
    if not full:
        stmt = stmt.options(defer(Geofence.geom))  # the display outline is read by itself
    return await fetch_page(session, stmt, Geofence.id, limit=limit, offset=offset)


async def read_geofence(
    session: AsyncSession,
    principal: Principal,
    geofence_id: int,
    roles: tuple[str, ...] = READ,
    *,
    act: tuple[str, ...] | None = None,
) -> Geofence:
    """A geofence of an org the caller may see; 404 otherwise, as for a missing one. With
    `act`, 403 unless those roles reach its org too."""
    principal.require(act or roles)
    g = await session.get(Geofence, geofence_id)
    org = await session.get(Org, g.org_id) if g is not None else None
    if g is None or org is None or not principal.covers(roles, org.path, org.system_path):
        raise hidden("geofence", geofence_id, field="id")
    if act is not None:
        principal.check(act, org.path, org.system_path, what="geofence")
    return g


async def create_geofence(
    session: AsyncSession, principal: Principal, body: schemas.GeofenceIn
) -> Geofence:
    props = body.properties
    org = await load_org(session, principal, props.org_id, field="properties.org_id", act=WRITE)
    geom = multipolygon_to_db(body.geometry.model_dump(), field="geometry")
    g = Geofence(
        name=props.name,
        purpose=props.purpose,
        org_id=org.id,
        geom=geom,
        speed_limit_kmh=props.speed_limit_kmh,
        active=props.active,
    )
    session.add(g)
    await session.flush()
    await session.refresh(g)
    await audit.record(
        session,
        principal.actor,
        "geofence.create",
        "geofence",
        g.id,
        data=props.model_dump(mode="json"),
    )
    return g


async def update_geofence(
    session: AsyncSession, principal: Principal, geofence_id: int, body: schemas.GeofencePatch
) -> Geofence:
    g = await read_geofence(session, principal, geofence_id, act=WRITE)
    changes = body.properties.model_dump(exclude_unset=True, mode="json")
    for name, value in changes.items():
        if value is not None or name == "speed_limit_kmh":
            setattr(g, name, value)
    if g.purpose == "speed_limit" and g.speed_limit_kmh is None:
        raise Invalid(
            "a speed_limit geofence needs speed_limit_kmh", field="properties.speed_limit_kmh"
        )
    if body.geometry is not None:
        g.geom = multipolygon_to_db(body.geometry.model_dump(), field="geometry")
        changes["geometry"] = "replaced"
    await session.flush()
    await session.refresh(g)
    await audit.record(session, principal.actor, "geofence.update", "geofence", g.id, data=changes)
    return g


async def delete_geofence(session: AsyncSession, principal: Principal, geofence_id: int) -> None:
    """Remove a geofence (administrators of its org's scope; audited with what it was).
    Alerts it raised keep their evidence; the supervision rules stop using it at once."""
    g = await read_geofence(session, principal, geofence_id, act=WRITE)
    vertices = await session.scalar(
        text("SELECT ST_NPoints(geom) FROM geofences WHERE id = :id"), {"id": g.id}
    )
    data = {
        "name": g.name,
        "purpose": g.purpose,
        "org_id": g.org_id,
        "speed_limit_kmh": g.speed_limit_kmh,
        "active": g.active,
        "vertices": vertices,
    }
    await session.delete(g)
    await session.flush()
    await audit.record(
        session, principal.actor, "geofence.delete", "geofence", geofence_id, data=data
    )
