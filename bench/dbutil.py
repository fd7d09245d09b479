"""What the database-backed benchmarks share: their own databases, created and reused.

Each benchmark builds its data in a database of its own (named after its data parameters
where they vary), reuses it while it exists and holds the marker table the benchmark
writes last, and drops it on request.
"""

from __future__ import annotations

import asyncpg

from fleet.config import get_settings


async def admin(sql: str) -> None:
    """Run one statement on the maintenance database (CREATE / DROP DATABASE)."""
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name="postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def database_exists(name: str, *, marker: str | None = None) -> bool:
    """Whether the database exists (and, with `marker`, holds that table: built to the end)."""
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name="postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
    finally:
        await conn.close()
    if marker is None:
        return True
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=name))
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", marker))
    finally:
        await conn.close()


async def recreate_database(name: str) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')


async def drop_database(name: str) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of `xs` (q in 0..1)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
