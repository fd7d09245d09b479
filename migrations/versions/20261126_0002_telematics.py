"""Telematics: rejected pings, derived state (owned by the telematics work; placeholder).

Revision ID: 0002_telematics
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from migrations.helpers import run_script

revision = "0002_telematics"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1;"
DOWNGRADE = "SELECT 1;"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
