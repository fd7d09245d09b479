"""Supervision alerts: query by scope/time/vehicle/kind/status, acknowledge or close (audited).

Reading is for admins, dispatchers and auditors within their org subtrees (plus, for
dispatchers, vehicles of pools shared with them). Acknowledging and closing are dispatcher /
admin actions: auditors read and never write. Each acknowledgement or closing goes out on the
live bus after commit as an ``alert`` event carrying the new ``status`` (the same type a new
alert uses), so every console in scope updates its alerts list and map without a reload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit, outbox
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.identity.principal import Principal, hidden
from fleet.registry.visibility import visibility_sql

ALERT_READ = ("admin", "dispatcher", "auditor")
ALERT_WRITE = ("admin", "dispatcher")

_COLUMNS = (
    "a.id, a.kind, a.severity, a.vehicle_id, v.plate, a.org_id, o.name AS org_name, a.trip_id,"
    " a.started_at, a.ended_at, ST_Y(a.location) AS lat, ST_X(a.location) AS lon, a.message,"
    " a.dedup_key, a.status, a.ack_by, a.ack_at, a.ack_comment, a.created_at"
)
_FROM = " FROM alerts a JOIN orgs o ON o.id = a.org_id LEFT JOIN vehicles v ON v.id = a.vehicle_id"


def _row(r: Any, *, evidence: bool = False) -> dict[str, Any]:
    d = dict(r)
    lat, lon = d.pop("lat"), d.pop("lon")
    d["location"] = {"lat": lat, "lon": lon} if lat is not None else None
    if evidence:
        raw = d.pop("evidence_text", None)
        d["evidence"] = orjson.loads(raw) if raw else {}
    return d


async def list_alerts(
    session: AsyncSession,
    principal: Principal,
    *,
    start: datetime | None,
    end: datetime | None,
    vehicle_id: int | None,
    kind: str | None,
    status: str | None,
    under: int | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    clause, params = visibility_sql(principal, ALERT_READ, org="o", vehicle="v")
    where = [clause]
    if start is not None and end is not None and end <= start:
        raise Invalid("end must be after start", field="end")
    if start is not None:
        where.append("coalesce(a.ended_at, 'infinity') >= :start")
        params["start"] = start
    if end is not None:
        where.append("a.started_at < :end")
        params["end"] = end
    if vehicle_id is not None:
        where.append("a.vehicle_id = :vehicle_id")
        params["vehicle_id"] = vehicle_id
    if kind is not None:
        where.append("a.kind = :kind")
        params["kind"] = kind
    if status is not None:
        where.append("a.status = :status")
        params["status"] = status
    if under is not None:
        root = await session.scalar(
            text("SELECT path::text FROM orgs WHERE id = :id"), {"id": under}
        )
        if root is None:
            raise NotFound(f"organisation {under} not found", field="under")
        where.append("o.path <@ CAST(:under AS ltree)")
        params["under"] = root
    cond = " WHERE " + " AND ".join(where)
    total: int = (
        await session.execute(text("SELECT count(*)" + _FROM + cond), params)
    ).scalar_one()
    rows = await session.execute(
        text(
            "SELECT "
            + _COLUMNS
            + _FROM
            + cond
            + " ORDER BY a.started_at DESC, a.id DESC LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    )
    return [_row(r) for r in rows.mappings()], int(total)


async def read_alert(
    session: AsyncSession,
    principal: Principal,
    alert_id: int,
    roles: tuple[str, ...] = ALERT_READ,
    *,
    act: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """An alert the caller may see through `roles` (with its evidence); 404 for one they
    cannot see, as for a missing one. With `act`, 403 unless those roles reach it too."""
    principal.require(act or roles)
    clause, params = visibility_sql(principal, roles, org="o", vehicle="v")
    act_clause = "true"
    if act is not None:
        act_clause, act_params = visibility_sql(principal, act, org="o", vehicle="v")
        act_clause = act_clause.replace(":scope_", ":act_scope_")
        params |= {f"act_{k}": v for k, v in act_params.items()}
    row = (
        (
            await session.execute(
                text(
                    "SELECT " + _COLUMNS + ", a.evidence::text AS evidence_text, (" + clause + ")"
                    " AS in_scope, (" + act_clause + ") AS may_act" + _FROM + " WHERE a.id = :id"
                ),
                {**params, "id": alert_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None or not row["in_scope"]:
        raise hidden("alert", alert_id, field="id")
    if not row["may_act"]:
        raise Forbidden("alert is outside your scope", code="out_of_scope", field="id")
    d = dict(row)
    d.pop("in_scope")
    d.pop("may_act")
    return _row(d, evidence=True)


async def _transition(
    session: AsyncSession,
    principal: Principal,
    alert_id: int,
    *,
    to: str,
    allowed_from: tuple[str, ...],
    comment: str,
    action: str,
) -> dict[str, Any]:
    current = await read_alert(session, principal, alert_id, act=ALERT_WRITE)
    if current["status"] not in allowed_from:
        raise Conflict(
            f"alert is {current['status']}; cannot become {to}",
            field="status",
            code="invalid_transition",
        )
    await session.execute(
        text(
            "UPDATE alerts SET status = :to, ack_by = :uid, ack_at = now(),"
            " ack_comment = :comment WHERE id = :id"
        ),
        {"to": to, "uid": principal.user_id, "comment": comment, "id": alert_id},
    )
    await audit.record(
        session,
        principal.actor,
        action,
        "alert",
        alert_id,
        from_state=current["status"],
        to_state=to,
        reason=comment,
        data={"kind": current["kind"], "vehicle_id": current["vehicle_id"]},
    )
    after = await read_alert(session, principal, alert_id)
    await _announce(session, principal, after, from_status=current["status"])
    return after


async def _announce(
    session: AsyncSession, principal: Principal, alert: dict[str, Any], *, from_status: str
) -> None:
    """Queue the new state on the live bus (type "alert"), sent once the request commits.

    Consoles are reached by the alert's unit path (and, for shared pools, by the vehicle);
    ``vehicle_open_alerts`` tells a map whether the vehicle still has another open alert.
    """
    row = (
        await session.execute(
            text(
                "SELECT o.path::text AS path, (SELECT count(*) FROM alerts x"
                " WHERE x.vehicle_id = :vid AND x.status = 'open') AS still_open"
                " FROM orgs o WHERE o.id = :org"
            ),
            {"org": alert["org_id"], "vid": alert["vehicle_id"]},
        )
    ).one()
    data = {
        k: alert[k]
        for k in (
            "id",
            "kind",
            "severity",
            "vehicle_id",
            "trip_id",
            "started_at",
            "message",
            "status",
            "ack_by",
            "ack_at",
            "ack_comment",
        )
    }
    data.update(
        from_status=from_status,
        by=principal.username,
        vehicle_open_alerts=int(row.still_open) if alert["vehicle_id"] is not None else 0,
    )
    outbox.queue(session, "alert", data, org_path=row.path)


async def acknowledge(
    session: AsyncSession, principal: Principal, alert_id: int, comment: str
) -> dict[str, Any]:
    return await _transition(
        session,
        principal,
        alert_id,
        to="acknowledged",
        allowed_from=("open",),
        comment=comment,
        action="alert.acknowledge",
    )


async def close(
    session: AsyncSession, principal: Principal, alert_id: int, comment: str
) -> dict[str, Any]:
    return await _transition(
        session,
        principal,
        alert_id,
        to="closed",
        allowed_from=("open", "acknowledged"),
        comment=comment,
        action="alert.close",
    )
