from datetime import date, datetime, timezone

import pytest
from django.db import connection

from tests.customers.factories import CustomerFactory
from tests.usage.helpers import event
from usage import partitioning
from usage.models import UsageEvent
from usage.partitioning import usage_partition_ensure, usage_partitions_ensure_ahead, usage_partitions_list
from usage.services.ingest import event_ingest


def _partitions() -> set[str]:
    return {name for name, _ in usage_partitions_list()}


def _bounds(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = %s", [name])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_migration_created_partitions_around_now():
    now = datetime.now(timezone.utc)
    assert partitioning.partition_name(now) in _partitions()


@pytest.mark.django_db
def test_ingesting_an_old_event_creates_its_month(make_metric, make_subscription):
    make_subscription(make_metric("api_calls"), customer=CustomerFactory(external_id="acme"), start_date=date(2019, 1, 1))
    assert "usage_event_y2019m03" not in _partitions()
    result = event_ingest(payload=event("old", timestamp="2019-03-31T23:59:59.999999Z"))
    assert result.status == "accepted"
    assert "usage_event_y2019m03" in _partitions()
    assert _bounds("usage_event_y2019m03") == "FOR VALUES FROM ('2019-03-01 00:00:00+00') TO ('2019-04-01 00:00:00+00')"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_event_y2019m03")
        assert cursor.fetchone()[0] == 1
    assert UsageEvent.objects.get().transaction_id == "old"


@pytest.mark.django_db
def test_ensure_is_idempotent_and_creates_ahead():
    first = usage_partition_ensure(timestamp=datetime(2031, 7, 15, tzinfo=timezone.utc))
    again = usage_partition_ensure(timestamp=datetime(2031, 7, 31, 23, tzinfo=timezone.utc))
    assert first == again == "usage_event_y2031m07"
    created = usage_partitions_ensure_ahead(months_back=0, months_ahead=3)
    assert len(created) == 4 and set(created) <= _partitions()


@pytest.mark.django_db
def test_stale_cache_entry_is_recovered(make_metric, make_subscription):
    """A month remembered by the process but missing in the database (dropped, or created inside a
    rolled-back transaction) makes the insert fail once; it is created and the insert retried."""
    make_subscription(make_metric("api_calls"), customer=CustomerFactory(external_id="acme"), start_date=date(2018, 1, 1))
    partitioning._known_months.add((2018, 5))
    assert "usage_event_y2018m05" not in _partitions()
    assert event_ingest(payload=event("stale", timestamp="2018-05-10T00:00:00Z")).status == "accepted"
    assert "usage_event_y2018m05" in _partitions()
