"""derive_backlog: positions the derive worker's received_at cursor cannot see on its own.

Revision ID: 0008_derive_backlog
Revises: 0007_positions_ts_brin
Create Date: 2026-11-26

The derive worker reads new positions by a `received_at` watermark that trails the clock by
`settle_s` (15 s). A batch the ingest commits later than that — retried through a database
outage, say — carries `received_at` values the cursor has already passed, and buffered pings
older than the worker's `lookback_h` fall below the partition floor it reads. Both were
silently left underived (no trips, mileage or alerts for those points). The ingest now
queues such rows here, per vehicle and earliest `ts`, in the batch's own transaction; the
derive worker takes the queue each cycle (DELETE … RETURNING, in its transaction) and
re-derives those vehicles from the segment before `from_ts`. Rows are few and short-lived.
"""

from migrations.helpers import run_script

revision = "0008_derive_backlog"
down_revision = "0007_positions_ts_brin"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE IF NOT EXISTS derive_backlog (
    vehicle_id bigint      NOT NULL,
    from_ts    timestamptz NOT NULL,
    reason     text        NOT NULL CHECK (reason IN ('late_commit', 'old_ping')),
    queued_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE derive_backlog IS
    'positions stored outside the derive cursor''s view; consumed by the derive worker';
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS derive_backlog;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
