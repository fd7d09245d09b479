"""Fixtures on the real PostgreSQL + PostGIS.

Session: a fresh test database migrated by Alembic (the migrations are what is tested) and
seeded with a small deterministic region. Per test: one connection, an outer transaction,
and a session that joins it through savepoints; everything is rolled back afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

os.environ.setdefault("FLEET_DB__NAME", "fleet_test")
# The suite drops and recreates its databases: never a demo's (an exported FLEET_DB__NAME=fleet
# left in a shell would otherwise be wiped).
if "test" not in os.environ["FLEET_DB__NAME"]:
    raise SystemExit(
        f"FLEET_DB__NAME={os.environ['FLEET_DB__NAME']!r} does not name a test database "
        "(the tests drop and recreate it); use e.g. fleet_test or fleet_test_<you>"
    )
# The live bus's channels are global to the Redis server: a run of its own, so tests neither
# hear a demo (or another test run) on the same Redis nor publish into it, even when the shell
# exported a demo's prefix. Processes the tests start inherit it.
if not os.environ.get("FLEET_REDIS__CHANNEL_PREFIX", "").startswith("fleet-test-"):
    os.environ["FLEET_REDIS__CHANNEL_PREFIX"] = f"fleet-test-{uuid.uuid4().hex[:8]}"
os.environ["FLEET_AUTH__SECRET"] = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
os.environ["FLEET_SEED__DEMO_PASSWORD"] = "test-password-1"
os.environ["FLEET_SEED__TERMINAL_KEY"] = "test-terminal-key"
# `bearer()` below signs tokens without a login, hence without a server-side session; the
# default refuses such tokens (tests/web/test_security.py proves it). Every request of the
# suite comes from 127.0.0.1: the per-source failure budget is raised for the run, and the
# tests of the throttle lower it for themselves.
os.environ["FLEET_AUTH__ACCEPT_SESSIONLESS_TOKENS"] = "true"
os.environ["FLEET_AUTH__SOURCE_FAILURES"] = "1000000"

from fleet.config import Settings, get_settings
from fleet.db import recreate_database

get_settings.cache_clear()

TEST_VEHICLES = 800
DEMO_PASSWORD = "test-password-1"


async def _seed(dsn: str) -> None:
    from dispatch.seed import SeedConfig, seed

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await seed(
                conn,
                SeedConfig(
                    vehicles=TEST_VEHICLES,
                    seed=7,
                    demo_password=DEMO_PASSWORD,
                    terminal_key="test-terminal-key",
                    # The suite logs in with the seeded password (tests/web/test_security.py
                    # covers the change at first login on users of its own).
                    must_change_password=False,
                ),
            )
    finally:
        await conn.close()


def prepare_database(name: str, *, seeded: bool = True) -> Settings:
    """A migrated (and seeded) database of the given name; returns settings pointing at it."""
    from fleet.cli import migrate

    settings = get_settings().model_copy(deep=True)
    settings.db.name = name
    asyncio.run(recreate_database(name))
    migrate(settings.db)  # as the owner; provisions the runtime role the tests then use
    if seeded:
        asyncio.run(_seed(settings.db.owner().dsn()))
    return settings


def owner_dsn(settings: Settings) -> str:
    """The owner role's DSN: for what a test does as an administrator (or attacker with DB
    superuser rights), never for what the application does."""
    return settings.db.owner().dsn()


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = prepare_database(get_settings().db.name)
    # The suite runs the application as the least-privileged runtime role, so a missing
    # grant fails a test here rather than in production.
    assert s.db.user != s.db.owner_user, "tests must not run the app as the owner role"
    return s


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(settings.db.url(), pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        trans = await connection.begin()
        try:
            yield connection
        finally:
            await trans.rollback()


@pytest.fixture(scope="session")
async def owner_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(settings.db.owner().url(), pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
async def owner_conn(owner_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The owner role (here the cluster superuser) in a transaction rolled back afterwards:
    what an administrator — or an attacker holding DB superuser rights — can do."""
    async with owner_engine.connect() as connection:
        trans = await connection.begin()
        try:
            yield connection
        finally:
            await trans.rollback()


@pytest.fixture
async def session(conn: AsyncConnection) -> AsyncIterator[AsyncSession]:
    s = AsyncSession(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def client(session: AsyncSession, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from fleet.deps import get_session
    from web.app import create_app

    app = create_app(settings, manage_engine=False)

    async def _session() -> AsyncIterator[AsyncSession]:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    @asynccontextmanager
    async def _side() -> AsyncIterator[AsyncSession]:
        # Refusal audit entries: in production a transaction of their own; here a savepoint
        # of the test's transaction, written after the request's own savepoint rolled back.
        yield session
        await session.commit()

    app.dependency_overrides[get_session] = _session
    app.state.side_transaction = _side
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


Login = Callable[[str], Awaitable[dict[str, str]]]


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    """`await login("dispatcher.qingxiu")` -> Authorization header for that demo user.

    A user an administrator created in the test must change that password at the first
    login (issue 11): as the user would, the fixture changes it (its session goes on) and
    signs that user in with the new one from then on."""
    changed: dict[str, str] = {}

    async def _login(username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        password = changed.get(username, password)
        r = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        if r.json()["user"].get("password_change_required"):
            new = f"{password}-Changed-1"
            r = await client.post(
                "/api/v1/auth/password",
                json={"current_password": password, "new_password": new},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            changed[username] = new
        return headers

    return _login


async def make_user(
    session: AsyncSession,
    username: str,
    org_code: str,
    roles: tuple[tuple[str, str], ...] = (),
    *,
    active: bool = True,
) -> int:
    """A user of the org with that code, holding (role, org code) bindings; committed to the
    test's outer transaction. No usable password: tests take a token with `bearer`."""
    from sqlalchemy import text

    uid = await session.scalar(
        text(
            "INSERT INTO users (username, password_hash, display_name, org_id, active)"
            " SELECT :u, 'no-login', :u, id, :active FROM orgs WHERE code = :c RETURNING id"
        ),
        {"u": username, "c": org_code, "active": active},
    )
    assert uid is not None, org_code
    for role, code in roles:
        await session.execute(
            text(
                "INSERT INTO role_bindings (user_id, role, org_id)"
                " SELECT :uid, :role, id FROM orgs WHERE code = :c"
            ),
            {"uid": uid, "role": role, "c": code},
        )
    await session.commit()
    return int(uid)


def bearer(settings: Settings, user_id: int) -> dict[str, str]:
    """An Authorization header for the user (a real signed token, no password round)."""
    from fleet.identity.security import issue_token

    return {"Authorization": f"Bearer {issue_token(settings.auth, user_id).access_token}"}
