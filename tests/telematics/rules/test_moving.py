"""What "moving" means: the Python form and the SQL form agree, row for row, on the database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from telematics.rules.moving import MOVING_MIN_SPEED_KMH, is_moving, moving_sql
from telematics.rules.thresholds import DeriveSettings

SPEEDS = (None, 0.0, 4.9, 5.0, 5.1, 9.9, 10.0, 12.0, 120.0)
ACCS = (None, True, False)


async def test_python_and_sql_forms_agree(conn: AsyncConnection) -> None:
    cases = [(s, a) for s in SPEEDS for a in ACCS]
    values = ", ".join(
        f"({i}, CAST(:s{i} AS real), CAST(:a{i} AS boolean))" for i in range(len(cases))
    )
    params: dict[str, object] = {"moving_kmh": MOVING_MIN_SPEED_KMH}
    for i, (s, a) in enumerate(cases):
        params[f"s{i}"], params[f"a{i}"] = s, a
    rows = await conn.execute(
        text(f"SELECT p.i FROM (VALUES {values}) AS p(i, speed_kmh, acc) WHERE {moving_sql('p')}"),
        params,
    )
    in_sql = {r[0] for r in rows}
    in_python = {i for i, (s, a) in enumerate(cases) if is_moving(s, a)}
    assert in_sql == in_python
    # the boundary itself moves; just under it, or with the ignition off, does not
    assert is_moving(MOVING_MIN_SPEED_KMH, None)
    assert not is_moving(MOVING_MIN_SPEED_KMH - 0.1, True)
    assert not is_moving(120.0, False)


def test_the_derive_worker_reads_the_shared_threshold() -> None:
    cfg = DeriveSettings(_env_file=None)  # type: ignore[call-arg]
    assert cfg.motion_speed_kmh == MOVING_MIN_SPEED_KMH
