"""City and county boundaries in PostGIS, so the server decides a point's county by containment.

Revision ID: 0013_chain_boundaries
Revises: 0012_authz_config_level
Create Date: 2026-12-03

The base map names the county under a click from drawn borders; the server took the county
whose seat is nearest, so a trip inside 青秀区 could be filed as cross-county (issue 9, item 9).
One row per city / county org: the same polygons the map draws (`fleet/data/`, generated from
the map's npm source by `web/frontend/scripts/build-boundaries.mjs`), loaded by `fleet seed` or
`fleet db boundaries`. The source's own code and name are kept: some divisions were renamed
since the source was drawn (横县 → 横州市) and matched to the org by name.
"""

from migrations.helpers import run_script

revision = "0013_chain_boundaries"
down_revision = "0012_authz_config_level"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE division_boundaries (
    org_id      bigint PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    source_code text NOT NULL CHECK (source_code ~ '^[0-9]{6}$'),
    source_name text NOT NULL CHECK (length(source_name) BETWEEN 1 AND 100),
    source      text NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_division_boundaries_geom ON division_boundaries USING gist (geom);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS division_boundaries;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
