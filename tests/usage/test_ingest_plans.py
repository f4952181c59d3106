"""The ingestion functions' planner settings (migrations usage 0004–0006), pinned: their plans are
generic (made once per connection, no planning per request) and may not scan a table whole — no
sequential scans, and for the lookup no hash or merge joins either: a generic plan made on an empty
`usage_event_key` hashed the key table and every batch's cost grew with the stored events
(bench/ingest.py --fresh --growth: 9.3k → 5.8k events/s per million; 42–45k flat to 10 M without)."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _config(name: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proconfig FROM pg_proc WHERE proname = %s", [name])
        return set(cursor.fetchone()[0])


def test_lookup_probes_indexes_whatever_the_statistics():
    assert _config("usage_ingest_lookup") == {"enable_seqscan=off", "plan_cache_mode=force_generic_plan",
                                              "enable_hashjoin=off", "enable_mergejoin=off"}


def test_insert_keeps_its_generic_plan_without_sequential_scans():
    assert _config("usage_ingest_insert") == {"enable_seqscan=off", "plan_cache_mode=force_generic_plan"}
