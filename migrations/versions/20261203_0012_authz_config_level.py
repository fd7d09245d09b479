"""Standards belong to an org: usage and provisioning standards carry `org_id`.

Revision ID: 0012_authz_config_level
Revises: 0011_audit_roles
Create Date: 2026-12-03

Configuration has a level (issue 18 item 2). Approval chains already carried their org;
standards now do too. NULL is the region-wide rule (as for approval chains, whose NULL org
is the region default): the rows the migrations seed, and every row so far. A lower level
(city, county, unit) may add stricter rules of its own; every level's rules apply together,
so a lower level can narrow what the region allows, never widen it (docs/dispatch.md).
Provisioning caps are unique per (org, category, body type) instead of (category, body type).
The downgrade drops the lower levels' rows (the old schema cannot hold them).
"""

from migrations.helpers import run_script

revision = "0012_authz_config_level"
down_revision = "0011_audit_roles"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE usage_standards ADD COLUMN org_id bigint REFERENCES orgs(id);
ALTER TABLE provisioning_standards ADD COLUMN org_id bigint REFERENCES orgs(id);
ALTER TABLE provisioning_standards
    DROP CONSTRAINT provisioning_standards_category_body_type_key;
ALTER TABLE provisioning_standards
    ADD CONSTRAINT provisioning_standards_org_category_body_type_key
    UNIQUE NULLS NOT DISTINCT (org_id, category, body_type);
"""

DOWNGRADE = r"""
DELETE FROM usage_standards WHERE org_id IS NOT NULL;
DELETE FROM provisioning_standards WHERE org_id IS NOT NULL;
ALTER TABLE provisioning_standards
    DROP CONSTRAINT provisioning_standards_org_category_body_type_key;
ALTER TABLE provisioning_standards
    ADD CONSTRAINT provisioning_standards_category_body_type_key
    UNIQUE NULLS NOT DISTINCT (category, body_type);
ALTER TABLE provisioning_standards DROP COLUMN org_id;
ALTER TABLE usage_standards DROP COLUMN org_id;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
