"""Database roles: the runtime login and what it may do (docs/operations.md, "Database roles").

Every long-running process connects as the runtime role (`FLEET_DB__USER`, `fleet_app`):
no superuser, no CREATE anywhere (only its own session's TEMP tables, which the ingest's
COPY staging needs), SELECT/INSERT/UPDATE/DELETE on the business tables, and on the
append-only tables (the audit log) INSERT and SELECT only. It owns nothing, so it can
neither ALTER nor DROP a table nor disable a trigger. Position partitions are created by
`fleet_ensure_position_partitions`, a SECURITY DEFINER function owned by the owner role.

`provision` runs after every migration (`fleet.cli.migrate`), as the owner: it creates the
role if missing, re-asserts its attributes and password, and grants on everything that
exists; default privileges cover tables the owner creates later (partitions, and any table
of a future migration run by other means). A future insert-only table goes in APPEND_ONLY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

import asyncpg

from fleet.config import DbSettings
from fleet.logging import get_logger

log = get_logger("fleet.dbroles")

# Tables whose rows are never changed or removed: the runtime role may INSERT and SELECT.
APPEND_ONLY = ("audit_log",)
# Tables (and PostGIS views) the runtime role only reads.
READ_ONLY = ("alembic_version", "spatial_ref_sys", "geometry_columns", "geography_columns")
# SECURITY DEFINER functions the runtime role may call (EXECUTE revoked from PUBLIC).
DEFINER_FUNCTIONS = ("fleet_ensure_position_partitions(date, integer)",)

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    """A role or database name as a quoted identifier; refuses anything unusual."""
    if not _ROLE_NAME.match(name) and not re.match(r"^[A-Za-z0-9_-]{1,63}$", name):
        raise ValueError(f"unsupported identifier {name!r}")
    return '"' + name + '"'


def scram_sha256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = 4096
) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802 / 7677).

    Computed here so the plain password never travels in an ALTER ROLE statement (which a
    server with statement logging would write to its log). ASCII only: the generated
    passwords are, and non-ASCII ones would need SASLprep.
    """
    if not password.isascii():
        raise ValueError("database passwords must be ASCII")
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


_ROLE_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


def _password_matches(stored: str | None, password: str) -> bool:
    """Whether a stored SCRAM verifier is that of `password` (same salt and iterations)."""
    if not password:
        return stored is None
    m = re.match(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$", stored or "")
    if m is None:
        return False
    salt = base64.b64decode(m.group(2))
    return hmac.compare_digest(
        stored or "", scram_sha256_verifier(password, salt=salt, iterations=int(m.group(1)))
    )


async def ensure_runtime_role(conn: asyncpg.Connection, db: DbSettings) -> bool:
    """Create the runtime login if missing, else re-assert its attributes; True if created.

    Roles are cluster-wide, shared by every database of the cluster (a demo, the test
    databases), so this runs serialised by an advisory lock in whichever database `conn` is
    on (callers use the `postgres` maintenance database) and changes the role only when it
    differs: two set-ups altering one role at once fail with "tuple concurrently updated".
    """
    role = db.user
    if not _ROLE_NAME.match(role):
        raise ValueError(f"runtime role name {role!r}: lower-case letters, digits and _ only")
    pw = db.password.get_secret_value()
    await conn.execute("SELECT pg_advisory_lock(hashtext('fleet.dbroles'))")
    try:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,"
            " rolcanlogin, rolinherit FROM pg_roles WHERE rolname = $1",
            role,
        )
        if row is None:
            await conn.execute(f"CREATE ROLE {_ident(role)} {_ROLE_ATTRS}")
        elif tuple(row) != (False, False, False, False, False, True, True):
            await conn.execute(f"ALTER ROLE {_ident(role)} {_ROLE_ATTRS}")
        try:
            stored = await conn.fetchval(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
            )
            same = _password_matches(stored, pw)
        except asyncpg.InsufficientPrivilegeError:  # an owner that is not a superuser
            same = False
        if row is None or not same:
            # An empty password leaves the role without one (trust/peer authentication).
            verifier = _literal(scram_sha256_verifier(pw)) if pw else "NULL"
            await conn.execute(f"ALTER ROLE {_ident(role)} PASSWORD {verifier}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('fleet.dbroles'))")
    return row is None


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


async def grant_runtime(conn: asyncpg.Connection, db: DbSettings) -> None:
    """Grant the runtime role what it needs in the connected database, and nothing more."""
    app, owner = _ident(db.user), _ident(db.owner_user)
    stmts = [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {_ident(db.name)} TO {app}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE CREATE ON SCHEMA public FROM {app}",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
        f" GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    ]
    for table in APPEND_ONLY:
        if await conn.fetchval("SELECT to_regclass($1)", f"public.{table}"):
            stmts.append(f"REVOKE UPDATE, DELETE ON public.{table} FROM {app}")
    for table in READ_ONLY:
        if await conn.fetchval("SELECT to_regclass($1)", f"public.{table}"):
            stmts.append(f"REVOKE INSERT, UPDATE, DELETE ON public.{table} FROM {app}")
    for fn in DEFINER_FUNCTIONS:
        if await conn.fetchval("SELECT to_regprocedure($1)", f"public.{fn}"):
            stmts.append(f"REVOKE ALL ON FUNCTION public.{fn} FROM PUBLIC")
            stmts.append(f"GRANT EXECUTE ON FUNCTION public.{fn} TO {app}")
    async with conn.transaction():
        for stmt in stmts:
            await conn.execute(stmt)


async def provision(db: DbSettings) -> None:
    """As the owner: the runtime role exists, has its password, and holds its grants.

    Nothing to do when both logins are the same role (a single-role set-up, not advised).
    """
    if db.user == db.owner_user:
        log.warning("db.single_role", role=db.user)
        return
    owner = db.owner()
    app_name = {"application_name": "migrate"}
    conn = await asyncpg.connect(owner.dsn(name="postgres"), server_settings=app_name)
    try:
        created = await ensure_runtime_role(conn, db)
    finally:
        await conn.close()
    conn = await asyncpg.connect(owner.dsn(), server_settings=app_name)
    try:
        await grant_runtime(conn, db)
    finally:
        await conn.close()
    log.info("db.runtime_role", role=db.user, created=created, database=db.name)
