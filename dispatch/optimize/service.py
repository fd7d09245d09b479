"""Auto-assign rules: build a proposal's problem for a scope, read, edit, accept, discard.

The API never solves: `create` snapshots the scope's waiting requests, candidate vehicles,
drivers and bookings into an `optimizer_runs` row (state queued) that the worker process
(`dispatch.optimize.worker`) solves. Acceptance goes through `apply_assignments`, i.e. the
manual assignment checks, each item in its own savepoint.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dispatch.assignments import schemas as assignment_schemas
from dispatch.assignments.booking import apply_assignments
from dispatch.assignments.checks import check_driver, check_vehicle, usable_driver, usable_vehicle
from dispatch.assignments.planning import candidate_vehicles, pending_requests
from dispatch.assignments.repository import active_bookings
from dispatch.optimize import problem, schemas
from dispatch.optimize.models import OptimizerRun
from dispatch.trips.access import load_trip
from fleet import audit
from fleet.errors import Conflict, Invalid, NotFound
from fleet.geo import point_from_db
from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden, scope_clause
from fleet.identity.service import load_org
from fleet.paging import fetch_page
from fleet.registry.models import Driver
from fleet.registry.visibility import UnitOrg

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
DISPATCH = ("dispatcher",)
READ = ("dispatcher", "admin", "auditor")
EDITABLE = ("done",)


def window_of(body: schemas.ProposalCreate) -> tuple[datetime, datetime]:
    if body.day is not None:
        start = datetime.combine(body.day, time(0), LOCAL_TZ).astimezone(UTC)
        return start, start + timedelta(days=1)
    assert body.window_from is not None and body.window_to is not None
    return body.window_from.astimezone(UTC), body.window_to.astimezone(UTC)


async def _county_zones(session: AsyncSession, unit_ids: set[int]) -> dict[int, str | None]:
    """Each unit's county (region mode's partition key); None for units above county level."""
    if not unit_ids:
        return {}
    county = aliased(Org)
    rows = await session.execute(
        select(
            Org.id,
            select(county.code)
            .where(county.kind == "county", county.path.op("@>")(Org.path))
            .limit(1)
            .scalar_subquery(),
        ).where(Org.id.in_(unit_ids))
    )
    return {int(r[0]): (str(r[1]) if r[1] is not None else None) for r in rows.all()}


def _latlon(value: Any) -> tuple[float, float]:
    p = point_from_db(value) or {"lat": 0.0, "lon": 0.0}
    return p["lat"], p["lon"]


def candidate_drivers(
    paths: tuple[str, ...], until: date, pool_units: Collection[int] = ()
) -> Select[Driver]:
    """Active drivers whose licence is valid until `until`, of units under `paths` — and of
    `pool_units`, the units outside them that lend a pooled vehicle (manual assignment
    accepts a pooled vehicle's own unit's drivers for it, and only for it)."""
    scope = scope_clause(paths, UnitOrg.path, UnitOrg.system_path)
    if pool_units:
        scope = or_(scope, Driver.unit_id.in_(list(pool_units)))
    return (
        select(Driver)
        .join(UnitOrg, UnitOrg.id == Driver.unit_id)
        .where(
            scope,
            Driver.status == "active",
            or_(Driver.licence_expires.is_(None), Driver.licence_expires >= until),
        )
        .order_by(Driver.id)
    )


async def lending_units(
    session: AsyncSession, paths: tuple[str, ...], unit_ids: Collection[int]
) -> set[int]:
    """Of the given vehicle units, those outside `paths` (their vehicles are pooled ones)."""
    if not unit_ids:
        return set()
    rows = await session.execute(
        select(UnitOrg.id).where(
            UnitOrg.id.in_(list(unit_ids)),
            not_(scope_clause(paths, UnitOrg.path, UnitOrg.system_path)),
        )
    )
    return {int(u) for u in rows.scalars()}


async def create(
    session: AsyncSession, principal: Principal, body: schemas.ProposalCreate
) -> OptimizerRun:
    """Snapshot the scope's planning input into a queued run for the worker."""
    org = await load_org(session, principal, body.org_id, act=DISPATCH)
    start, end = window_of(body)
    # The same reads as manual dispatch, narrowed to the chosen subtree (pools shared with it
    # stay visible through `vehicle_visibility`).
    scoped = Principal(
        user_id=principal.user_id,
        username=principal.username,
        org_id=principal.org_id,
        bindings={"dispatcher": (org.path,)},
    )
    trips = [
        t
        for t in await pending_requests(session, scoped, departure_from=start, departure_to=end)
        if t.departure_at >= start
    ]
    body_types = sorted({b for t in trips for b in t.allowed_body_types})
    vehicles = list((await session.execute(candidate_vehicles(scoped, body_types))).scalars())
    last_end = max([end, *(t.return_at for t in trips)])
    lenders = await lending_units(session, (org.path,), {v.unit_id for v in vehicles})
    drivers = list(
        (await session.execute(candidate_drivers((org.path,), last_end.date(), lenders))).scalars()
    )
    vehicle_ids = [v.id for v in vehicles]
    driver_ids = [d.id for d in drivers]
    rows = await active_bookings(
        session, start, last_end, vehicle_ids=vehicle_ids, driver_ids=driver_ids
    )
    v_busy: dict[int, list[tuple[int, datetime, datetime]]] = {}
    d_busy: dict[int, set[int]] = {}
    for b in rows:
        v_busy.setdefault(b.vehicle_id, []).append((b.id, b.starts_at, b.ends_at))
        d_busy.setdefault(b.driver_id, set()).add(b.id)
    zones = await _county_zones(session, {t.unit_id for t in trips} | {v.unit_id for v in vehicles})
    snapshot = problem.build_snapshot(
        [
            problem.TripIn(
                id=t.id,
                origin=_latlon(t.origin),
                destination=_latlon(t.destination),
                departure_at=t.departure_at,
                return_at=t.return_at,
                round_trip=t.round_trip,
                passengers=t.passengers,
                body_types=tuple(t.allowed_body_types),
                urgency=t.urgency,
                planned_km=t.planned_km,
                label=f"#{t.id} {t.origin_address} → {t.destination_address}",
                zone=zones.get(t.unit_id),
            )
            for t in trips
        ],
        [
            problem.VehicleIn(
                id=v.id,
                plate=v.plate,
                unit_id=v.unit_id,
                depot=_latlon(v.depot),
                seats=v.seats,
                body_type=v.body_type,
                energy=v.energy,
                nev_range_km=v.nev_range_km,
                busy=tuple(v_busy.get(v.id, ())),
                # a city-level pool serves every county of the city: shared across the parts
                zone=None if v.shared_pool == "city" else zones.get(v.unit_id),
            )
            for v in vehicles
        ],
        [
            problem.DriverIn(
                id=d.id,
                name=d.name,
                unit_id=d.unit_id,
                licence_class=d.licence_class,
                busy=frozenset(d_busy.get(d.id, ())),
                own_unit_only=d.unit_id in lenders,
            )
            for d in drivers
        ],
        window_start=start,
        window_end=end,
        late_slack_min=body.late_slack_min,
    )
    counts = {
        "requests": len(trips),
        "vehicles": len(vehicles),
        "drivers": len(drivers),
        "vehicles_planned": len(snapshot["vehicles"]),
        "vehicles_without_driver": snapshot["vehicles_without_driver"],
        "bookings": len(rows),
    }
    run = OptimizerRun(
        org_id=org.id,
        created_by=principal.user_id,
        window_start=start,
        window_end=end,
        time_limit_s=body.time_limit_s,
        seed=body.seed,
        state="queued",
        problem=snapshot,
        counts=counts,
        progress={"phase": "queued", "time_limit_s": body.time_limit_s},
    )
    session.add(run)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "optimizer.proposal_create",
        "optimizer_run",
        run.id,
        to_state="queued",
        data={
            "org_id": org.id,
            "window": [start.isoformat(), end.isoformat()],
            "time_limit_s": body.time_limit_s,
            **counts,
        },
    )
    return run


async def _load(
    session: AsyncSession,
    principal: Principal,
    run_id: int,
    roles: tuple[str, ...] = READ,
    *,
    lock: bool = False,
) -> OptimizerRun:
    principal.require(roles)
    # populate_existing: a worker may have moved the run on since this session last looked.
    stmt = (
        select(OptimizerRun)
        .where(OptimizerRun.id == run_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    run = (await session.execute(stmt)).scalar_one_or_none()
    org = await session.get(Org, run.org_id) if run is not None else None
    # Seen through any reading role, else answered as missing; acted on through `roles`.
    if run is None or org is None or not principal.covers(READ, org.path, org.system_path):
        raise hidden("proposal", run_id, field="proposal_id")
    principal.check(roles, org.path, org.system_path, what="proposal")
    return run


def proposal_out(run: OptimizerRun) -> schemas.ProposalOut:
    prop = run.proposal or {}
    progress = dict(run.progress or {})
    progress.setdefault("time_limit_s", run.time_limit_s)
    if run.state in ("done", "accepted", "discarded") and prop.get("objective") is not None:
        progress["best_objective"] = prop["objective"]
    return schemas.ProposalOut(
        id=run.id,
        org_id=run.org_id,
        created_by=run.created_by,
        state=run.state,
        window_start=run.window_start,
        window_end=run.window_end,
        time_limit_s=run.time_limit_s,
        counts={k: int(v) for k, v in (run.counts or {}).items()},
        progress=schemas.Progress.model_validate(progress),
        items=[schemas.ProposalItem.model_validate(i) for i in prop.get("items", [])],
        unserved=[schemas.UnservedItem.model_validate(u) for u in prop.get("unserved", [])],
        stats={str(k): str(v) for k, v in prop.get("stats", {}).items()},
        vehicles_used=prop.get("vehicles_used"),
        distance_km=prop.get("distance_km"),
        error=run.error,
        results=[assignment_schemas.ProposalResult.model_validate(r) for r in run.results]
        if run.results is not None
        else None,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        accepted_at=run.accepted_at,
    )


async def read(session: AsyncSession, principal: Principal, run_id: int) -> OptimizerRun:
    return await _load(session, principal, run_id)


async def list_runs(
    session: AsyncSession,
    principal: Principal,
    *,
    org_id: int | None,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[list[OptimizerRun], int]:
    paths = principal.require(READ)
    stmt = (
        select(OptimizerRun)
        .join(UnitOrg, UnitOrg.id == OptimizerRun.org_id)
        .where(scope_clause(paths, UnitOrg.path, UnitOrg.system_path))
    )
    if org_id is not None:
        stmt = stmt.where(OptimizerRun.org_id == org_id)
    if state is not None:
        stmt = stmt.where(OptimizerRun.state == state)
    return await fetch_page(session, stmt, OptimizerRun.id.desc(), limit=limit, offset=offset)


def _require_state(run: OptimizerRun, *states: str, action: str) -> None:
    if run.state not in states:
        raise Conflict(
            f"cannot {action} a proposal that is {run.state}",
            field="state",
            code="illegal_transition",
            current=run.state,
            allowed=list(states),
        )


async def edit(
    session: AsyncSession, principal: Principal, run_id: int, body: schemas.ProposalEdit
) -> OptimizerRun:
    """Change an item's vehicle or driver, drop or restore it, or assign a left-out request.

    A changed vehicle/driver is checked at once for scope and with the manual rules that need
    no booking data (status, body type, seats, range, licence); overlaps are checked at accept.
    """
    run = await _load(session, principal, run_id, DISPATCH, lock=True)
    _require_state(run, *EDITABLE, action="edit")
    prop = dict(run.proposal or {})
    items: list[dict[str, Any]] = [dict(i) for i in prop.get("items", [])]
    unserved: list[dict[str, Any]] = [dict(u) for u in prop.get("unserved", [])]
    by_trip = {i["trip_id"]: i for i in items}
    changes = []
    for e in body.items:
        item = by_trip.get(e.trip_id)
        if item is None:
            left = next((u for u in unserved if u["trip_id"] == e.trip_id), None)
            if left is None:
                raise NotFound(f"trip {e.trip_id} is not in this proposal", field="trip_id")
            if e.vehicle_id is None or e.driver_id is None:
                raise Invalid(
                    "a left-out request needs both vehicle_id and driver_id", field="vehicle_id"
                )
            unserved.remove(left)
            trip_label = next(
                (r["label"] for r in run.problem["requests"] if r["trip_id"] == e.trip_id),
                f"#{e.trip_id}",
            )
            item = {
                "trip_id": e.trip_id,
                "label": trip_label,
                "vehicle_id": e.vehicle_id,
                "plate": "",
                "driver_id": e.driver_id,
                "driver_name": "",
                "pickup_at": None,
                "sequence": 0,
                "why": "",
                "eligible_vehicles": None,
                "dropped": False,
                "edited": True,
            }
            items.append(item)
            by_trip[e.trip_id] = item
        if e.vehicle_id is not None or e.driver_id is not None:
            # The same scope checks as a manual assignment: nothing of another scope is
            # named, checked or described here (its plate, status or seats included).
            trip = await load_trip(session, principal, e.trip_id)
            vehicle = await usable_vehicle(session, principal, e.vehicle_id or item["vehicle_id"])
            driver = await usable_driver(
                session, principal, e.driver_id or item["driver_id"], vehicle
            )
            check_vehicle(trip, vehicle)
            check_driver(trip, vehicle, driver)
            item.update(
                vehicle_id=vehicle.id,
                plate=vehicle.plate,
                driver_id=driver.id,
                driver_name=driver.name,
                edited=True,
                why=f"edited by {principal.username}: {vehicle.plate}, {driver.name}",
            )
        if e.drop is not None:
            item["dropped"] = e.drop
            item["edited"] = True
        changes.append(e.model_dump(exclude_none=True))
    prop["items"] = items
    prop["unserved"] = unserved
    run.proposal = prop
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "optimizer.proposal_edit",
        "optimizer_run",
        run.id,
        data={"changes": changes},
    )
    return run


async def accept(session: AsyncSession, principal: Principal, run_id: int) -> schemas.AcceptOut:
    """Apply the kept items through the manual checks; a refused item does not undo others."""
    run = await _load(session, principal, run_id, DISPATCH, lock=True)
    _require_state(run, "done", action="accept")
    items = [
        assignment_schemas.ProposalIn(
            trip_id=i["trip_id"], vehicle_id=i["vehicle_id"], driver_id=i["driver_id"]
        )
        for i in (run.proposal or {}).get("items", [])
        if not i.get("dropped")
    ]
    results = await apply_assignments(session, principal, items, source="optimizer")
    ok = sum(1 for r in results if r.ok)
    run.results = [r.model_dump(mode="json") for r in results]
    run.state = "accepted"
    run.accepted_by = principal.user_id
    run.accepted_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "optimizer.proposal_accept",
        "optimizer_run",
        run.id,
        from_state="done",
        to_state="accepted",
        data={
            "accepted": ok,
            "refused": len(results) - ok,
            "assignment_ids": [r.assignment_id for r in results if r.ok],
            "refusals": {str(r.trip_id): (r.error or {}).get("code") for r in results if not r.ok},
        },
    )
    return schemas.AcceptOut(
        id=run.id, state="accepted", accepted=ok, refused=len(results) - ok, results=results
    )


async def discard(session: AsyncSession, principal: Principal, run_id: int) -> OptimizerRun:
    """Drop a proposal (a queued or running one is not solved further / not stored)."""
    run = await _load(session, principal, run_id, DISPATCH, lock=True)
    _require_state(run, "queued", "running", "done", "failed", action="discard")
    before = run.state
    run.state = "discarded"
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "optimizer.proposal_discard",
        "optimizer_run",
        run.id,
        from_state=before,
        to_state="discarded",
    )
    return run
