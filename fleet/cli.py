"""The `fleet` command: database, seed, API, demo and the packages' own subcommands.

The CLI is a composition root like the web app: subcommands import their package lazily,
so `fleet --help` stays fast and packages never import the CLI.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from fleet.audit_cli import audit_app
from fleet.config import ROOT, DbSettings, get_settings

app = typer.Typer(help="Fleet 公务用车管理平台: dispatch and telematics.", no_args_is_help=True)
db_app = typer.Typer(help="Databases, migrations and partitions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")  # fleet/audit_cli.py


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


# ---- database ---------------------------------------------------------------------------


async def _create_database(name: str) -> bool:
    db = get_settings().db.owner()
    conn = await asyncpg.connect(db.dsn(name="postgres"))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    db = get_settings().db.owner()
    conn = await asyncpg.connect(db.dsn(name="postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


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
    if asyncio.run(_create_database(name)):
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


async def _load_boundaries(conn: asyncpg.Connection) -> None:
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
            await _load_boundaries(conn)
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
    asyncio.run(_drop_database(name))
    retired = retire(settings.audit, name)
    if retired is not None:
        _echo(f"the old chain's checkpoints are kept in {retired}")
    db_init(name)


# ---- seed ---------------------------------------------------------------------------------


@app.command()
def seed(
    vehicles: Annotated[int, typer.Option(min=0, max=200_000, help="fleet size")] = 26_638,
    rng_seed: Annotated[
        int, typer.Option("--seed", help="random seed (same seed, same region)")
    ] = 42,
    if_empty: Annotated[bool, typer.Option(help="do nothing if already seeded")] = False,
) -> None:
    """Seed the region: real divisions, units, vehicles, drivers, terminals, demo users."""
    from dispatch.seed import SeedConfig, is_seeded
    from dispatch.seed import seed as run_seed
    from fleet import boundaries

    settings = get_settings()
    cfg = SeedConfig(
        vehicles=vehicles,
        seed=rng_seed,
        demo_password=settings.seed.demo_password.get_secret_value() or None,
        terminal_key=settings.seed.terminal_key.get_secret_value(),
    )

    async def go() -> None:
        # The owner seeds (bulk loads, sequence resets); the runtime role could not.
        conn = await asyncpg.connect(
            settings.db.owner().dsn(), server_settings={"application_name": "cli"}
        )
        try:
            existing = await is_seeded(conn)
            if existing:
                if if_empty:
                    # Seeded before the seed loaded borders: load them now.
                    if not await boundaries.loaded(conn):
                        _echo(f"already seeded ({existing} vehicles); loading the borders")
                        await _load_boundaries(conn)
                    else:
                        _echo(f"already seeded ({existing} vehicles); nothing to do")
                    return
                _echo(f"already seeded ({existing} vehicles); use `fleet db reset --yes` first")
                raise typer.Exit(1)
            t0 = time.perf_counter()
            async with conn.transaction():
                report = await run_seed(
                    conn,
                    cfg,
                    progress=lambda m: _echo(f"seed [{time.perf_counter() - t0:5.1f}s] {m}"),
                )
            _echo(
                f"seeded in {report.seconds:.1f}s: {report.cities} cities, {report.counties} "
                f"counties ({report.boundaries} drawn borders), {report.units} units, "
                f"{report.vehicles} vehicles, {report.drivers} drivers, {report.terminals} "
                f"terminals, {report.users} demo users"
            )
        finally:
            await conn.close()

    asyncio.run(go())


# ---- audit -------------------------------------------------------------------------------


# ---- API and demo ----------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option(min=1, max=16)] = 1,
) -> None:
    """Run the HTTP API (and the consoles it serves)."""
    import uvicorn

    from fleet.logging import configure

    configure()  # uvicorn's access log included: no token, ticket or password in any line

    api = get_settings().api
    uvicorn.run(
        "web.main:app",
        host=host or api.host,
        port=port or api.port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
    )


# Processes `fleet demo` runs next to the API: (name, argv). Packages append theirs.
DEMO_PROCESSES: list[tuple[str, list[str]]] = [("audit-anchor", ["audit", "anchor"])]


@app.command()
def demo(
    vehicles: Annotated[int, typer.Option(min=1, max=200_000)] = 26_638,
    simulated: Annotated[
        int, typer.Option(min=0, max=200_000, help="terminals to simulate")
    ] = 2_000,
) -> None:
    """Seed if needed, start the API and the live pipeline, print the console URL and logins."""
    settings = get_settings()
    seed(vehicles=vehicles, rng_seed=42, if_empty=True)
    fleet_bin = str(Path(sys.executable).with_name("fleet"))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = {**os.environ, "FLEET_DEMO_SIMULATED": str(simulated)}
    for name, argv in [("api", ["serve"]), *DEMO_PROCESSES]:
        procs.append((name, subprocess.Popen([fleet_bin, *argv], env=env)))
    url = f"http://{settings.api.host}:{settings.api.port}"
    # A secret is never written to a log: the password is shown to a person at a terminal,
    # not to a file the output is redirected to.
    pw_shown = (
        settings.seed.demo_password.get_secret_value()
        if sys.stdout.isatty()
        else "(not shown: output is not a terminal)"
    )
    from dispatch.seed import DEMO_USERS

    lines = [
        "",
        "Fleet 公务用车管理平台 is running",
        f"  console:   {url}/",
        f"  API docs:  {url}/api/docs",
        f"  password for every demo login: {pw_shown}   (from .env, FLEET_SEED__DEMO_PASSWORD)",
        "  demo logins:",
        *[f"    {u:<22} {role:<10} {display}" for u, display, role, _ in DEMO_USERS],
        "  Ctrl-C stops everything.",
        "",
    ]
    time.sleep(2)
    typer.echo("\n".join(lines))
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            for name, p in procs:
                if p.poll() is not None:
                    _echo(f"{name} exited with {p.returncode}; stopping the demo")
                    stop = True
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.terminate()
        for _, p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# ---- optimizer --------------------------------------------------------------------------


@app.command()
def solve(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="instance file")],
    fmt: Annotated[str, typer.Option("--format", help="lilim or solomon")] = "lilim",
    time_limit: Annotated[float, typer.Option(min=0.1, max=3600)] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON result")] = False,
    seed_: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Solve a Li & Lim PDPTW or Solomon VRPTW instance with the optimizer."""
    if fmt not in ("lilim", "solomon"):
        raise typer.BadParameter("must be lilim or solomon", param_hint="--format")
    from optimizer.cli import solve_file

    raise typer.Exit(solve_file(str(file), fmt, time_limit, as_json, seed_))


# ---- packages' own subcommands ----------------------------------------------------------

for _module in ("telematics.cli", "dispatch.cli"):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module).register(app)
