"""Geofence exit (驶出允许区域): outside every allowed_area geofence that applies."""

from __future__ import annotations

from typing import Any

from telematics.rules.base import EpisodeRule, RulePoint
from telematics.rules.thresholds import DeriveSettings


class GeofenceExit(EpisodeRule):
    kind = "geofence_exit"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.geofence_exit_min_s, cfg.geofence_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        if p.inside_allowed is not False:
            return None
        return {"_allowed_area_ids": p.allowed_ids}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        dur = ep["last"] - ep["start"]
        ids = ep["info"].get("_allowed_area_ids", [])
        return (
            self.kind,
            f"驶出允许区域 left the allowed area for {dur:.0f} s",
            {"allowed_area_geofence_ids": ids, "min_duration_s": self.min_s},
        )
