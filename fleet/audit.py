"""The append-only, hash-chained audit log: one function writes, one verifies."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"

    # id, at, prev_hash and hash are set by the database trigger.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Actor:
    """Who did it: a user (id + username) or a named process such as ``ingest``."""

    name: str
    user_id: int | None = None


_INSERT = text(
    "INSERT INTO audit_log (id, at, actor_id, actor, action, entity, entity_id, from_state,"
    " to_state, reason, data, hash) VALUES (0, now(), :actor_id, :actor, :action, :entity,"
    " :entity_id, :from_state, :to_state, :reason, CAST(:data AS jsonb), '\\x') RETURNING id"
)


_INSERT_PG = (
    "INSERT INTO audit_log (id, at, actor_id, actor, action, entity, entity_id, from_state,"
    " to_state, reason, data, hash) VALUES (0, now(), $1, $2, $3, $4, $5, $6, $7, $8,"
    " $9::jsonb, '\\x') RETURNING id"
)


async def record(
    db: AsyncSession | AsyncConnection | asyncpg.Connection,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its chain position.

    `db` is the request's SQLAlchemy session or connection, or a plain asyncpg connection
    (workers that do not use SQLAlchemy).
    """
    import orjson

    values = {
        "actor_id": actor.user_id,
        "actor": actor.name,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "data": orjson.dumps(data or {}, default=str).decode(),
    }
    if isinstance(db, AsyncSession | AsyncConnection):
        return int((await db.execute(_INSERT, values)).scalar_one())
    return int(await db.fetchval(_INSERT_PG, *values.values()))


@dataclass(frozen=True)
class ChainBreak:
    id: int
    problem: str


Db = AsyncSession | AsyncConnection | asyncpg.Connection


async def _fetch(db: Db, sql: str, *args: object) -> list[Any]:
    """Rows of a `$n`-parameterised query on either kind of connection."""
    if isinstance(db, AsyncSession | AsyncConnection):
        stmt = text(re.sub(r"\$(\d+)", r":p\1", sql))
        res = await db.execute(stmt, {f"p{i}": a for i, a in enumerate(args, 1)})
        return [r._mapping for r in res]
    return list(await db.fetch(sql, *args))


def entry_hash(prev: bytes | None, e: Any) -> bytes:
    """The chain hash of one entry, computed here exactly as `audit_entry_hash` does in SQL.

    Verification recomputes in Python so that it does not trust code stored in the very
    database it checks (a superuser could replace the SQL function). `e.data` is the jsonb
    column's text form (`data::text`), which PostgreSQL renders canonically.
    """
    fields = (
        str(e["id"]),
        e["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "" if e["actor_id"] is None else str(e["actor_id"]),
        e["actor"],
        e["action"],
        e["entity"],
        e["entity_id"],
        e["from_state"] or "",
        e["to_state"] or "",
        e["reason"] or "",
        e["data"],
    )
    return hashlib.sha256((prev or b"") + "\x1f".join(fields).encode()).digest()


_PAGE = (
    "SELECT id, at, actor_id, actor, action, entity, entity_id, from_state, to_state, reason,"
    " data::text AS data, prev_hash, hash FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
)


async def verify(
    db: Db,
    *,
    limit: int = 100,
    after: int = 0,
    after_hash: bytes | None = None,
    page: int = 5000,
) -> list[ChainBreak]:
    """Recompute the chain; any edited, inserted or deleted entry shows up as a break.

    From the start, or (anchor worker) only the entries after `after`, whose hash must be
    `after_hash`. Deleting the newest entries, or rewriting and re-hashing everything from
    some entry on, leaves a consistent chain: only the signed checkpoints outside the
    database catch that (fleet/anchors.py).
    """
    breaks: list[ChainBreak] = []
    prev_id, prev_hash = after, after_hash
    while len(breaks) < limit:
        rows = await _fetch(db, _PAGE, prev_id, page)
        for r in rows:
            rid, stored_prev, stored = int(r["id"]), _bytes(r["prev_hash"]), _bytes(r["hash"])
            if rid != prev_id + 1:
                breaks.append(ChainBreak(rid, "gap before entry"))
            elif stored_prev != prev_hash:
                breaks.append(ChainBreak(rid, "prev_hash mismatch"))
            elif stored != entry_hash(stored_prev, r):
                breaks.append(ChainBreak(rid, "entry altered"))
            prev_id, prev_hash = rid, stored
            if len(breaks) >= limit:
                break
        if len(rows) < page:
            break
    return breaks


def _bytes(v: object) -> bytes | None:
    return None if v is None else bytes(v)  # type: ignore[call-overload]


async def head(db: Db) -> tuple[int, bytes | None]:
    """The newest entry's position and hash: (0, None) for an empty log."""
    rows = await _fetch(db, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return (int(rows[0]["id"]), _bytes(rows[0]["hash"])) if rows else (0, None)


async def count(db: Db) -> int:
    return int((await _fetch(db, "SELECT count(*) AS n FROM audit_log"))[0]["n"])


async def hashes_at(db: Db, ids: list[int]) -> dict[int, bytes]:
    """The stored hash of each of the given entries that exists."""
    rows = await _fetch(
        db, "SELECT id, hash FROM audit_log WHERE id = ANY(CAST($1 AS bigint[]))", ids
    )
    return {int(r["id"]): bytes(r["hash"]) for r in rows}
