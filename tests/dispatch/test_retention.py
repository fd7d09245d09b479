"""Notification retention on the real database: what is due, dry runs, one audit entry per
run, the worker's daily schedule, and the `fleet notifications prune` command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.notifications.retention import RetentionSettings, prune, prune_if_due
from fleet.config import Settings

FLEET_BIN = str(Path(sys.executable).with_name("fleet"))


async def _user(session: AsyncSession, name: str) -> int:
    return int(
        (
            await session.execute(text("SELECT id FROM users WHERE username = :u"), {"u": name})
        ).scalar_one()
    )


async def _add(
    session: AsyncSession, user_id: int, kind: str, age: timedelta, read: bool, now: datetime
) -> int:
    created = now - age
    return int(
        (
            await session.execute(
                text(
                    "INSERT INTO notifications (user_id, kind, message, created_at, read_at)"
                    " VALUES (:u, :k, 'm', :c, :r) RETURNING id"
                ),
                {
                    "u": user_id,
                    "k": kind,
                    "c": created,
                    "r": now - timedelta(days=1) if read else None,
                },
            )
        ).scalar_one()
    )


async def _remaining(session: AsyncSession, ids: list[int]) -> set[int]:
    rows = await session.execute(
        text("SELECT id FROM notifications WHERE id = ANY(:ids)"), {"ids": ids}
    )
    return {int(r[0]) for r in rows}


async def _prune_entries(session: AsyncSession) -> list[dict[str, object]]:
    rows = await session.execute(
        text("SELECT data::text FROM audit_log WHERE action = 'notification.prune' ORDER BY id")
    )
    return [orjson.loads(r[0]) for r in rows]


async def test_prune_deletes_by_age_and_read_state_with_one_audit_entry(
    session: AsyncSession,
) -> None:
    now = datetime.now(UTC)
    uid = await _user(session, "approver.qingxiu")
    d = timedelta(days=1)
    old_read = await _add(session, uid, "approved", 100 * d, True, now)
    read_late = await _add(session, uid, "approved", 91 * d, True, now)  # read yesterday
    young_read = await _add(session, uid, "approved", 89 * d, True, now)
    unread = await _add(session, uid, "approval_needed", 200 * d, False, now)
    old_unread = await _add(session, uid, "approval_needed", 400 * d, False, now)
    ids = [old_read, read_late, young_read, unread, old_unread]
    before = len(await _prune_entries(session))

    # Dry run: counts by kind and read state, deletes nothing, audits nothing.
    dry = await prune(session, now, read_days=90, unread_days=365, dry_run=True)
    assert (dry.total, dry.read, dry.unread) == (3, 2, 1)
    assert dry.by_kind == {
        "approved": {"read": 2, "unread": 0},
        "approval_needed": {"read": 0, "unread": 1},
    }
    assert dry.oldest is not None and abs(dry.oldest - (now - 400 * d)) < timedelta(seconds=1)
    assert await _remaining(session, ids) == set(ids)
    assert len(await _prune_entries(session)) == before

    # The real run deletes exactly those and writes one entry with the counts.
    rep = await prune(session, now, read_days=90, unread_days=365)
    assert (rep.total, rep.read, rep.unread) == (3, 2, 1) and rep.audit_id is not None
    assert await _remaining(session, ids) == {young_read, unread}
    entries = await _prune_entries(session)
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["deleted"], e["read"], e["unread"]) == (3, 2, 1)
    assert e["by_kind"] == {"approval_needed": 1, "approved": 2}
    assert (e["read_days"], e["unread_days"], e["via"]) == (90, 365, "cli")

    # Nothing left to do: still one entry for the run, with zero.
    again = await prune(session, now, read_days=90, unread_days=365)
    assert again.total == 0
    entries = await _prune_entries(session)
    assert len(entries) == before + 2 and entries[-1]["deleted"] == 0

    # Unread ones are never pruned sooner than read ones: 10 days for unread becomes 20.
    short = await prune(session, now, read_days=20, unread_days=10)
    assert (short.read, short.unread) == (1, 1)
    assert short.unread_before == short.read_before
    assert await _remaining(session, ids) == set()


async def test_worker_prunes_once_per_interval(session: AsyncSession) -> None:
    now = datetime.now(UTC)
    uid = await _user(session, "requester.qingxiu")
    cfg = RetentionSettings(read_days=90, unread_days=365, prune_every_h=24)
    await prune(session, now, read_days=90, unread_days=365)  # a run just now
    old = await _add(session, uid, "approved", timedelta(days=120), True, now)
    before = len(await _prune_entries(session))

    # Within the interval: no run, nothing deleted, nothing audited.
    assert await prune_if_due(session, now + timedelta(hours=1), cfg) is None
    assert await _remaining(session, [old]) == {old}
    assert len(await _prune_entries(session)) == before

    # A day later the worker runs with the configured ages.
    rep = await prune_if_due(session, now + timedelta(hours=25), cfg)
    assert rep is not None and rep.read == 1
    assert await _remaining(session, [old]) == set()
    entries = await _prune_entries(session)
    assert len(entries) == before + 1 and entries[-1]["via"] == "dispatch-worker"

    # A shorter configured interval runs sooner.
    hourly = cfg.model_copy(update={"prune_every_h": 0.5})
    assert await prune_if_due(session, now + timedelta(hours=1), hourly) is not None


async def _committed_old_rows(dsn: str, kind: str, n: int) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        uid = await conn.fetchval("SELECT id FROM users WHERE username = 'approver.qingxiu'")
        rows = await conn.fetch(
            "INSERT INTO notifications (user_id, kind, message, created_at, read_at)"
            " SELECT $1, $2, 'm', now() - interval '500 days', now() - interval '499 days'"
            " FROM generate_series(1, $3) RETURNING id",
            uid,
            kind,
            n,
        )
        return [int(r["id"]) for r in rows]
    finally:
        await conn.close()


async def _count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


def _fleet(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEET_BIN, *args],
        env={**os.environ, "FLEET_DB__NAME": settings.db.name, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prune_command_and_worker_round(settings: Settings) -> None:
    """The real command (dry, then for real) and one real dispatch-worker round, committed."""
    dsn = settings.db.dsn()
    kind = "retention_cli_test"
    ids = asyncio.run(_committed_old_rows(dsn, kind, 3))
    left = "SELECT count(*) FROM notifications WHERE id = ANY($1::bigint[])"
    audits = "SELECT count(*) FROM audit_log WHERE action = 'notification.prune'"
    audits_before = asyncio.run(_count(dsn, audits))

    dry = _fleet(settings, "notifications", "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert kind in dry.stdout and "would delete" in dry.stdout, dry.stdout
    assert asyncio.run(_count(dsn, left, ids)) == 3
    assert asyncio.run(_count(dsn, audits)) == audits_before

    bad = _fleet(settings, "notifications", "prune", "--older-than", "0")
    assert bad.returncode == 2 and "older-than" in bad.stderr

    real = _fleet(settings, "notifications", "prune", "--older-than", "100")
    assert real.returncode == 0, real.stderr
    assert "deleted" in real.stdout and "audit entry" in real.stdout, real.stdout
    assert asyncio.run(_count(dsn, left, ids)) == 0
    assert asyncio.run(_count(dsn, audits)) == audits_before + 1

    # The dispatch worker prunes in its round (interval shortened so it is due now).
    ids = asyncio.run(_committed_old_rows(dsn, kind, 2))
    worker = _fleet(
        settings, "dispatch-worker", "--once", FLEET_NOTIFICATIONS__PRUNE_EVERY_H="0.0001"
    )
    assert worker.returncode == 0, worker.stderr
    assert "worker.notifications_pruned" in worker.stderr, worker.stderr
    assert asyncio.run(_count(dsn, left, ids)) == 0
    assert asyncio.run(_count(dsn, audits)) == audits_before + 2
