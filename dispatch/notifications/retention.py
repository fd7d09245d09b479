"""Retention of stored notifications: delete old ones, one audit entry per run.

A notification is pruned by its age (``created_at``): read ones after ``read_days`` (90 by
default), unread ones after ``unread_days`` (365) — never sooner than read ones. Settings
live here rather than in the shared Settings (env ``FLEET_NOTIFICATIONS__<NAME>``): only
the prune command and the dispatch worker read them. Each run is audited once with its
counts (``notification.prune``, entity ``notifications``/``retention``), never per row; that
entry is also how the worker knows when the last run was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.config import ROOT

ACTOR = audit.Actor("retention")
ACTION = "notification.prune"
ENTITY, ENTITY_ID = "notifications", "retention"
_LOCK = "fleet.notifications.prune"


class RetentionSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEET_NOTIFICATIONS__",
        env_file=str(ROOT / ".env"),
        extra="ignore",
    )

    read_days: int = Field(90, ge=1, le=36_500, description="read notifications kept this long")
    unread_days: int = Field(
        365, ge=1, le=36_500, description="unread ones kept this long (at least read_days)"
    )
    prune_every_h: float = Field(
        24.0, gt=0, le=24 * 31, description="the dispatch worker prunes this often"
    )


@dataclass(frozen=True)
class PruneReport:
    """What a run deleted (or, dry, would delete): counts by kind and read state."""

    read_before: datetime
    unread_before: datetime
    dry_run: bool
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> read/unread
    oldest: datetime | None = None
    audit_id: int | None = None

    @property
    def read(self) -> int:
        return sum(v["read"] for v in self.by_kind.values())

    @property
    def unread(self) -> int:
        return sum(v["unread"] for v in self.by_kind.values())

    @property
    def total(self) -> int:
        return self.read + self.unread


_DUE = (
    "(read_at IS NOT NULL AND created_at < :read_before)"
    " OR (read_at IS NULL AND created_at < :unread_before)"
)
_SUMMARY = (
    " SELECT kind, read_at IS NULL AS unread, count(*) AS n, min(created_at) AS oldest"
    " FROM due GROUP BY 1, 2"
)
_DRY = text(
    "WITH due AS (SELECT kind, read_at, created_at FROM notifications WHERE "
    + _DUE
    + ")"
    + _SUMMARY
)
_DELETE = text(
    "WITH due AS (DELETE FROM notifications WHERE "
    + _DUE
    + " RETURNING kind, read_at, created_at)"
    + _SUMMARY
)


async def prune(
    session: AsyncSession,
    now: datetime,
    *,
    read_days: int,
    unread_days: int,
    dry_run: bool = False,
    via: str = "cli",
) -> PruneReport:
    """Delete (or with `dry_run` only count) notifications past their retention.

    Unread ones are kept at least as long as read ones (``max(unread_days, read_days)``).
    A real run appends one audit entry with the counts, also when nothing was due.
    """
    if read_days < 1 or unread_days < 1:
        raise ValueError("retention is at least one day")
    unread_days = max(unread_days, read_days)
    read_before = now - timedelta(days=read_days)
    unread_before = now - timedelta(days=unread_days)
    params = {"read_before": read_before, "unread_before": unread_before}
    rows = (await session.execute(_DRY if dry_run else _DELETE, params)).all()
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_kind.setdefault(str(r.kind), {"read": 0, "unread": 0})
        counts["unread" if r.unread else "read"] += int(r.n)
    oldest: datetime | None = min((r.oldest for r in rows), default=None)
    report = PruneReport(read_before, unread_before, dry_run, by_kind, oldest)
    if dry_run:
        return report
    data: dict[str, Any] = {
        "deleted": report.total,
        "read": report.read,
        "unread": report.unread,
        "read_days": read_days,
        "unread_days": unread_days,
        "read_before": read_before,
        "unread_before": unread_before,
        "by_kind": {k: v["read"] + v["unread"] for k, v in sorted(by_kind.items())},
        "via": via,
    }
    audit_id = await audit.record(session, ACTOR, ACTION, ENTITY, ENTITY_ID, data=data)
    return PruneReport(read_before, unread_before, False, by_kind, oldest, audit_id)


async def last_run(session: AsyncSession) -> datetime | None:
    """When notifications were last pruned (the newest prune audit entry)."""
    at: datetime | None = await session.scalar(
        text("SELECT max(at) FROM audit_log WHERE entity = :e AND entity_id = :i AND action = :a"),
        {"e": ENTITY, "i": ENTITY_ID, "a": ACTION},
    )
    return at


async def prune_if_due(
    session: AsyncSession, now: datetime, settings: RetentionSettings
) -> PruneReport | None:
    """The worker's daily run: prune unless a run (worker or CLI) happened within
    ``prune_every_h``. Serialised by a transaction lock, so two workers never both run."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _LOCK})
    last = await last_run(session)
    if last is not None and now - last < timedelta(hours=settings.prune_every_h):
        return None
    return await prune(
        session,
        now,
        read_days=settings.read_days,
        unread_days=settings.unread_days,
        via="dispatch-worker",
    )
