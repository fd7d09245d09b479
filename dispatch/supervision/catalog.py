"""Every trip-aware supervision rule, in one list, and the round that runs them.

These rules need both trips and stored positions, so they live on the side that knows trips
(the rules on positions alone are in ``telematics.rules.catalog``). Each reads real
`positions` rows over a time window, writes `alerts` rows with evidence an auditor can open on
the map (deduplicated by `dedup_key`), and announces each new alert on the live bus after
commit. Adding a rule touches its own file, its test and ``RULES``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision import deviation, overtime, private_use
from dispatch.supervision.base import CheckReport, Rules
from fleet.logging import get_logger

log = get_logger("dispatch.supervision")

Detector = Callable[
    [AsyncSession, datetime, datetime, datetime, Rules, CheckReport], Awaitable[None]
]
"""(session, since, until, now, rules, report): one rule over [since, until) at ``now``."""

RULES: tuple[Detector, ...] = (private_use.detect, overtime.detect, deviation.detect)


async def run_checks(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    *,
    now: datetime | None = None,
    rules: Rules | None = None,
) -> CheckReport:
    """Run every trip-aware rule over positions and trips in [since, until)."""
    rules = rules or Rules()
    now = now or datetime.now(UTC)
    report = CheckReport()
    for detect in RULES:
        await detect(session, since, until, now, rules, report)
    log.info(
        "supervision.checked",
        since=since.isoformat(),
        until=until.isoformat(),
        private_use=report.private_use,
        trip_overtime=report.trip_overtime,
        destination_deviation=report.destination_deviation,
    )
    return report
