"""Closed day partitions of `positions` re-ordered by (vehicle_id, ts) with pg_repack.

Revision ID: 0006_position_repack
Revises: 0005_notifications
Create Date: 2026-11-26

A vehicle-day read from a day stored in arrival order touches one page per ping (pings of
26,000 vehicles interleave); the same day stored in (vehicle_id, ts) order touches a handful.
`fleet positions repack` (and the `fleet positions maintain` worker) rewrite closed days
online with pg_repack — a maintained extension that holds only brief locks, so the ingest
keeps writing late pings into the day while it runs. This table remembers what was done.

The extension is created only where the server has it (setup installs Debian's
postgresql-N-repack); without it the job reports that and does nothing.
"""

from migrations.helpers import run_script

revision = "0006_position_repack"
down_revision = "0005_notifications"
branch_labels = None
depends_on = None

UPGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_repack') THEN
        CREATE EXTENSION IF NOT EXISTS pg_repack;
    END IF;
END
$$;

CREATE TABLE position_partition_repacks (
    partition    text PRIMARY KEY,
    day          date NOT NULL,
    rows_before  bigint NOT NULL,
    rows_after   bigint NOT NULL,
    seconds      real NOT NULL CHECK (seconds >= 0),
    repacked_at  timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS position_partition_repacks;
DROP EXTENSION IF EXISTS pg_repack;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
