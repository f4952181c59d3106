"""The ingestion functions' planner settings (migrations usage 0004–0006), pinned: the lookup plans
each call with current statistics (a plan made once on an empty table made every batch's cost grow
with the stored events: bench/ingest.py --fresh --growth went 9.3k → 5.8k events/s, then 44.8k flat
once replanned); neither function may fall back to a sequential scan of the event store."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _config(name: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proconfig FROM pg_proc WHERE proname = %s", [name])
        return set(cursor.fetchone()[0])


def test_lookup_plans_each_call_without_sequential_scans():
    assert _config("usage_ingest_lookup") == {"enable_seqscan=off", "plan_cache_mode=force_custom_plan"}


def test_insert_keeps_its_generic_plan_without_sequential_scans():
    assert _config("usage_ingest_insert") == {"enable_seqscan=off", "plan_cache_mode=force_generic_plan"}
