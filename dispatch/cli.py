"""Dispatch commands: the region seed, approval escalation, the periodic dispatch worker and
the optimizer worker; and what the package exports to the `fleet` command and demo."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import typer

from dispatch.optimize.worker import optimizer_worker
from fleet.cli import load_boundaries
from fleet.config import get_settings

approvals_app = typer.Typer(
    help="Approval chains: escalation of overdue steps.", no_args_is_help=True
)


notifications_app = typer.Typer(help="Stored notifications: retention.", no_args_is_help=True)


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


async def _escalate_once() -> int:
    from dispatch import notify
    from dispatch.approvals.service import escalate_overdue
    from fleet.config import get_settings
    from fleet.db import make_engine, make_sessionmaker, unit_of_work

    engine = make_engine(get_settings().db, application_name="cli")
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            n = await escalate_overdue(session)
        await notify.flush_pending()
        return n
    finally:
        await engine.dispose()


@approvals_app.command("escalate")
def escalate() -> None:
    """Escalate every overdue pending approval step one level up, once (the worker does it too)."""
    _echo(f"{asyncio.run(_escalate_once())} approval steps escalated")


async def _prune(read_days: int, unread_days: int, dry_run: bool) -> None:
    from dispatch.notifications.retention import prune
    from fleet.config import get_settings
    from fleet.db import make_engine, make_sessionmaker, unit_of_work

    engine = make_engine(get_settings().db, application_name="cli")
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            rep = await prune(
                session,
                datetime.now(UTC),
                read_days=read_days,
                unread_days=unread_days,
                dry_run=dry_run,
            )
    finally:
        await engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"read before {rep.read_before:%Y-%m-%d %H:%M} UTC, unread before"
        f" {rep.unread_before:%Y-%m-%d %H:%M} UTC"
    )
    if rep.by_kind:
        typer.echo(f"{'kind':<24} {'read':>10} {'unread':>10}")
        for kind, n in sorted(rep.by_kind.items()):
            typer.echo(f"{kind:<24} {n['read']:>10,} {n['unread']:>10,}")
        if rep.oldest is not None:
            typer.echo(f"oldest created {rep.oldest:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"{verb} {rep.total:,} notifications ({rep.read:,} read, {rep.unread:,} unread)")
    if not dry_run:
        typer.echo(f"audit entry {rep.audit_id}")


async def run_worker(interval_s: float, once: bool, lookback_min: float) -> None:
    """Each round: escalate overdue approvals, send due-date reminders, run trip-aware rules;
    once a day (in its own transaction) prune old stored notifications, and tell region admins
    when the holidays calendar is missing this year or (from 1 November) the next."""
    from dispatch import notify
    from dispatch.approvals.service import escalate_overdue
    from dispatch.costs.service import remind_due
    from dispatch.holiday_notice import coverage_calendar, notify_missing_years
    from dispatch.notifications.retention import RetentionSettings, prune_if_due
    from dispatch.supervision.catalog import run_checks
    from fleet.config import get_settings
    from fleet.db import make_engine, make_sessionmaker, unit_of_work
    from fleet.holidays.calendar import warn_missing
    from fleet.holidays.service import today_shanghai
    from fleet.logging import configure, get_logger

    configure()
    log = get_logger("dispatch.worker")
    engine = make_engine(get_settings().db, application_name="dispatch-worker")
    factory = make_sessionmaker(engine)
    retention = RetentionSettings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    last = datetime.now(UTC) - timedelta(minutes=lookback_min)
    try:
        try:  # start-up: say so when the official calendar is missing a year
            async with unit_of_work(factory) as session:
                cal = await coverage_calendar(session)
            warn_missing(cal, today_shanghai(), "dispatch-worker")
        except Exception as exc:
            log.error("worker.holidays_check_failed", error=repr(exc))
        while not stop.is_set():
            now = datetime.now(UTC)
            try:
                async with unit_of_work(factory) as session:
                    escalated = await escalate_overdue(session, now)
                    reminded = await remind_due(session)
                    # Overlap the previous window: late (buffered) pings still get checked.
                    report = await run_checks(
                        session, last - timedelta(minutes=lookback_min), now, now=now
                    )
                last = now
                log.info(
                    "worker.round",
                    escalated=escalated,
                    reminded=reminded,
                    alerts=len(report.alert_ids),
                )
            except Exception as exc:  # one failed round must not end the worker
                log.error("worker.round_failed", error=repr(exc))
            try:
                async with unit_of_work(factory) as session:
                    pruned = await prune_if_due(session, now, retention)
                if pruned is not None:
                    log.info(
                        "worker.notifications_pruned",
                        deleted=pruned.total,
                        read=pruned.read,
                        unread=pruned.unread,
                    )
            except Exception as exc:  # retention is housekeeping: retried next round
                log.error("worker.prune_failed", error=repr(exc))
            try:
                async with unit_of_work(factory) as session:
                    missing, told = await notify_missing_years(session, today_shanghai(now))
                if told:
                    log.warning("worker.holidays_missing_notified", years=missing, admins=told)
            except Exception as exc:  # advice, retried next round
                log.error("worker.holidays_notice_failed", error=repr(exc))
            await notify.flush_pending()
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    finally:
        await engine.dispose()


@notifications_app.command("prune")
def notifications_prune(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=1,
            max=36_500,
            metavar="DAYS",
            help="delete read notifications older than DAYS"
            " (default: FLEET_NOTIFICATIONS__READ_DAYS, 90)",
        ),
    ] = None,
    unread_older_than: Annotated[
        int | None,
        typer.Option(
            "--unread-older-than",
            min=1,
            max=36_500,
            metavar="DAYS",
            help="delete unread ones older than DAYS, never fewer than --older-than"
            " (default: FLEET_NOTIFICATIONS__UNREAD_DAYS, 365)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count what would be deleted, by kind")
    ] = False,
) -> None:
    """Delete stored notifications past their retention (by age); one audit entry per run.

    The dispatch worker runs this once a day with the configured ages.
    """
    from dispatch.notifications.retention import RetentionSettings

    cfg = RetentionSettings()
    asyncio.run(
        _prune(
            older_than if older_than is not None else cfg.read_days,
            unread_older_than if unread_older_than is not None else cfg.unread_days,
            dry_run,
        )
    )


def dispatch_worker(
    interval: Annotated[float, typer.Option(min=5, max=3600, help="seconds between rounds")] = 60,
    once: Annotated[bool, typer.Option("--once", help="run one round and exit")] = False,
    lookback: Annotated[
        float, typer.Option(min=1, max=1440, help="minutes of positions re-checked each round")
    ] = 10,
) -> None:
    """Periodic dispatch jobs: approval escalation, insurance/inspection reminders, and
    trip-aware alerts (private use, overtime, destination deviation); once a day, the
    notification retention (`fleet notifications prune`)."""
    asyncio.run(run_worker(interval, once, lookback))


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
                        await load_boundaries(conn)
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


# What the package adds to the `fleet` command (assembled in web/cli.py; `seed` too, which
# `fleet demo` runs first): commands, command groups, and the processes `fleet demo` runs
# next to the API, as (name, argv).
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("optimizer-worker", optimizer_worker),
    ("dispatch-worker", dispatch_worker),
)
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("approvals", approvals_app),
    ("notifications", notifications_app),
)
PROCESSES: tuple[tuple[str, list[str]], ...] = (
    ("optimizer-worker", ["optimizer-worker"]),
    ("dispatch-worker", ["dispatch-worker"]),
)
