"""Vehicles and drivers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, ForeignKey, Numeric, SmallInteger, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

CATEGORIES = ("courier", "emergency", "law_enforcement", "special", "pool")
BODY_TYPES = ("sedan", "suv", "mpv", "minibus", "bus")
ENERGIES = ("ice", "bev", "phev")
STATUSES = ("in_service", "under_repair", "sealed", "awaiting_disposal", "scrapped")
POOLS = ("none", "county", "city")
LICENCE_CLASSES = ("A1", "A2", "A3", "B1", "B2", "C1", "C2")


class Vehicle(Base):
    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plate: Mapped[str] = mapped_column(Text, unique=True)
    vin: Mapped[str] = mapped_column(Text, unique=True)
    category: Mapped[str] = mapped_column(Text)
    body_type: Mapped[str] = mapped_column(Text)
    seats: Mapped[int] = mapped_column(SmallInteger)
    energy: Mapped[str] = mapped_column(Text)
    nev_range_km: Mapped[int | None] = mapped_column()
    engine_l: Mapped[Decimal | None] = mapped_column(Numeric(3, 1))
    price_cny: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    purchase_date: Mapped[date] = mapped_column()
    unit_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    depot: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    status: Mapped[str] = mapped_column(Text, server_default="in_service")
    shared_pool: Mapped[str] = mapped_column(Text, server_default="none")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Driver(Base):
    __tablename__ = "drivers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(Text)
    licence_class: Mapped[str] = mapped_column(Text)
    licence_no: Mapped[str] = mapped_column(Text, unique=True)
    licence_expires: Mapped[date | None] = mapped_column()
    phone: Mapped[str | None] = mapped_column(Text)
    unit_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    status: Mapped[str] = mapped_column(Text, server_default="active")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
