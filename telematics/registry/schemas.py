"""Terminal and geofence edge schemas (geofences are GeoJSON Features)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from fleet.schemas import Id, Out, Strict

Purpose = Literal["allowed_area", "depot", "restricted", "speed_limit"]


class TerminalIn(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{4,32}$", description="the MQTT username")
    vehicle_id: Id | None = None
    model: str | None = Field(default=None, max_length=100)
    protocol: Literal["mqtt-json", "jt808"] = "mqtt-json"
    secret: str | None = Field(
        default=None,
        min_length=12,
        max_length=128,
        description="leave empty to have one generated (returned once)",
    )


class TerminalPatch(Strict):
    vehicle_id: Id | None = None
    model: str | None = Field(default=None, max_length=100)
    active: bool | None = None
    rotate_secret: bool = False


class TerminalOut(Out):
    id: str
    vehicle_id: int | None
    model: str | None
    protocol: str
    active: bool
    created_at: datetime
    updated_at: datetime


class TerminalWithSecret(TerminalOut):
    secret: str | None = Field(default=None, description="shown only when created or rotated")


class Geometry(Strict):
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]


class GeofenceProps(Strict):
    name: str = Field(min_length=1, max_length=200)
    purpose: Purpose
    org_id: Id
    speed_limit_kmh: int | None = Field(default=None, ge=5, le=200)
    active: bool = True

    @model_validator(mode="after")
    def _limit(self) -> Self:
        if self.purpose == "speed_limit" and self.speed_limit_kmh is None:
            raise ValueError("speed_limit_kmh is required when purpose is speed_limit")
        return self


class GeofenceIn(Strict):
    """A GeoJSON Feature (RFC 7946): WGS-84 [lon, lat] polygon plus properties."""

    type: Literal["Feature"]
    geometry: Geometry
    properties: GeofenceProps


class GeofencePatchProps(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    speed_limit_kmh: int | None = Field(default=None, ge=5, le=200)
    active: bool | None = None


class GeofencePatch(Strict):
    type: Literal["Feature"] = "Feature"
    geometry: Geometry | None = None
    properties: GeofencePatchProps = Field(default_factory=GeofencePatchProps)


class GeofenceOut(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any]
    properties: dict[str, Any]


class GeofenceCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[GeofenceOut]
    total: int
    limit: int
    offset: int
