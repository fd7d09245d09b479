"""The trip request (用车申请): one row from draft to settled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, DateTime, ForeignKey, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

TZ = DateTime(timezone=True)


class TripRequest(Base):
    __tablename__ = "trip_requests"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    serving_unit_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    passengers: Mapped[int] = mapped_column(SmallInteger)
    passenger_names: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    passenger_user_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    nature: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    origin: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    origin_address: Mapped[str] = mapped_column(Text)
    destination: Mapped[WKBElement] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    destination_address: Mapped[str] = mapped_column(Text)
    destination_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    stops: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    departure_at: Mapped[datetime] = mapped_column(TZ)
    return_at: Mapped[datetime] = mapped_column(TZ)
    round_trip: Mapped[bool] = mapped_column(server_default="false")
    urgency: Mapped[str] = mapped_column(Text, server_default="normal")
    special_needs: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    allowed_body_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    planned_km: Mapped[float] = mapped_column()
    state: Mapped[str] = mapped_column(Text, server_default="draft")
    chain_id: Mapped[int | None] = mapped_column(ForeignKey("approval_chains.id"))
    dispatch_first: Mapped[bool] = mapped_column(server_default="false")
    approval_status: Mapped[str] = mapped_column(Text, server_default="none")
    approval_round: Mapped[int] = mapped_column(server_default="0")
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())
