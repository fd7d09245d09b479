"""The region's calendar day: dates a person means ("today", "bought on") are Asia/Shanghai
days, whatever zone the server runs in (UTC on our machines, so between 00:00 and 08:00 in
Shanghai `date.today()` is still yesterday)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def local_today(now: datetime | None = None) -> date:
    """Today's date in Asia/Shanghai (or that of `now`, an aware datetime)."""
    return (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).date()
