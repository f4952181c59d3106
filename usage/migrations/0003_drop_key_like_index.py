"""The idempotency key is only ever matched by equality: drop the varchar_pattern_ops ("_like")
index Django adds beside a CharField primary key, one index less to write per event."""

from django.db import migrations

DROP_LIKE = """
DO $$
DECLARE idx text;
BEGIN
    FOR idx IN SELECT indexname FROM pg_indexes
               WHERE tablename = 'usage_event_key' AND indexname LIKE '%\\_like' ESCAPE '\\'
    LOOP
        EXECUTE format('DROP INDEX %I', idx);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_partition_function_race")]

    operations = [migrations.RunSQL(DROP_LIKE, reverse_sql=migrations.RunSQL.noop)]
