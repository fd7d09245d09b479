"""Terminal and geofence edge schemas (geofences are GeoJSON Features)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fleet.fields import TEXT, WHOLE, Text, limits
from fleet.schemas import Id, Out, Strict

Purpose = Literal["allowed_area", "depot", "restricted", "speed_limit"]
SpeedLimit = Annotated[int, Field(ge=5, le=200), WHOLE]


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
    model: Annotated[str, Field(max_length=100), TEXT] | None = None
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
    model: Annotated[str, Field(max_length=100), TEXT] | None = None
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


Lon = Annotated[float, Field(ge=-180, le=180, strict=True)]
Lat = Annotated[float, Field(ge=-90, le=90, strict=True)]
# A JSON array arrives as a list: the pair is taken from a list, its numbers stay strict.
Position = Annotated[tuple[Lon, Lat], Field(strict=False)]
"""[lon, lat] in WGS-84 degrees (RFC 7946 order; no altitude)."""
Ring = Annotated[list[Position], Field(min_length=4, description="closed: last = first")]
VERTICES = (
    "at most 20,000 vertices in all (`limits.geofence_max_vertices`); rings closed and "
    "not self-intersecting"
)


def _vertex_cap(rings: list[list[Position]]) -> None:
    count, most = sum(len(r) for r in rings), limits().geofence_max_vertices
    if count > most:
        raise ValueError(f"a geofence has at most {most} vertices; this one has {count}")


class PolygonGeometry(Strict):
    model_config = ConfigDict(json_schema_extra={"description": VERTICES})

    type: Literal["Polygon"]
    coordinates: list[Ring] = Field(min_length=1, description="outer ring, then holes")

    @model_validator(mode="after")
    def _cap(self) -> Self:
        _vertex_cap(self.coordinates)
        return self


class MultiPolygonGeometry(Strict):
    model_config = ConfigDict(json_schema_extra={"description": VERTICES})

    type: Literal["MultiPolygon"]
    coordinates: list[Annotated[list[Ring], Field(min_length=1)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _cap(self) -> Self:
        _vertex_cap([ring for polygon in self.coordinates for ring in polygon])
        return self


Geometry = Annotated[PolygonGeometry | MultiPolygonGeometry, Field(discriminator="type")]


class GeofenceProps(Strict):
    """A geofence's properties; `speed_limit_kmh` is required when the purpose is speed_limit."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"purpose": {"not": {"const": "speed_limit"}}}},
                {
                    "required": ["speed_limit_kmh"],
                    "properties": {"speed_limit_kmh": {"type": "integer"}},
                },
            ]
        }
    )

    name: Text = Field(min_length=1, max_length=200)
    purpose: Purpose
    org_id: Id
    speed_limit_kmh: SpeedLimit | None = None
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
    name: Annotated[str, Field(min_length=1, max_length=200), TEXT] | None = None
    speed_limit_kmh: SpeedLimit | None = None
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
