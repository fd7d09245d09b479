"""Dispatch commands: approval escalation, and the periodic dispatch worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

approvals_app = typer.Typer(
    help="Approval chains: escalation of overdue steps.", no_args_is_help=True
)


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


async def run_worker(interval_s: float, once: bool, lookback_min: float) -> None:
    """Each round: escalate overdue approvals, send due-date reminders, run trip-aware rules."""
    from dispatch import notify
    from dispatch.approvals.service import escalate_overdue
    from dispatch.costs.service import remind_due
    from dispatch.supervision import run_checks
    from fleet.config import get_settings
    from fleet.db import make_engine, make_sessionmaker, unit_of_work
    from fleet.logging import configure, get_logger

    configure()
    log = get_logger("dispatch.worker")
    engine = make_engine(get_settings().db, application_name="dispatch-worker")
    factory = make_sessionmaker(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    last = datetime.now(UTC) - timedelta(minutes=lookback_min)
    try:
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
            await notify.flush_pending()
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    from dispatch.optimize import worker as optimizer_worker
    from fleet import cli

    optimizer_worker.register(app)

    app.add_typer(approvals_app, name="approvals")

    @app.command("dispatch-worker")
    def dispatch_worker(
        interval: Annotated[
            float, typer.Option(min=5, max=3600, help="seconds between rounds")
        ] = 60,
        once: Annotated[bool, typer.Option("--once", help="run one round and exit")] = False,
        lookback: Annotated[
            float, typer.Option(min=1, max=1440, help="minutes of positions re-checked each round")
        ] = 10,
    ) -> None:
        """Periodic dispatch jobs: approval escalation, insurance/inspection reminders, and
        trip-aware alerts (private use, overtime, destination deviation)."""
        asyncio.run(run_worker(interval, once, lookback))

    if ("dispatch-worker", ["dispatch-worker"]) not in cli.DEMO_PROCESSES:
        cli.DEMO_PROCESSES.append(("dispatch-worker", ["dispatch-worker"]))
