"""Approval chains (configuration) and approval steps (one per approver level per round)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

TZ = DateTime(timezone=True)


class ApprovalChain(Base):
    __tablename__ = "approval_chains"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    kind: Mapped[str] = mapped_column(Text)
    dispatch_first: Mapped[bool] = mapped_column(server_default="false")
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(server_default="true")
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())


class ApprovalStep(Base):
    __tablename__ = "approval_steps"
    # Fetch server-set columns (created_at, updated_at) on flush: no lazy loads later.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trip_requests.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column()
    seq: Mapped[int] = mapped_column(SmallInteger)
    level: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="waiting")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    timeout_hours: Mapped[float] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column(TZ)
    escalations: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    acted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acted_at: Mapped[datetime | None] = mapped_column(TZ)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
