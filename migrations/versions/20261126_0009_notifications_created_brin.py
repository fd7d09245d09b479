"""BRIN index on notifications.created_at: the daily retention prune reads only old rows.

Revision ID: 0009_notifications_created_brin
Revises: 0008_derive_backlog
Create Date: 2026-11-26

`fleet notifications prune` (and the dispatch worker, once a day) deletes notifications by
age. Without an index on `created_at` each run scans the whole table — at region scale some
hundred thousand notifications a day, kept 90–365 days, i.e. tens of millions of rows. Rows
are appended in time order, so a BRIN index (a few kB) narrows the prune to the old pages.
"""

from migrations.helpers import run_script

revision = "0009_notifications_created_brin"
down_revision = "0008_derive_backlog"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE INDEX IF NOT EXISTS ix_notifications_created_brin ON notifications
    USING brin (created_at) WITH (autosummarize = on);
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS ix_notifications_created_brin;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
