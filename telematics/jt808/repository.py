"""The gateway's SQL (asyncpg): JT/T 808 terminals, registration, links, commands.

Positions go through the shared store (telematics/ingest/store.py); this is everything else the
gateway reads or writes. Each function runs in the transaction its caller opened, or in
its own when given a pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
import orjson

from fleet.audit import Actor, record
from telematics.jt808.messages import (
    REG_NO_TERMINAL,
    REG_NO_VEHICLE,
    REG_OK,
    REG_TERMINAL_TAKEN,
    REG_VEHICLE_TAKEN,
    Registration,
)

TERMINAL_CHANGED = "fleet_terminal_changed"  # telematics/registry/service.py sends it too
COMMAND_QUEUED = "fleet_terminal_command"  # telematics/jt808/service.py


@dataclass(frozen=True, slots=True)
class TerminalRecord:
    id: str
    phone: str
    active: bool
    vehicle_id: int | None
    auth_code_hash: str | None
    secret_hash: str

    @property
    def key(self) -> str:
        return self.phone.lstrip("0")


_COLUMNS = "id, phone, active, vehicle_id, auth_code_hash, secret_hash"
_JT808 = "protocol = 'jt808' AND phone IS NOT NULL"


def _rec(r: asyncpg.Record) -> TerminalRecord:
    return TerminalRecord(
        r["id"], r["phone"], r["active"], r["vehicle_id"], r["auth_code_hash"], r["secret_hash"]
    )


async def active_terminals(db: asyncpg.Pool | asyncpg.Connection) -> list[TerminalRecord]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM terminals WHERE {_JT808} AND active")
    return [_rec(r) for r in rows]


async def terminal_by_id(
    db: asyncpg.Pool | asyncpg.Connection, terminal_id: str
) -> TerminalRecord | None:
    r = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM terminals WHERE {_JT808} AND id = $1", terminal_id
    )
    return _rec(r) if r else None


async def terminal_by_phone(
    db: asyncpg.Pool | asyncpg.Connection, key: str
) -> TerminalRecord | None:
    """The active terminal with this SIM number (leading zeros dropped)."""
    r = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM terminals WHERE {_JT808} AND active AND ltrim(phone, '0') = $1",
        key,
    )
    return _rec(r) if r else None


async def inactive_among(db: asyncpg.Pool, ids: list[str]) -> list[str]:
    """Of these terminal ids, those no longer active JT/T 808 terminals (or gone)."""
    rows = await db.fetch(
        f"SELECT id FROM terminals WHERE id = ANY($1::text[]) AND {_JT808} AND active", ids
    )
    alive = {r["id"] for r in rows}
    return [i for i in ids if i not in alive]


async def register(
    pool: asyncpg.Pool, key: str, reg: Registration, code_hash: str, actor: Actor
) -> tuple[int, str | None]:
    """0x0100 -> (0x8100 result, terminal id). The code's hash is stored only on success.

    4: no active JT/T 808 terminal has this SIM number; 3: it is registered already (it must
    unregister, or an administrator rotates its secret); 1: the plate (or VIN) it reports
    belongs to another vehicle that has a terminal of its own; 2: the terminal is bound to
    no vehicle. A plate that names no vehicle is not an error: the registry's binding is
    what counts (terminals are often configured with a placeholder plate).
    """
    async with pool.acquire() as conn, conn.transaction():
        t = await conn.fetchrow(
            f"SELECT id, vehicle_id, auth_code_hash FROM terminals"
            f" WHERE {_JT808} AND active AND ltrim(phone, '0') = $1 FOR UPDATE",
            key,
        )
        if t is None:
            return REG_NO_TERMINAL, None
        if t["auth_code_hash"] is not None:
            return REG_TERMINAL_TAKEN, t["id"]
        if reg.plate:
            named = await conn.fetchrow(
                "SELECT v.id, (SELECT o.id FROM terminals o WHERE o.vehicle_id = v.id) AS other"
                " FROM vehicles v WHERE upper(v.plate) = upper($1) OR upper(v.vin) = upper($1)"
                " LIMIT 1",
                reg.plate,
            )
            if named is not None and named["id"] != t["vehicle_id"] and named["other"]:
                return REG_VEHICLE_TAKEN, t["id"]
        if t["vehicle_id"] is None:
            return REG_NO_VEHICLE, t["id"]
        await conn.execute(
            "UPDATE terminals SET auth_code_hash = $2, registered_at = now(),"
            " registration = $3::jsonb, updated_at = now() WHERE id = $1",
            t["id"],
            code_hash,
            orjson.dumps(reg.as_json()).decode(),
        )
        await record(
            cast(asyncpg.Connection, conn),
            actor,
            "terminal.register",
            "terminal",
            t["id"],
            data=reg.as_json(),
        )
        await conn.execute("SELECT pg_notify($1, $2)", TERMINAL_CHANGED, t["id"])
        return REG_OK, t["id"]


async def unregister(pool: asyncpg.Pool, terminal_id: str, actor: Actor) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE terminals SET auth_code_hash = NULL, registered_at = NULL,"
            " updated_at = now() WHERE id = $1",
            terminal_id,
        )
        await record(
            cast(asyncpg.Connection, conn), actor, "terminal.unregister", "terminal", terminal_id
        )
        await conn.execute("SELECT pg_notify($1, $2)", TERMINAL_CHANGED, terminal_id)


# ---- links ---------------------------------------------------------------------------------


async def links_reset(pool: asyncpg.Pool, gateway: str) -> int:
    """At start: links this gateway left online when it died are not online any more."""
    r = await pool.execute(
        "UPDATE terminal_links SET online = false, disconnected_at = now(),"
        " reason = 'gateway_restarted' WHERE gateway = $1 AND online",
        gateway,
    )
    return int(r.split()[-1])


async def links_online(pool: asyncpg.Pool, rows: list[tuple[Any, ...]]) -> None:
    """rows: (terminal_id, gateway, peer, protocol_version, connected_at)."""
    await pool.execute(
        """
        INSERT INTO terminal_links AS l (terminal_id, gateway, peer, protocol_version, online,
                                         connected_at, last_seen_at)
        SELECT t, g, p, v, true, c, c
        FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::timestamptz[])
             AS d(t, g, p, v, c)
        WHERE EXISTS (SELECT 1 FROM terminals WHERE id = d.t)
        ON CONFLICT (terminal_id) DO UPDATE SET gateway = excluded.gateway,
            peer = excluded.peer, protocol_version = excluded.protocol_version, online = true,
            connected_at = excluded.connected_at, last_seen_at = excluded.last_seen_at,
            disconnected_at = NULL, reason = NULL
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )


async def links_offline(
    pool: asyncpg.Pool, gateway: str, rows: list[tuple[str, str, datetime, datetime]]
) -> list[asyncpg.Record]:
    """rows: (terminal_id, reason, connected_at, at). A link another connection has taken
    over since (a reconnect) is left alone. Terminals that went quiet (heartbeat timeout)
    also mark their vehicle offline; returns those status changes for the live bus."""
    ids, reasons, since, at = (list(c) for c in zip(*rows, strict=True))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            UPDATE terminal_links l SET online = false, disconnected_at = d.at, reason = d.r
            FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                 AS d(t, r, c, at)
            WHERE l.terminal_id = d.t AND l.gateway = $5 AND l.connected_at = d.c
            """,
            ids,
            reasons,
            since,
            at,
            gateway,
        )
        quiet = [t for t, r in zip(ids, reasons, strict=True) if r == "heartbeat_timeout"]
        if not quiet:
            return []
        return list(
            await conn.fetch(
                """
                WITH old AS (
                    SELECT lp.vehicle_id, lp.status AS previous FROM latest_positions lp
                    JOIN terminals t ON t.vehicle_id = lp.vehicle_id
                    WHERE t.id = ANY($1::text[]) AND lp.status <> 'offline'
                    FOR UPDATE OF lp
                )
                UPDATE latest_positions lp SET status = 'offline', status_since = now()
                FROM old, vehicles v, orgs o
                WHERE old.vehicle_id = lp.vehicle_id AND v.id = lp.vehicle_id
                  AND o.id = v.unit_id
                RETURNING lp.vehicle_id, lp.status, old.previous, lp.status_since, lp.ts,
                    ST_Y(lp.geom) AS lat, ST_X(lp.geom) AS lon, o.path::text AS org_path
                """,
                quiet,
            )
        )


async def links_seen(pool: asyncpg.Pool, gateway: str, rows: list[tuple[str, datetime]]) -> None:
    ids, at = (list(c) for c in zip(*rows, strict=True))
    await pool.execute(
        "UPDATE terminal_links l SET last_seen_at = d.at"
        " FROM unnest($1::text[], $2::timestamptz[]) AS d(t, at)"
        " WHERE l.terminal_id = d.t AND l.gateway = $3 AND l.online AND l.last_seen_at < d.at",
        ids,
        at,
        gateway,
    )


# ---- commands ------------------------------------------------------------------------------

_COMMAND_EVENT = """
    c.id, c.terminal_id, c.vehicle_id, c.kind, c.status, c.result, c.replied_at, c.reply,
    (SELECT o.path::text FROM vehicles v JOIN orgs o ON o.id = v.unit_id
     WHERE v.id = c.vehicle_id) AS org_path
"""


async def claim_commands(
    pool: asyncpg.Pool, terminal_ids: list[str], gateway: str, ttl_s: float
) -> list[asyncpg.Record]:
    """Queued, unexpired commands for these (connected) terminals, marked sent by us."""
    return list(
        await pool.fetch(
            f"""
            UPDATE terminal_commands c SET status = 'sent', sent_at = now(), gateway = $2
            WHERE c.id IN (
                SELECT id FROM terminal_commands
                WHERE status = 'queued' AND terminal_id = ANY($1::text[])
                  AND created_at > now() - make_interval(secs => $3)
                ORDER BY id FOR UPDATE SKIP LOCKED)
            RETURNING c.body, {_COMMAND_EVENT}
            """,
            terminal_ids,
            gateway,
            ttl_s,
        )
    )


async def any_queued(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM terminal_commands WHERE status = 'queued')"
        )
    )


async def command_sent(pool: asyncpg.Pool, rows: list[tuple[int, int]]) -> None:
    """rows: (command id, the serial number of the frame that carried it)."""
    ids, serials = (list(c) for c in zip(*rows, strict=True))
    await pool.execute(
        "UPDATE terminal_commands c SET serial = d.s FROM unnest($1::bigint[], $2::int[])"
        " AS d(i, s) WHERE c.id = d.i",
        ids,
        serials,
    )


async def command_requeue(pool: asyncpg.Pool, ids: list[int]) -> None:
    await pool.execute(
        "UPDATE terminal_commands SET status = 'queued', sent_at = NULL, gateway = NULL"
        " WHERE id = ANY($1::bigint[]) AND status = 'sent'",
        ids,
    )


async def command_replied(
    pool: asyncpg.Pool, command_id: int, status: str, result: int | None, reply: dict[str, Any]
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"""
        UPDATE terminal_commands c SET status = $2, result = $3, reply = $4::jsonb,
            replied_at = now()
        WHERE c.id = $1 AND c.status = 'sent'
        RETURNING {_COMMAND_EVENT}
        """,
        command_id,
        status,
        result,
        orjson.dumps(reply).decode(),
    )


async def expire_commands(pool: asyncpg.Pool, ttl_s: float) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            f"""
            UPDATE terminal_commands c SET status = 'expired'
            WHERE c.status = 'queued' AND c.created_at <= now() - make_interval(secs => $1)
            RETURNING {_COMMAND_EVENT}
            """,
            ttl_s,
        )
    )


def command_event(r: asyncpg.Record) -> tuple[str | None, dict[str, Any]]:
    """(org path, data) of a `terminal_command` event on the live bus."""
    reply = r["reply"]
    return r["org_path"], {
        "id": r["id"],
        "terminal_id": r["terminal_id"],
        "vehicle_id": r["vehicle_id"],
        "kind": r["kind"],
        "status": r["status"],
        "result": r["result"],
        "replied_at": r["replied_at"].isoformat() if r["replied_at"] else None,
        "reply": orjson.loads(reply) if isinstance(reply, str) else reply,
    }
