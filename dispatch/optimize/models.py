"""One optimizer run (auto-assign proposal): a job row the worker claims and fills in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import REAL, BigInteger, DateTime, ForeignKey, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.models import Base

TZ = DateTime(timezone=True)
# queued -> running -> done | failed; done -> accepted | discarded.
STATES = ("queued", "running", "done", "failed", "accepted", "discarded")


class OptimizerRun(Base):
    __tablename__ = "optimizer_runs"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    window_start: Mapped[datetime] = mapped_column(TZ)
    window_end: Mapped[datetime] = mapped_column(TZ)
    time_limit_s: Mapped[float] = mapped_column(REAL)
    seed: Mapped[int] = mapped_column(server_default="0")
    state: Mapped[str] = mapped_column(Text, server_default="queued")
    problem: Mapped[dict[str, Any]] = mapped_column(JSONB)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    worker: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(TZ)
    heartbeat_at: Mapped[datetime | None] = mapped_column(TZ)
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now(), onupdate=func.now())
