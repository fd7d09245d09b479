"""Database-level guarantees: partitions, append-only audit log, hash chain."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet import audit


async def test_positions_are_partitioned_by_day_and_idempotent(conn: AsyncConnection) -> None:
    parts = (
        await conn.execute(
            text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'positions'::regclass")
        )
    ).scalar_one()
    assert parts >= 15  # default + the days around today
    ins = text(
        "INSERT INTO positions (vehicle_id, ts, terminal_id, geom) VALUES"
        " (1, now(), 'GX00000001', ST_SetSRID(ST_MakePoint(108.3, 22.8), 4326))"
        " ON CONFLICT DO NOTHING"
    )
    await conn.execute(ins)
    await conn.execute(ins)  # same (vehicle, ts) in the same transaction: one row
    n = (
        await conn.execute(text("SELECT count(*) FROM positions WHERE vehicle_id = 1"))
    ).scalar_one()
    assert n == 1
    where = (
        await conn.execute(
            text("SELECT tableoid::regclass::text FROM positions WHERE vehicle_id = 1")
        )
    ).scalar_one()
    assert where.startswith("positions_2")


async def test_far_ping_lands_in_default_and_moves_to_its_day(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            "INSERT INTO positions (vehicle_id, ts, terminal_id, geom) VALUES"
            " (2, '2020-03-04 05:06:07+00', 'GX00000002',"
            " ST_SetSRID(ST_MakePoint(108.3, 22.8), 4326))"
        )
    )
    part = "SELECT tableoid::regclass::text FROM positions WHERE vehicle_id = 2"
    assert (await conn.execute(text(part))).scalar_one() == "positions_default"
    made = (
        await conn.execute(text("SELECT fleet_ensure_position_partitions('2020-03-04', 1)"))
    ).scalar_one()
    assert made == 1
    assert (await conn.execute(text(part))).scalar_one() == "positions_20200304"


@pytest.mark.parametrize(
    "stmt",
    ["UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
async def test_audit_log_refuses_changes(owner_conn: AsyncConnection, stmt: str) -> None:
    # The owner holds UPDATE/DELETE/TRUNCATE (the runtime role does not: test_db_roles.py)
    # and is stopped by the triggers.
    await audit.record(owner_conn, audit.Actor("test"), "t.write", "thing", 1)
    with pytest.raises(DBAPIError, match="append-only"):
        async with owner_conn.begin_nested():
            await owner_conn.execute(text(stmt))


async def test_audit_chain_verifies_and_detects_tampering(owner_conn: AsyncConnection) -> None:
    conn = owner_conn
    for i in range(3):
        await audit.record(conn, audit.Actor("test"), "t.write", "thing", i, reason=f"r{i}")
    assert await audit.verify(conn) == []
    last = (await conn.execute(text("SELECT max(id) FROM audit_log"))).scalar_one()
    # A superuser who disables the guard and edits an entry is caught by the chain.
    await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
    await conn.execute(
        text("UPDATE audit_log SET reason = 'forged' WHERE id = :i"), {"i": last - 1}
    )
    breaks = await audit.verify(conn)
    assert [(b.id, b.problem) for b in breaks] == [(last - 1, "entry altered")]
    await conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": last - 1})
    breaks = await audit.verify(conn)
    assert (last, "gap before entry") in [(b.id, b.problem) for b in breaks]


async def test_verify_recomputes_hashes_outside_the_database(owner_conn: AsyncConnection) -> None:
    """Replacing the SQL hash function with one that returns the stored hash does not hide
    an edit: verify recomputes every hash in Python."""
    conn = owner_conn
    for i in range(3):
        await audit.record(conn, audit.Actor("test"), "t.write", "thing", i, reason=f"r{i}")
    last = (await conn.execute(text("SELECT max(id) FROM audit_log"))).scalar_one()
    await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
    await conn.execute(text("UPDATE audit_log SET reason = 'forged' WHERE id = :i"), {"i": last})
    await conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION audit_entry_hash(prev bytea, e audit_log) RETURNS bytea"
            " LANGUAGE sql IMMUTABLE AS $$ SELECT e.hash $$"
        )
    )
    in_sql = (
        await conn.execute(
            text("SELECT hash = audit_entry_hash(prev_hash, a) FROM audit_log a WHERE id = :i"),
            {"i": last},
        )
    ).scalar_one()
    assert in_sql  # the database now vouches for the forged entry …
    assert [(b.id, b.problem) for b in await audit.verify(conn)] == [(last, "entry altered")]
