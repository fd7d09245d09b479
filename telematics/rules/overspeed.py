"""Overspeed (超速): above the body type's limit, or a stricter speed_limit geofence's."""

from __future__ import annotations

from typing import Any

from telematics.rules.base import EpisodeRule, RulePoint
from telematics.rules.thresholds import DeriveSettings


class Overspeed(EpisodeRule):
    kind = "overspeed"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.overspeed_min_s, cfg.overspeed_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        limit = self.cfg.speed_limits.for_body(p.body_type)
        source = f"body_type:{p.body_type}"
        if p.zone_limit_kmh is not None and p.zone_limit_kmh < limit:
            limit, source = p.zone_limit_kmh, "geofence"
        if p.speed_kmh is None or p.speed_kmh <= limit:
            return None
        return {"limit_kmh": limit, "_limit_source": source, "_limit_kmh": limit}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        vmax = max((pt[3] or 0.0) for pt in ep["pts"])
        limit = ep["info"].get("_limit_kmh")
        dur = ep["last"] - ep["start"]
        msg = (
            f"超速 overspeed: up to {vmax:.0f} km/h over the {limit:.0f} km/h limit for {dur:.0f} s"
        )
        return (
            self.kind,
            msg,
            {
                "limit_kmh": limit,
                "limit_source": ep["info"].get("_limit_source"),
                "min_duration_s": self.min_s,
                "max_speed_kmh": vmax,
            },
        )
