"""broker_refusals: what the broker refused, per client and reason, read from its log.

Revision ID: 0010_ingest_broker_refusals
Revises: 0009_notifications_created_brin
Create Date: 2026-12-03

A terminal whose buffered upload is larger than the broker's max_packet_size is
disconnected by Mosquitto and retries the same upload forever, with no trace on the
platform (issue 9, item 3). `fleet broker monitor` reads the broker's log and counts each
refusal here, per client id (a terminal logs in with its terminal id as client id) and
reason, with a sliding window (`window_start`, `window_count`) from which a terminal that
keeps failing raises a `terminal_refused` alert. `broker_log_cursor` is how far the log was
read, committed with the counts so each line counts once.
"""

from migrations.helpers import run_script

revision = "0010_ingest_broker_refusals"
down_revision = "0009_notifications_created_brin"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE IF NOT EXISTS broker_refusals (
    client_id    text        NOT NULL,
    reason       text        NOT NULL CHECK (reason ~ '^[a-z_]{3,40}$'),
    count        bigint      NOT NULL CHECK (count > 0),
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    window_start timestamptz NOT NULL,
    window_count bigint      NOT NULL CHECK (window_count > 0),
    detail       text,
    PRIMARY KEY (client_id, reason)
);
COMMENT ON TABLE broker_refusals IS
    'refusals read from the broker log by `fleet broker monitor`, per client id and reason';

CREATE TABLE IF NOT EXISTS broker_log_cursor (
    path       text        PRIMARY KEY,
    inode      bigint      NOT NULL,
    "offset"   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS broker_log_cursor;
DROP TABLE IF EXISTS broker_refusals;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
