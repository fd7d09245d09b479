"""Thresholds of derived state and supervision rules (env ``FLEET_DERIVE__<NAME>``).

Kept in telematics rather than the shared Settings: only the derive worker, its rules and
their tests read them. One env section for the worker and the rules it runs; it lives beside
the rules (which read it) so that ``telematics.derive`` sits above ``telematics.rules`` and
never the other way round. Every default is the value an operator would start with; what
"moving" means is not set here but in ``telematics.rules.moving`` (shared with dispatch).
"""

from __future__ import annotations

from datetime import time

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.config import ROOT
from telematics.rules.moving import MOVING_MIN_SPEED_KMH


class SpeedLimits(BaseModel):
    """Overspeed limits by body type (km/h); a speed_limit geofence may lower them."""

    sedan: float = 120.0
    suv: float = 120.0
    mpv: float = 110.0
    minibus: float = 100.0
    bus: float = 100.0

    def for_body(self, body_type: str) -> float:
        return float(getattr(self, body_type, self.sedan))


class DeriveSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEET_DERIVE__",
        env_nested_delimiter="__",
        env_file=str(ROOT / ".env"),
        extra="ignore",
    )

    # worker
    cycle_s: float = Field(10.0, gt=0, description="seconds between cycles")
    settle_s: float = Field(
        15.0, ge=0, description="rows younger than this (received_at) wait for the next cycle"
    )
    window_s: float = Field(120.0, gt=0, description="max received_at span read per cycle")
    lookback_h: float = Field(
        48.0, gt=0, description="ts floor of a cycle's read (partition pruning)"
    )
    # status and segmentation
    offline_after_s: float = Field(600.0, gt=0)
    motion_speed_kmh: float = Field(MOVING_MIN_SPEED_KMH, ge=0)
    stop_min_s: float = Field(180.0, gt=0, description="standing still this long ends a trip")
    trip_min_distance_m: float = Field(200.0, ge=0, description="displacement that starts a trip")
    # rules
    speed_limits: SpeedLimits = Field(default_factory=SpeedLimits)
    overspeed_min_s: float = Field(30.0, ge=0)
    overspeed_grace_s: float = Field(15.0, ge=0)
    geofence_exit_min_s: float = Field(60.0, ge=0)
    geofence_grace_s: float = Field(60.0, ge=0)
    off_hours_min_s: float = Field(120.0, ge=0)
    off_hours_grace_s: float = Field(300.0, ge=0)
    work_start: time = time(7, 0)
    work_end: time = time(19, 0)
    depot_check_at: time = time(23, 0)
    depot_radius_m: float = Field(300.0, gt=0)
    offline_in_service_min: float = Field(30.0, gt=0)
    evidence_max_points: int = Field(200, ge=2, le=5000)
    timezone: str = "Asia/Shanghai"


def get_derive_settings() -> DeriveSettings:
    return DeriveSettings()
