"""Usage and provisioning standards: rows the region edits, never code."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, ForeignKey, Numeric, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

TZ = DateTime(timezone=True)


class UsageStandard(Base):
    __tablename__ = "usage_standards"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The level the rule belongs to (NULL: region-wide); lower levels only narrow.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    nature: Mapped[str | None] = mapped_column(Text)
    min_passengers: Mapped[int] = mapped_column(SmallInteger)
    max_passengers: Mapped[int | None] = mapped_column(SmallInteger)
    body_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    active: Mapped[bool] = mapped_column(server_default="true")
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())


class ProvisioningStandard(Base):
    __tablename__ = "provisioning_standards"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    category: Mapped[str] = mapped_column(Text)
    body_type: Mapped[str | None] = mapped_column(Text)
    max_price_cny: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    max_engine_l: Mapped[Decimal | None] = mapped_column(Numeric(3, 1))
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())
