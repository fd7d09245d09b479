"""Security baseline (issue 11): login failures and lockout, password history and expiry,
server-side sessions.

Revision ID: 0016_auth_baseline
Revises: 0015_jt808_gateway
Create Date: 2026-12-03

`login_failures` is keyed by the username as typed, known or not, so an unknown name locks
exactly like a known one (the lockout is no oracle of which accounts exist). Existing users
keep their passwords (`must_change_password` false, `password_changed_at` now): only new
initial, demo and administrator-set passwords must be changed at first login.
"""

from migrations.helpers import run_script

revision = "0016_auth_baseline"
down_revision = "0015_jt808_gateway"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE login_failures (
    username        text PRIMARY KEY CHECK (length(username) <= 64),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until    timestamptz,
    last_failed_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE users
    ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
    ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE password_history (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash   text NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_password_history_user ON password_history (user_id, set_at DESC);

CREATE TABLE auth_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    ended_reason    text CHECK (length(ended_reason) <= 40),
    refresh_hash    bytea NOT NULL UNIQUE,
    csrf_hash       bytea NOT NULL,
    source          text CHECK (length(source) <= 64),
    user_agent      text CHECK (length(user_agent) <= 300)
);
CREATE INDEX ix_auth_sessions_user_open ON auth_sessions (user_id) WHERE ended_at IS NULL;
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS auth_sessions;
DROP TABLE IF EXISTS password_history;
ALTER TABLE users DROP COLUMN IF EXISTS password_changed_at,
    DROP COLUMN IF EXISTS must_change_password;
DROP TABLE IF EXISTS login_failures;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
