"""The ingestion lookup may only join by nested loops over index probes.

Its generic plan is made once per connection, on the first batch; on a fresh database that is an
empty `usage_event_key`, and the planner then hashed the whole (tiny) key table to join the batch's
transaction ids against it — a plan whose cost grew with every stored event (`bench/ingest.py
--fresh --growth`: 9,263 events/s for the first million, 5,771 for the second, two backends at 100 %
CPU in the lookup). With hash and merge joins off (sequential scans already are), every generic plan
probes the indexes once per id, whatever the statistics were when it was made: the same run stays at
42–45k events/s to 10 M. (Planning each call instead fixed the growth too, but cost single events
~0.4 ms each: 653 against 937 events/s.)"""

from django.db import migrations

SIGNATURE = "usage_ingest_lookup(jsonb, jsonb, jsonb, jsonb, jsonb)"


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_ingest_functions_jsonb")]

    operations = [
        migrations.RunSQL(f"ALTER FUNCTION {SIGNATURE} SET enable_hashjoin = off; "
                          f"ALTER FUNCTION {SIGNATURE} SET enable_mergejoin = off",
                          reverse_sql=f"ALTER FUNCTION {SIGNATURE} RESET enable_hashjoin; "
                                      f"ALTER FUNCTION {SIGNATURE} RESET enable_mergejoin"),
    ]
