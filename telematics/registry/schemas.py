"""Terminal and geofence edge schemas (geofences are GeoJSON Features)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from fleet.schemas import Id, Out, Strict

Purpose = Literal["allowed_area", "depot", "restricted", "speed_limit"]


# A JT/T 808 SIM number: the 12-digit BCD of 2013 or up to 20 digits in 2019 (leading zeros
# are padding: 013800138000 and 00000000013800138000 are the same terminal).
PHONE_PATTERN = r"^[0-9]{1,20}$"


def _phone_ok(phone: str) -> str:
    if phone.strip("0") == "":
        raise ValueError("a SIM number needs a non-zero digit")
    return phone


class TerminalIn(Strict):
    protocol: Literal["mqtt-json", "jt808"] = "mqtt-json"
    phone: str | None = Field(
        default=None,
        pattern=PHONE_PATTERN,
        validate_default=True,
        description="jt808 only (required there): the SIM number the terminal puts in every "
        "frame header, 12 digits (2013) or up to 20 (2019)",
    )
    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{4,32}$",
        validate_default=True,
        description="the MQTT username; optional for a jt808 terminal (default JT + phone)",
    )
    vehicle_id: Id | None = None
    model: str | None = Field(default=None, max_length=100)
    secret: str | None = Field(
        default=None,
        min_length=12,
        max_length=128,
        description="leave empty to have one generated (returned once); a jt808 terminal may "
        "also authenticate (0x0102) with it instead of a registration code",
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None, info: ValidationInfo) -> str | None:
        jt808 = info.data.get("protocol") == "jt808"
        if v is None:
            if jt808:
                raise ValueError("phone is required for a jt808 terminal")
            return None
        if not jt808:
            raise ValueError("phone is only for jt808 terminals")
        return _phone_ok(v)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            return v
        phone = info.data.get("phone")
        if info.data.get("protocol") == "jt808":
            return f"JT{phone.lstrip('0')}" if phone else None
        raise ValueError("id is required for an mqtt-json terminal")


class TerminalPatch(Strict):
    vehicle_id: Id | None = None
    model: str | None = Field(default=None, max_length=100)
    active: bool | None = None
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN, description="jt808 only")
    rotate_secret: bool = Field(
        default=False,
        description="issue a new secret (returned once); for a jt808 terminal this also "
        "revokes its registration, so it must register (0x0100) again",
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else _phone_ok(v)


class TerminalOut(Out):
    id: str
    vehicle_id: int | None
    model: str | None
    protocol: str
    active: bool
    phone: str | None = None
    registered_at: datetime | None = None
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
