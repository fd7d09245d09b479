"""The append-only, hash-chained audit log: one function writes, one verifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


_VERIFY = text(
    """
    SELECT id, problem FROM (
        SELECT a.id,
               CASE
                 WHEN a.id <> coalesce(lag(a.id) OVER w, 0) + 1 THEN 'gap before entry'
                 WHEN a.prev_hash IS DISTINCT FROM lag(a.hash) OVER w THEN 'prev_hash mismatch'
                 WHEN a.hash <> audit_entry_hash(a.prev_hash, a) THEN 'entry altered'
               END AS problem
        FROM audit_log a
        WINDOW w AS (ORDER BY a.id)
    ) s WHERE problem IS NOT NULL ORDER BY id LIMIT :limit
    """
)


async def verify(session: AsyncSession | AsyncConnection, *, limit: int = 100) -> list[ChainBreak]:
    """Recompute the chain; any edited, inserted or deleted entry shows up as a break."""
    rows = (await session.execute(_VERIFY, {"limit": limit})).all()
    return [ChainBreak(id=int(r[0]), problem=str(r[1])) for r in rows]
