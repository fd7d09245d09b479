"""The Alembic chain applies, reverses and re-applies on a real PostGIS database."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from fleet.cli import migrate
from fleet.config import Settings
from fleet.db import drop_database, recreate_database


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE 'positions_2%'"
        )
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


def test_upgrade_downgrade_upgrade(settings: Settings) -> None:
    name = f"fleet_mig_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(deep=True)
    s.db.name = name
    asyncio.run(recreate_database(name))
    try:
        migrate(s.db)
        first = asyncio.run(_tables(s.db.owner().dsn()))
        assert {
            "orgs",
            "users",
            "role_bindings",
            "vehicles",
            "drivers",
            "terminals",
            "geofences",
            "positions",
            "positions_default",
            "latest_positions",
            "audit_log",
        } <= first
        migrate(s.db, "base")
        assert asyncio.run(_tables(s.db.owner().dsn())) <= {"alembic_version", "spatial_ref_sys"}
        migrate(s.db)
        assert asyncio.run(_tables(s.db.owner().dsn())) == first
    finally:
        asyncio.run(drop_database(name))
