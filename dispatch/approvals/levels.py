"""The approval levels and who may decide a step of each: one definition, in Python and SQL.

A step names a level; an approver may decide it when bound (role `approver`, active) to an
org at or above the requesting unit whose kind is one of `LEVEL_KINDS[level]`. The database's
CHECK on `approval_steps.level` and the front end's `ApprovalLevel` repeat `LEVELS`; tests
hold them to it.
"""

from __future__ import annotations

from typing import Literal, get_args

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, cast, or_, select
from sqlalchemy.orm import aliased

from fleet.identity.models import Org, RoleBinding, User
from fleet.types import Ltree

Level = Literal["unit", "county", "city", "region"]
LEVELS: tuple[Level, ...] = get_args(Level)  # lowest first: an overdue step escalates up
# Org kinds whose approvers may act on a step of each level.
LEVEL_KINDS: dict[str, tuple[str, ...]] = {
    "unit": ("unit",),
    "county": ("county", "city", "region"),
    "city": ("city", "region"),
    "region": ("region",),
}
# How notifications name a level (zh-CN, as every notification text is).
LEVEL_NAMES = {"unit": "单位", "county": "县（区）平台", "city": "市级平台", "region": "自治区平台"}
# The org an approver is bound to, in `approvers` (callers may add its columns).
BINDING_ORG = aliased(Org, name="binding_org")


def level_above(level: str) -> str:
    """The level an overdue step escalates to (the region's stays the region's)."""
    return LEVELS[min(LEVELS.index(level) + 1, len(LEVELS) - 1)]


def kind_decides(level: str, org_kind: str) -> bool:
    """Whether an approver bound to an org of `org_kind` may decide a step of `level`."""
    return org_kind in LEVEL_KINDS[level]


def approvers(
    unit_path: str | ColumnElement[str],
    level: str | SQLColumnExpression[str] | None,
    *,
    user_id: int | None = None,
) -> Select[int]:
    """Active approvers bound at or above the unit who may decide a step of `level` (None:
    any level); `level` and `unit_path` may be columns of an enclosing query (the inbox)."""
    org = BINDING_ORG
    path = cast(unit_path, Ltree()) if isinstance(unit_path, str) else unit_path
    stmt = (
        select(RoleBinding.user_id)
        .join(org, org.id == RoleBinding.org_id)
        .join(User, User.id == RoleBinding.user_id)
        .where(RoleBinding.role == "approver", User.active, org.path.op("@>")(path))
    )
    if isinstance(level, str):
        stmt = stmt.where(org.kind.in_(LEVEL_KINDS[level]))
    elif level is not None:
        stmt = stmt.where(
            or_(*(and_(level == lv, org.kind.in_(kinds)) for lv, kinds in LEVEL_KINDS.items()))
        )
    if user_id is not None:
        stmt = stmt.where(RoleBinding.user_id == user_id)
    return stmt
