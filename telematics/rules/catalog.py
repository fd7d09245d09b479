"""Every supervision rule on positions, in one list (as Traccar registers its event handlers).

Adding a rule touches its own file, its test and this list. Two kinds run in the derive cycle:

- point rules (``POINT_RULES``): per vehicle, over the cycle's points in ts order, with their
  open episodes carried in the vehicle's derive state (see ``telematics.rules.base``);
- fleet checks (``FLEET_CHECKS``): one SQL statement each over ``latest_positions`` and
  ``vehicles``, run once per cycle after the points, in this order.

Terminal alarms (the terminal's own alarm bits, SOS first) are not rules of the platform but
the terminal's, turned into alerts by the ingest as the pings arrive
(``telematics.ingest.alarms``). Rules that need trips as well as positions (private use,
overtime, destination deviation) live on the side that knows trips, in
``dispatch.supervision.catalog``; what "moving" means is shared from
``telematics.rules.moving``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from telematics.rules import not_at_depot, terminal_offline
from telematics.rules.base import AlertDraft, EpisodeRule, RulePoint
from telematics.rules.geofence_exit import GeofenceExit
from telematics.rules.off_hours import OffHours
from telematics.rules.overspeed import Overspeed
from telematics.rules.thresholds import DeriveSettings

FleetCheck = Callable[
    [asyncpg.Connection, datetime, DeriveSettings, tuple[int, int]],
    Awaitable[list[asyncpg.Record]],
]

POINT_RULES: tuple[type[EpisodeRule], ...] = (Overspeed, GeofenceExit, OffHours)
FLEET_CHECKS: tuple[FleetCheck, ...] = (terminal_offline.check, not_at_depot.check)


def point_rules(cfg: DeriveSettings) -> tuple[EpisodeRule, ...]:
    return tuple(rule(cfg) for rule in POINT_RULES)


def run_point_rules(
    rules: tuple[EpisodeRule, ...],
    vehicle_id: int,
    episodes: dict[str, Any],
    points: list[RulePoint],
) -> list[AlertDraft]:
    """Feed every rule; updates ``episodes`` (rule kind -> open episode) in place."""
    out: list[AlertDraft] = []
    for rule in rules:
        ep, drafts = rule.feed(vehicle_id, episodes.get(rule.kind), points)
        if ep is None:
            episodes.pop(rule.kind, None)
        else:
            episodes[rule.kind] = ep
        out.extend(drafts)
    return out
