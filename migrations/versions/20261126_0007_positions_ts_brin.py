"""BRIN index on positions.ts: time-window scans read the window, not the whole day.

Revision ID: 0007_positions_ts_brin
Revises: 0006_position_repack
Create Date: 2026-11-26

The supervision checks (private use: movement with no approved trip, every few minutes)
select all vehicles' pings of a recent time window. The primary key (vehicle_id, ts) cannot
serve that, so each round sequentially scanned the whole current day partition — at region
scale up to ~230 M rows a round. Rows arrive in roughly time order, so a BRIN index on `ts`
(a few kB per partition) narrows the scan to the window's pages: measured on a 5 M-row
partition, 66,080 → 1,650 pages and 430 → 32 ms for a 10-minute window. `autosummarize`
keeps ranges summarised as they fill, so the index stays useful during the day.
"""

from migrations.helpers import run_script

revision = "0007_positions_ts_brin"
down_revision = "0006_position_repack"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE INDEX IF NOT EXISTS ix_positions_ts_brin ON positions
    USING brin (ts) WITH (pages_per_range = 32, autosummarize = on);
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS ix_positions_ts_brin;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
