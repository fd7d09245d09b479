"""Terminals and geofences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, ForeignKey, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base


class Terminal(Base):
    __tablename__ = "terminals"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    vehicle_id: Mapped[int | None] = mapped_column(ForeignKey("vehicles.id"), unique=True)
    model: Mapped[str | None] = mapped_column(Text)
    protocol: Mapped[str] = mapped_column(Text, server_default="mqtt-json")
    active: Mapped[bool] = mapped_column(server_default="true")
    # JT/T 808 only: the SIM number, the hash of the authentication code issued at
    # registration (0x8100), and what the terminal said about itself when it registered.
    phone: Mapped[str | None] = mapped_column(Text)
    auth_code_hash: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime | None] = mapped_column()
    registration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Geofence(Base):
    __tablename__ = "geofences"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    speed_limit_kmh: Mapped[int | None] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
