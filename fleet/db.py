"""Engine factory, unit of work, and creating or dropping whole databases.

Engines are made at start-up, never at import time. The create / drop helpers are the one
way the CLI, the test fixtures and the benchmarks make and remove databases (as the owner).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fleet.config import DbSettings, get_settings


def make_engine(db: DbSettings, *, application_name: str, name: str | None = None) -> AsyncEngine:
    return create_async_engine(
        db.url(name=name),
        pool_size=db.pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The boundary's transaction: commit on success, roll back on error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def _admin(db: DbSettings | None, *statements: str) -> None:
    """Run statements on the maintenance database as the owner (CREATE / DROP DATABASE)."""
    conn = await asyncpg.connect((db or get_settings().db).owner().dsn(name="postgres"))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def database_exists(
    name: str, db: DbSettings | None = None, *, marker: str | None = None
) -> bool:
    """Whether the database exists (and, with `marker`, holds that table: built to the end)."""
    owner = (db or get_settings().db).owner()
    conn = await asyncpg.connect(owner.dsn(name="postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
    finally:
        await conn.close()
    if marker is None:
        return True
    conn = await asyncpg.connect(owner.dsn(name=name))
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", marker))
    finally:
        await conn.close()


async def create_database(name: str, db: DbSettings | None = None) -> bool:
    """Create the database unless it exists; whether it was created."""
    if await database_exists(name, db):
        return False
    await _admin(db, f'CREATE DATABASE "{name}"')
    return True


async def drop_database(name: str, db: DbSettings | None = None) -> None:
    """Drop the database if it exists, ending its sessions."""
    await _admin(db, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def recreate_database(
    name: str, db: DbSettings | None = None, *, template: str | None = None
) -> None:
    """Drop the database if it exists and create it empty (or as a copy of `template`)."""
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(
        db, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"{copy}'
    )
