"""Movement off hours (非工作时间用车) or on a non-working day (节假日用车)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fleet.holidays import calendar
from telematics.rules.base import EpisodeRule, RulePoint
from telematics.rules.thresholds import DeriveSettings
from telematics.rules.working_time import off_hours


class OffHours(EpisodeRule):
    """Movement outside working hours; on a public holiday or weekend the kind is
    ``holiday_movement`` (adjusted working days count as working days)."""

    kind = "off_hours_movement"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.off_hours_min_s, cfg.off_hours_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        if not p.moving:
            return None
        off, reason = off_hours(p.ts, self.cfg)
        if not off:
            return None
        return {"reason": reason, "_reason": reason}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        reason = str(ep["info"].get("_reason", ""))
        kind = "holiday_movement" if reason != "after_hours" else "off_hours_movement"
        dur = ep["last"] - ep["start"]
        year = datetime.fromtimestamp(ep["start"], UTC).astimezone(ZoneInfo(self.cfg.timezone)).year
        what = (
            "节假日用车 movement on a non-working day"
            if kind == "holiday_movement"
            else ("非工作时间用车 movement outside working hours")
        )
        return (
            kind,
            f"{what} ({reason}) for {dur:.0f} s",
            {
                "reason": reason,
                "working_hours": f"{self.cfg.work_start:%H:%M}-{self.cfg.work_end:%H:%M}",
                "timezone": self.cfg.timezone,
                "calendar": calendar.current().describe(year),
                "min_duration_s": self.min_s,
            },
        )
