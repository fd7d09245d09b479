"""The approval levels have one definition (`dispatch.approvals.levels`): the database's CHECK,
the front end's type and the escalation order follow it (issue 10 item 5)."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.approvals.levels import LEVEL_KINDS, LEVEL_NAMES, LEVELS, kind_decides, level_above
from fleet.config import ROOT


async def test_the_database_check_lists_the_levels(session: AsyncSession) -> None:
    checks = (
        await session.scalars(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'approval_steps'::regclass AND contype = 'c'"
            )
        )
    ).all()
    on_level = [c for c in checks if "level" in c]
    assert len(on_level) == 1, checks
    assert tuple(re.findall(r"'(\w+)'::text", on_level[0])) == LEVELS


def test_the_front_end_type_lists_the_levels() -> None:
    src = (ROOT / "web" / "frontend" / "src" / "api.ts").read_text(encoding="utf-8")
    found = re.search(r"export type ApprovalLevel = ([^;]+);", src)
    assert found is not None
    assert tuple(re.findall(r'"(\w+)"', found.group(1))) == LEVELS


def test_every_level_has_its_deciders_and_name() -> None:
    assert tuple(LEVEL_KINDS) == LEVELS == tuple(LEVEL_NAMES)
    assert kind_decides("county", "city") and not kind_decides("city", "county")


def test_an_overdue_step_climbs_one_level_and_stops_at_the_region() -> None:
    assert [level_above(lv) for lv in LEVELS] == ["county", "city", "region", "region"]
