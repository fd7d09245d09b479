"""A booking of one vehicle and one driver for a trip; the driver's execution data."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, ForeignKey, Numeric, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

TZ = DateTime(timezone=True)

# Bookings that hold the vehicle and the driver (the exclusion constraints' predicate).
ACTIVE = ("assigned", "accepted", "departed")


class Assignment(Base):
    __tablename__ = "trip_assignments"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trip_requests.id", ondelete="CASCADE"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    driver_id: Mapped[int] = mapped_column(ForeignKey("drivers.id"))
    dispatcher_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime] = mapped_column(TZ)
    ends_at: Mapped[datetime] = mapped_column(TZ)
    state: Mapped[str] = mapped_column(Text, server_default="assigned")
    source: Mapped[str] = mapped_column(Text, server_default="manual")
    decline_reason: Mapped[str | None] = mapped_column(Text)
    departed_at: Mapped[datetime | None] = mapped_column(TZ)
    arrived_at: Mapped[datetime | None] = mapped_column(TZ)
    completed_at: Mapped[datetime | None] = mapped_column(TZ)
    odometer_start_km: Mapped[float | None] = mapped_column()
    odometer_end_km: Mapped[float | None] = mapped_column()
    tolls_cny: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    parking_cny: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    energy_cny: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())
