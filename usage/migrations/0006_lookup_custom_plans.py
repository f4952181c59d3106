"""The ingestion lookup plans each call with the statistics of the moment (custom plans).

With a generic plan, the plan was made once per connection, on the first batch; on a fresh
database that is an empty `usage_event_key`, and that plan's cost grew with every stored event
(`bench/ingest.py --fresh --growth`: 9,263 events/s for the first million, 5,771 for the second,
two backends at 100 % CPU in the lookup). Planned per call (a few hundred microseconds per batch),
the same run went to 44,804 events/s from the third million on. Sequential scans stay off, so a
custom plan made while a table is small still probes indexes. The insert keeps its generic plan (it
writes by key and did not slow down)."""

from django.db import migrations

SIGNATURE = "usage_ingest_lookup(jsonb, jsonb, jsonb, jsonb, jsonb)"


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_ingest_functions_jsonb")]

    operations = [
        migrations.RunSQL(f"ALTER FUNCTION {SIGNATURE} SET plan_cache_mode = force_custom_plan",
                          reverse_sql=f"ALTER FUNCTION {SIGNATURE} SET plan_cache_mode = force_generic_plan"),
    ]
