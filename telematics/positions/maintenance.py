"""Position storage maintenance: re-order closed day partitions by (vehicle_id, ts).

Pings arrive interleaved across the whole fleet, so one vehicle's day is spread over
thousands of heap pages; a track read that misses the cache pays one random read per ping.
Rewriting a closed day in (vehicle_id, ts) order makes the same read touch a few pages.
`pg_repack` does the rewrite online (brief locks only at start and end), so the ingest keeps
inserting late, buffered pings into that day while it runs. With `--no-kill-backend` it
never cancels anybody's query: if it cannot get its final lock in time it gives up, and the
next round tries again.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from fleet.audit import Actor, record
from fleet.config import Settings
from fleet.logging import get_logger

log = get_logger("telematics.maintenance")

ACTOR = Actor("maintenance")
_DAY = re.compile(r"^positions_(\d{8})$")
ORDER_BY = "vehicle_id, ts"


class RepackUnavailable(RuntimeError):
    """pg_repack (the client binary or the server extension) is not installed."""


@dataclass(frozen=True)
class DayPartition:
    name: str
    day: date
    rows: int  # estimate from the planner's statistics (reltuples), -1 if never analysed
    repacked_at: datetime | None
    rows_at_repack: int | None

    @property
    def end(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class RepackResult:
    partition: str
    rows_before: int
    rows_after: int
    seconds: float
    ok: bool
    error: str | None = None
    skipped: bool = False  # empty partition: nothing done, nothing recorded


async def day_partitions(conn: asyncpg.Connection) -> list[DayPartition]:
    """Every daily partition of `positions`, oldest first, with what was done to it."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, c.reltuples::bigint AS rows, r.repacked_at, r.rows_after
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        LEFT JOIN position_partition_repacks r ON r.partition = c.relname
        WHERE i.inhparent = 'positions'::regclass
        ORDER BY c.relname
        """
    )
    out = []
    for r in rows:
        m = _DAY.match(r["name"])
        if m:
            day = datetime.strptime(m.group(1), "%Y%m%d").date()
            out.append(DayPartition(r["name"], day, r["rows"], r["repacked_at"], r["rows_after"]))
    return out


def due(
    parts: list[DayPartition], *, now: datetime, settle: timedelta, force: bool = False
) -> list[DayPartition]:
    """Closed days (ended at least `settle` ago) not repacked yet, oldest first."""
    return [
        p
        for p in parts
        if p.end + settle <= now and (force or p.repacked_at is None) and p.rows != 0
    ]


def _binary() -> str:
    path = shutil.which("pg_repack")
    if path is None:
        raise RepackUnavailable(
            "the pg_repack client is not installed (Debian: postgresql-<major>-repack; "
            "scripts/setup.sh installs it)"
        )
    return path


async def check_available(conn: asyncpg.Connection) -> None:
    """The client binary is on PATH and the extension exists (created here if installable)."""
    _binary()
    if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'pg_repack'"):
        return
    if await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_repack'"):
        # The server package arrived after migration 0006 ran (e.g. an older database).
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
        return
    raise RepackUnavailable(
        "the server has no pg_repack extension (Debian: postgresql-<major>-repack; "
        "scripts/setup.sh installs it)"
    )


async def repack_one(
    settings: Settings, conn: asyncpg.Connection, part: DayPartition, *, wait_timeout_s: int = 60
) -> RepackResult:
    """Rewrite one partition in (vehicle_id, ts) order; record and audit the result."""
    before = int(await conn.fetchval(f'SELECT count(*) FROM "{part.name}"'))
    if before == 0:  # nothing to order (a day with no pings); checked again next round
        return RepackResult(part.name, 0, 0, 0.0, True, skipped=True)
    # pg_repack needs a superuser (it installs triggers and swaps relfilenodes): the owner
    # connection, never the runtime role (docs/operations.md, "Database roles").
    db = settings.db.owner()
    env = {**os.environ, "PGPASSWORD": db.password.get_secret_value()}
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        _binary(),
        "--host", db.host, "--port", str(db.port), "--username", db.user,
        "--dbname", db.name, "--table", f"public.{part.name}", "--order-by", ORDER_BY,
        "--wait-timeout", str(wait_timeout_s), "--no-kill-backend", "--elevel", "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    out, _ = await proc.communicate()
    seconds = time.monotonic() - started
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0 or "ERROR" in text:
        log.warning("repack.failed", partition=part.name, code=proc.returncode, output=text[-500:])
        return RepackResult(part.name, before, before, seconds, False, text[-500:] or "failed")
    after = int(await conn.fetchval(f'SELECT count(*) FROM "{part.name}"'))
    await conn.execute(f'ANALYZE "{part.name}"')
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO position_partition_repacks
                (partition, day, rows_before, rows_after, seconds)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (partition) DO UPDATE SET rows_before = EXCLUDED.rows_before,
                rows_after = EXCLUDED.rows_after, seconds = EXCLUDED.seconds,
                repacked_at = now()
            """,
            part.name, part.day, before, after, seconds,
        )  # fmt: skip
        await record(
            conn,
            ACTOR,
            "positions.repack",
            "partition",
            part.name,
            data={"rows_before": before, "rows_after": after, "seconds": round(seconds, 2),
                  "order_by": ORDER_BY},
        )  # fmt: skip
    log.info("repack.done", partition=part.name, rows=after, seconds=round(seconds, 2))
    return RepackResult(part.name, before, after, seconds, True)


async def repack_due(
    settings: Settings,
    *,
    settle: timedelta = timedelta(hours=6),
    days: list[date] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[RepackResult]:
    """Repack what is due (or the given days); one partition at a time, oldest first."""
    conn = await asyncpg.connect(
        settings.db.owner().dsn(), server_settings={"application_name": "repack"}
    )
    try:
        parts = await day_partitions(conn)
        if days is not None:
            wanted = set(days)
            todo = [p for p in parts if p.day in wanted and (force or p.repacked_at is None)]
            missing = wanted - {p.day for p in parts}
            if missing:
                raise ValueError(f"no partition for {', '.join(sorted(map(str, missing)))}")
            now = datetime.now(UTC)
            open_days = [p.name for p in todo if p.end > now]
            if open_days:
                raise ValueError(f"day not over yet (UTC): {', '.join(open_days)}")
        else:
            todo = due(parts, now=datetime.now(UTC), settle=settle, force=force)
        if dry_run or not todo:
            return [RepackResult(p.name, max(p.rows, 0), max(p.rows, 0), 0.0, True) for p in todo]
        await check_available(conn)
        results = []
        for k, p in enumerate(todo, 1):
            if progress:
                progress(f"[{k}/{len(todo)}] {p.name} (~{max(p.rows, 0):,} rows) …")
            res = await repack_one(settings, conn, p)
            results.append(res)
            if progress:
                state = (
                    "empty, skipped" if res.skipped else "ok" if res.ok else f"FAILED: {res.error}"
                )
                progress(f"[{k}/{len(todo)}] {p.name}: {res.rows_after:,} rows in "
                         f"{res.seconds:.1f} s, {state}")  # fmt: skip
        return [r for r in results if not r.skipped]
    finally:
        await conn.close()
