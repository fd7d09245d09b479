"""Organisations, users and role bindings."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, ForeignKey, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fleet.models import Base
from fleet.types import Ltree

ORG_KINDS = ("region", "city", "county", "unit", "system")
ROLES = ("requester", "approver", "dispatcher", "driver", "auditor", "admin")


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    kind: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Ltree)
    system_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    system_path: Mapped[str | None] = mapped_column(Ltree)
    location: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DivisionBoundary(Base):
    """A city's or county's drawn border (`fleet.boundaries`), one row per org."""

    __tablename__ = "division_boundaries"

    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    source_code: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    locale: Mapped[str] = mapped_column(Text, server_default="zh-CN")
    active: Mapped[bool] = mapped_column(server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    bindings: Mapped[list[RoleBinding]] = relationship(
        back_populates="user", lazy="selectin", cascade="all, delete-orphan"
    )


class RoleBinding(Base):
    __tablename__ = "role_bindings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))

    user: Mapped[User] = relationship(back_populates="bindings")
    org: Mapped[Org] = relationship(lazy="joined")
