"""Dispatch: trip requests, approvals, assignments, costs (owned by the dispatch work; placeholder).

Revision ID: 0003_dispatch
Revises: 0002_telematics
Create Date: 2026-11-26
"""

from migrations.helpers import run_script

revision = "0003_dispatch"
down_revision = "0002_telematics"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1;"
DOWNGRADE = "SELECT 1;"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
