"""Console -> terminal commands: who may send, to which vehicle, and what is recorded.

A dispatcher (or administrator) whose scope covers the vehicle queues a text or a position
query for the vehicle's JT/T 808 terminal; the command is stored and audited, and a
PostgreSQL notification (sent on commit) tells the gateways (telematics/jt808/commands.py).
Reading a vehicle's terminal link and commands is for admins, dispatchers and auditors.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.errors import Conflict
from fleet.identity.principal import Principal
from fleet.registry.visibility import TRACK_READ, visible_vehicle
from telematics.jt808 import schemas
from telematics.jt808.repository import COMMAND_QUEUED

SEND = ("admin", "dispatcher")

_COMMANDS = text(
    "SELECT c.id, c.vehicle_id, c.terminal_id, c.kind, c.body::text AS body, c.status,"
    " c.created_at, u.username AS created_by, c.sent_at, c.replied_at, c.result,"
    " c.reply::text AS reply FROM terminal_commands c LEFT JOIN users u ON u.id = c.created_by"
    " WHERE c.vehicle_id = :vid ORDER BY c.id DESC LIMIT :limit"
)


def _command(r: Any) -> schemas.CommandOut:
    body = orjson.loads(r["body"]) if r["body"] else {}
    return schemas.CommandOut(
        id=r["id"],
        vehicle_id=r["vehicle_id"],
        terminal_id=r["terminal_id"],
        kind=r["kind"],
        text=body.get("text"),
        status=r["status"],
        created_at=r["created_at"],
        created_by=r["created_by"],
        sent_at=r["sent_at"],
        replied_at=r["replied_at"],
        result=r["result"],
        reply=orjson.loads(r["reply"]) if r["reply"] else None,
    )


async def send_command(
    session: AsyncSession, principal: Principal, vehicle_id: int, body: schemas.CommandIn
) -> schemas.CommandOut:
    await visible_vehicle(session, principal, vehicle_id, SEND)
    term = (
        (
            await session.execute(
                text("SELECT id, protocol, active FROM terminals WHERE vehicle_id = :vid"),
                {"vid": vehicle_id},
            )
        )
        .mappings()
        .first()
    )
    if term is None:
        raise Conflict("the vehicle has no terminal", field="vehicle_id", code="no_terminal")
    if not term["active"]:
        raise Conflict("the terminal is deactivated", field="vehicle_id", code="terminal_inactive")
    if term["protocol"] != "jt808":
        raise Conflict(
            "only JT/T 808 terminals take commands", field="vehicle_id", code="unsupported_protocol"
        )
    data: dict[str, Any] = {}
    if body.kind == "text":
        data = {"text": body.text, "tts": body.tts, "urgent": body.urgent}
    row = (
        (
            await session.execute(
                text(
                    "INSERT INTO terminal_commands"
                    " (terminal_id, vehicle_id, kind, body, created_by)"
                    " VALUES (:tid, :vid, :kind, CAST(:body AS jsonb), :uid) RETURNING id"
                ),
                {
                    "tid": term["id"],
                    "vid": vehicle_id,
                    "kind": body.kind,
                    "body": orjson.dumps(data).decode(),
                    "uid": principal.user_id,
                },
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        session,
        principal.actor,
        "terminal_command.create",
        "terminal_command",
        row["id"],
        to_state="queued",
        data={"vehicle_id": vehicle_id, "terminal_id": term["id"], "kind": body.kind, **data},
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :tid)"), {"channel": COMMAND_QUEUED, "tid": term["id"]}
    )
    r = (await session.execute(_COMMANDS, {"vid": vehicle_id, "limit": 1})).mappings().one()
    return _command(r)


async def terminal_link(
    session: AsyncSession, principal: Principal, vehicle_id: int, *, limit: int = 20
) -> schemas.TerminalLinkOut:
    await visible_vehicle(session, principal, vehicle_id, TRACK_READ)
    row = (
        (
            await session.execute(
                text(
                    "SELECT t.id, t.protocol, t.active, l.online, l.connected_at, l.last_seen_at,"
                    " l.disconnected_at, l.reason FROM terminals t"
                    " LEFT JOIN terminal_links l ON l.terminal_id = t.id WHERE t.vehicle_id = :vid"
                ),
                {"vid": vehicle_id},
            )
        )
        .mappings()
        .first()
    )
    rows = (await session.execute(_COMMANDS, {"vid": vehicle_id, "limit": limit})).mappings()
    return schemas.TerminalLinkOut(
        vehicle_id=vehicle_id,
        terminal_id=row["id"] if row else None,
        protocol=row["protocol"] if row else None,
        active=row["active"] if row else None,
        commands_supported=bool(row and row["protocol"] == "jt808" and row["active"]),
        online=bool(row and row["online"]),
        connected_at=row["connected_at"] if row else None,
        last_seen_at=row["last_seen_at"] if row else None,
        disconnected_at=row["disconnected_at"] if row else None,
        reason=row["reason"] if row else None,
        commands=[_command(r) for r in rows],
    )
