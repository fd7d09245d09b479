"""Holidays and adjusted working days (节假日与调休) as a table, seeded from chinese-calendar.

Revision ID: 0014_clock_holidays
Revises: 0013_chain_boundaries
Create Date: 2026-12-03

The package covers years up to its release (2026 for 1.11): from then on every holiday would
silently count as a working day. The table is what the rules read from now on; region admins
add the coming years (page, API or file import). `holidays_version` is advanced by a statement
trigger on every change (in the changing transaction), so a worker can tell with one single-row read whether to reload.
"""

from alembic import op
from sqlalchemy import Date, Text, column, table

from fleet.holidays.package import package_rows, package_version
from migrations.helpers import run_script

revision = "0014_clock_holidays"
down_revision = "0013_chain_boundaries"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE holidays (
    day         date PRIMARY KEY CHECK (day BETWEEN '2000-01-01' AND '2100-12-31'),
    kind        text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 40),
    note        text CHECK (length(note) <= 200),
    source      text NOT NULL DEFAULT 'manual' CHECK (source IN ('package', 'manual', 'import')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  bigint REFERENCES users(id) ON DELETE SET NULL,
    -- an adjusted working day (调休) is a Saturday or Sunday worked
    CONSTRAINT holidays_workday_on_weekend CHECK (kind = 'holiday' OR extract(isodow FROM day) >= 6)
);
COMMENT ON TABLE holidays IS
    'official calendar: public holidays (kind holiday) and adjusted working days (kind workday);'
    ' a year with no holiday rows is not covered';
-- one row: the table's change counter, bumped in the changing transaction (so a reader sees
-- the new number only with the new rows, and a rolled-back change leaves it as it was)
CREATE TABLE holidays_version (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO holidays_version DEFAULT VALUES;
CREATE FUNCTION holidays_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE holidays_version SET version = version + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER holidays_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON holidays
    FOR EACH STATEMENT EXECUTE FUNCTION holidays_touch();
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS holidays;
DROP FUNCTION IF EXISTS holidays_touch();
DROP TABLE IF EXISTS holidays_version;
"""


def upgrade() -> None:
    run_script(UPGRADE)
    rows = package_rows()
    holidays = table(
        "holidays",
        column("day", Date),
        column("kind", Text),
        column("name", Text),
        column("note", Text),
        column("source", Text),
    )
    note = f"chinese-calendar {package_version()}"
    op.bulk_insert(
        holidays,
        [
            {"day": r.day, "kind": r.kind, "name": r.name, "note": note, "source": "package"}
            for r in rows
        ],
    )


def downgrade() -> None:
    run_script(DOWNGRADE)
