"""The kernel's part of the `fleet` command: `fleet db ...` (create, migrate, partitions,
borders, reset) and `fleet audit ...`, and the database helpers the tests and benches share.

The kernel imports nothing above it: web/cli.py assembles the whole command from what each
package exports (``GROUPS``, ``COMMANDS``, ``PROCESSES``); subcommands import what they run
lazily, so `fleet --help` stays fast.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
import typer

from fleet.audit_cli import audit_app
from fleet.config import ROOT, DbSettings, get_settings
from fleet.db import create_database, drop_database

db_app = typer.Typer(help="Databases, migrations and partitions.", no_args_is_help=True)


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


# ---- database ---------------------------------------------------------------------------


def migrate(db: DbSettings, target: str = "heads") -> None:
    """Run Alembic to `target` on `db`'s database as the owner role, then (re)provision the
    runtime role: it exists, and holds its grants on whatever the migrations made."""
    from alembic import command
    from alembic.config import Config

    from fleet.dbroles import provision

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", db.owner().url().replace("%", "%%"))
    if target == "base":
        command.downgrade(cfg, "base")
        return
    command.upgrade(cfg, target)
    asyncio.run(provision(db))


async def ensure_partitions(dsn: str, days_back: int = 7, days_ahead: int = 14) -> int:
    """Day partitions from `days_back` before today to `days_ahead` after (UTC), in calls of
    at most 400 days (the function's bound)."""
    conn = await asyncpg.connect(dsn)
    try:
        made, offset, left = 0, -days_back, days_back + days_ahead + 1
        while left > 0:
            n = min(left, 400)
            made += int(
                await conn.fetchval(
                    "SELECT fleet_ensure_position_partitions("
                    "(now() AT TIME ZONE 'UTC')::date + $1::int, $2::int)",
                    offset,
                    n,
                )
            )
            offset, left = offset + n, left - n
        return made
    finally:
        await conn.close()


@db_app.command("init")
def db_init(
    name: Annotated[str | None, typer.Option(help="database name (default: settings)")] = None,
) -> None:
    """Create the database if missing, run all migrations, create position partitions."""
    settings = get_settings()
    name = name or settings.db.name
    if asyncio.run(create_database(name)):
        _echo(f"created database {name}")
    db = settings.db.model_copy(update={"name": name})
    migrate(db)
    made = asyncio.run(ensure_partitions(db.owner().dsn()))
    _echo(f"database {name}: migrations at head, {made} new position partitions")


@db_app.command("partitions")
def db_partitions(
    days_back: Annotated[int, typer.Option(min=0, max=3650)] = 7,
    days_ahead: Annotated[int, typer.Option(min=0, max=365)] = 14,
) -> None:
    """Create daily position partitions around today (run daily; idempotent)."""
    made = asyncio.run(ensure_partitions(get_settings().db.owner().dsn(), days_back, days_ahead))
    _echo(f"{made} new position partitions")


async def load_boundaries(conn: asyncpg.Connection) -> None:
    """Load the drawn city/county borders (fleet.boundaries) in one audited transaction."""
    from fleet import audit, boundaries

    async with conn.transaction():
        rep = await boundaries.load(conn)
        await audit.record(
            conn,
            audit.Actor("cli"),
            "boundaries.load",
            "region",
            "boundaries",
            data={
                "source": rep.source,
                "cities": rep.cities,
                "counties": rep.counties,
                "unmatched_features": rep.unmatched_features,
                "orgs_without_boundary": rep.orgs_without_boundary,
            },
        )
    _echo(f"boundaries: {rep.cities} cities, {rep.counties} counties from {rep.source}")
    for what, items in (
        ("source features matching no org", rep.unmatched_features),
        (
            "cities/counties without a boundary (nearest seat decides there)",
            rep.orgs_without_boundary,
        ),
    ):
        if items:
            _echo(f"  {what}: {', '.join(items)}")


@db_app.command("boundaries")
def db_boundaries() -> None:
    """(Re)load the city and county borders the map draws, matched to the seeded orgs.

    `fleet seed` does this itself; run it after upgrading an already seeded database."""

    async def go() -> None:
        conn = await asyncpg.connect(
            get_settings().db.dsn(), server_settings={"application_name": "cli"}
        )
        try:
            if not await conn.fetchval("SELECT count(*) FROM orgs WHERE kind = 'county'"):
                _echo("no counties in the database: run `fleet seed` first")
                raise typer.Exit(1)
            await load_boundaries(conn)
        finally:
            await conn.close()

    asyncio.run(go())


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", help="really drop everything")] = False,
) -> None:
    """Drop and recreate the database (all data, including the audit log, is lost)."""
    if not yes:
        _echo("refusing without --yes: this drops the whole database")
        raise typer.Exit(2)
    from fleet.anchors import retire

    settings = get_settings()
    name = settings.db.name
    asyncio.run(drop_database(name))
    retired = retire(settings.audit, name)
    if retired is not None:
        _echo(f"the old chain's checkpoints are kept in {retired}")
    db_init(name)


# What the kernel adds to the `fleet` command (assembled in web/cli.py): its command groups,
# and the processes `fleet demo` runs next to the API, as (name, argv).
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("db", db_app),
    ("audit", audit_app),  # fleet/audit_cli.py
)
PROCESSES: tuple[tuple[str, list[str]], ...] = (("audit-anchor", ["audit", "anchor"]),)
