"""usage_event_ensure_partition: tolerate a concurrent creator.

The advisory lock does not refresh the catalog snapshot, so a second creator that waited on it could
still miss the new partition and fail with duplicate_table; that error now means "already there"."""

from django.db import migrations

ENSURE_PARTITION = """
CREATE OR REPLACE FUNCTION usage_event_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    month_start timestamp := date_trunc('month', ts AT TIME ZONE 'UTC');
    part_name text := 'usage_event_y' || to_char(month_start, 'YYYY') || 'm' || to_char(month_start, 'MM');
BEGIN
    IF to_regclass(part_name) IS NOT NULL THEN
        RETURN part_name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('usage_event_partitions'));
    BEGIN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF usage_event FOR VALUES FROM (%L) TO (%L)',
            part_name,
            to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00'
        );
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;  -- created by a concurrent caller
    END;
    RETURN part_name;
END
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunSQL(ENSURE_PARTITION, reverse_sql=migrations.RunSQL.noop)]
