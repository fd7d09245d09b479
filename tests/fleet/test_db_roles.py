"""The runtime role: what every process (and this suite's app) connects as, and its limits.

Everything here runs as that role through the suite's own `conn` fixture: the application
cannot change or remove audit entries, cannot ALTER or DROP tables, cannot turn the
triggers off, and cannot create anything — but it can still do its work (partitions via the
SECURITY DEFINER function, TEMP staging tables for the ingest).
"""

from __future__ import annotations

import base64
import re

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet import audit
from fleet.config import Settings
from fleet.dbroles import scram_sha256_verifier
from tests.conftest import owner_dsn


async def test_the_app_connects_as_a_plain_login(conn: AsyncConnection, settings: Settings) -> None:
    row = (
        await conn.execute(
            text(
                "SELECT current_user, r.rolsuper, r.rolcreatedb, r.rolcreaterole,"
                " r.rolreplication, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user"
            )
        )
    ).one()
    assert tuple(row) == (settings.db.user, False, False, False, False, False)
    assert settings.db.user != settings.db.owner_user
    owns = (
        await conn.execute(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
            )
        )
    ).scalar_one()
    assert owns == 0  # owns nothing, so no ALTER/DROP/DISABLE TRIGGER on anything


FORBIDDEN = [
    ("UPDATE audit_log SET reason = 'x'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update", "must be owner"),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner"),
    ("DROP TRIGGER audit_log_chain ON audit_log", "must be owner"),
    ("SET session_replication_role = replica", "permission denied"),
    ("DROP TABLE audit_log", "must be owner"),
    ("DROP TABLE vehicles CASCADE", "must be owner"),
    ("ALTER TABLE vehicles ADD COLUMN x int", "must be owner"),
    ("TRUNCATE vehicles CASCADE", "permission denied"),
    ("CREATE TABLE public.intruder (id int)", "permission denied for schema public"),
    (
        "CREATE FUNCTION public.audit_entry_hash(bytea, bigint) RETURNS bytea"
        " LANGUAGE sql AS 'SELECT $1'",
        "permission denied for schema public",
    ),
    (
        "CREATE OR REPLACE FUNCTION audit_entry_hash(prev bytea, e audit_log) RETURNS bytea"
        " LANGUAGE sql IMMUTABLE AS 'SELECT e.hash'",
        "permission denied for schema public",
    ),
    (
        "CREATE TRIGGER t BEFORE INSERT ON audit_log FOR EACH ROW"
        " EXECUTE FUNCTION audit_log_refuse()",
        "permission denied",
    ),
    ("CREATE SCHEMA intruder", "permission denied for database"),
    ("UPDATE alembic_version SET version_num = 'x'", "permission denied"),
    ("DELETE FROM spatial_ref_sys", "permission denied"),
]


@pytest.mark.parametrize(("stmt", "error"), FORBIDDEN, ids=[s for s, _ in FORBIDDEN])
async def test_the_app_role_cannot(conn: AsyncConnection, stmt: str, error: str) -> None:
    with pytest.raises(DBAPIError, match=re.escape(error)):
        async with conn.begin_nested():
            await conn.execute(text(stmt))


async def test_the_app_role_appends_and_reads_the_log(conn: AsyncConnection) -> None:
    n = await audit.record(conn, audit.Actor("test"), "t.write", "thing", 1)
    seq, _ = await audit.head(conn)
    assert seq == n


async def test_partitions_come_from_the_definer_function(conn: AsyncConnection) -> None:
    """The ingest (runtime role) creates days it needs; the new table belongs to the owner,
    and default privileges let the runtime role write into it directly as well."""
    made = (
        await conn.execute(text("SELECT fleet_ensure_position_partitions('2019-02-03', 1)"))
    ).scalar_one()
    assert made == 1
    owner, can_insert, can_delete, can_truncate = (
        await conn.execute(
            text(
                "SELECT pg_get_userbyid(relowner),"
                " has_table_privilege('positions_20190203', 'INSERT'),"
                " has_table_privilege('positions_20190203', 'DELETE'),"
                " has_table_privilege('positions_20190203', 'TRUNCATE')"
                " FROM pg_class WHERE relname = 'positions_20190203'"
            )
        )
    ).one()
    assert owner != (await conn.execute(text("SELECT current_user"))).scalar_one()
    assert (can_insert, can_delete, can_truncate) == (True, True, False)
    with pytest.raises(DBAPIError, match=re.escape("days must be 0..400")):
        async with conn.begin_nested():
            await conn.execute(text("SELECT fleet_ensure_position_partitions('2019-01-01', 5000)"))


async def test_the_ingest_staging_table_is_allowed(conn: AsyncConnection) -> None:
    from telematics.ingest.store import _TEMP_TABLE

    await conn.execute(text(_TEMP_TABLE))
    await conn.execute(text("SELECT count(*) FROM ingest_batch"))


async def test_scram_verifier_is_the_one_postgres_computes(settings: Settings) -> None:
    """The verifier we send instead of a plain password equals the server's own."""
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        async with conn.transaction():
            await conn.execute("CREATE ROLE fleet_scram_probe NOLOGIN")
            await conn.execute("SET LOCAL password_encryption = 'scram-sha-256'")
            await conn.execute("ALTER ROLE fleet_scram_probe PASSWORD 'Abc-123_xyz'")
            stored = await conn.fetchval(
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'fleet_scram_probe'"
            )
            raise _Rollback(stored)
    except _Rollback as done:
        stored = done.args[0]
    finally:
        await conn.close()
    m = re.match(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$", stored)
    assert m is not None
    ours = scram_sha256_verifier(
        "Abc-123_xyz", salt=base64.b64decode(m.group(2)), iterations=int(m.group(1))
    )
    assert ours == stored
    with pytest.raises(ValueError, match="ASCII"):
        scram_sha256_verifier("pässwort")


class _Rollback(Exception):
    pass
