"""Partition creation runs with the owner's rights, so the runtime role needs no DDL.

Revision ID: 0011_audit_roles
Revises: 0010_ingest_broker_refusals
Create Date: 2026-12-03

The ingest creates the coming days' position partitions (daily, `telematics/store.py`) but
connects as the runtime role, which may not CREATE or ALTER anything. The function becomes
SECURITY DEFINER — it runs as its owner, the role that ran the migrations — with a fixed
search_path (so a caller's temporary schema cannot shadow `positions`), schema-qualified
names, and a bounded `days` argument. EXECUTE is revoked from PUBLIC here and granted to the
runtime role by `fleet.dbroles.grant_runtime` after each migration.
"""

from migrations.helpers import run_script

revision = "0011_audit_roles"
down_revision = "0010_ingest_broker_refusals"
branch_labels = None
depends_on = None

_BODY = r"""
DECLARE
    d       date;
    lo      timestamptz;
    hi      timestamptz;
    tbl     text;
    created integer := 0;
BEGIN
    IF from_day IS NULL OR days IS NULL OR days < 0 OR days > 400 THEN
        RAISE EXCEPTION 'fleet_ensure_position_partitions: days must be 0..400, got %', days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        tbl := 'positions_' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('public.' || tbl) IS NOT NULL;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE public.%I (LIKE public.positions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', tbl);
        EXECUTE format('ALTER TABLE public.%I ADD PRIMARY KEY (vehicle_id, ts)', tbl);
        EXECUTE format(
            'WITH moved AS (DELETE FROM public.positions_default WHERE ts >= %L AND ts < %L RETURNING *) '
            'INSERT INTO public.%I SELECT * FROM moved', lo, hi, tbl);
        EXECUTE format('ALTER TABLE public.positions ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                       tbl, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
"""

UPGRADE = f"""
CREATE OR REPLACE FUNCTION fleet_ensure_position_partitions(from_day date, days integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $fn${_BODY}$fn$;
REVOKE ALL ON FUNCTION fleet_ensure_position_partitions(date, integer) FROM PUBLIC;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION fleet_ensure_position_partitions(from_day date, days integer)
RETURNS integer LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    d       date;
    lo      timestamptz;
    hi      timestamptz;
    tbl     text;
    created integer := 0;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        tbl := 'positions_' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(tbl) IS NOT NULL;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE positions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', tbl);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (vehicle_id, ts)', tbl);
        EXECUTE format(
            'WITH moved AS (DELETE FROM positions_default WHERE ts >= %L AND ts < %L RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved', lo, hi, tbl);
        EXECUTE format('ALTER TABLE positions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       tbl, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;
ALTER FUNCTION fleet_ensure_position_partitions(date, integer) RESET search_path;
GRANT EXECUTE ON FUNCTION fleet_ensure_position_partitions(date, integer) TO PUBLIC;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
