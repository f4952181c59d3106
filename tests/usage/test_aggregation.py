"""Aggregation selectors: every aggregation type, out-of-order events, local-period boundaries in
Pacific/Auckland (UTC+13 in January, UTC+12 from April), late filtering, one grouped query."""

import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from common.timeutil import local_date_bounds_utc
from tests.customers.factories import CustomerFactory
from usage.selectors import (
    UsageAggregate,
    UsageWindow,
    late_events_unbilled,
    late_usage_aggregate,
    usage_aggregate,
    usage_event_values,
)
from usage.services.ingest import event_ingest_batch
from usage.services.late import late_events_mark_billed

TZ = "Pacific/Auckland"
# January 2026 in Auckland is [2025-12-31T11:00Z, 2026-01-31T11:00Z)
JAN_START, JAN_END = local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), TZ)

# (timestamp, value): the first and last are outside January in Auckland; posted out of order.
EVENTS = [
    ("2026-01-31T10:59:59Z", "7"),  # 2026-01-31 23:59:59 local: last instant of January
    ("2025-12-31T10:59:59Z", "1000"),  # 2025-12-31 23:59:59 local: December, outside
    ("2026-01-15T00:00:00Z", "3.5"),
    ("2025-12-31T11:00:00Z", "2"),  # 2026-01-01 00:00 local: first instant of January
    ("2026-01-31T11:00:00Z", "2000"),  # 2026-02-01 00:00 local: February, outside
    ("2026-01-20T00:00:00+13:00", "9.25"),
]
INSIDE = [Decimal("2"), Decimal("3.5"), Decimal("9.25"), Decimal("7")]  # in timestamp order


@pytest.fixture
def auckland(make_metric, make_subscription):
    metrics = {
        "count": make_metric("m_count"),
        "sum": make_metric("m_sum", "sum", "v"),
        "max": make_metric("m_max", "max", "v"),
        "unique_count": make_metric("m_unique", "unique_count", "v"),
        "latest": make_metric("m_latest", "latest", "v"),
    }
    customer = CustomerFactory(external_id="kiwi", timezone=TZ)
    sub = make_subscription(*metrics.values(), customer=customer, external_id="sub_kiwi", start_date=date(2025, 12, 1))
    events = []
    for name, metric in metrics.items():
        for i, (ts, value) in enumerate(EVENTS):
            events.append({"transaction_id": f"{name}-{i}", "subscription": "sub_kiwi", "code": metric.code,
                           "timestamp": ts, "properties": {"v": value}})
    result = event_ingest_batch(events=events)
    assert result.accepted == len(events), result.rejected
    return sub, metrics


def test_window_is_the_local_month():
    assert JAN_START == datetime(2025, 12, 31, 11, tzinfo=timezone.utc)
    assert JAN_END == datetime(2026, 1, 31, 11, tzinfo=timezone.utc)


@pytest.mark.django_db
def test_each_aggregation_over_the_local_period(auckland, django_assert_num_queries):
    sub, metrics = auckland
    with django_assert_num_queries(1):
        result = usage_aggregate(windows=[UsageWindow(sub.id, JAN_START, JAN_END)])
    expected = {
        "count": Decimal(4),
        "sum": Decimal("21.75"),
        "max": Decimal("9.25"),
        "unique_count": Decimal(4),
        "latest": Decimal("7"),  # by timestamp, although it was posted first
    }
    assert {name: result[(sub.id, m.id)].quantity for name, m in metrics.items()} == expected
    assert all(result[(sub.id, m.id)].event_count == 4 for m in metrics.values())


@pytest.mark.django_db
def test_latest_ties_break_by_arrival_and_unique_counts_distinct_values(make_metric, make_subscription):
    latest = make_metric("gauge", "latest", "v")
    users = make_metric("users", "unique_count", "user")
    sub = make_subscription(latest, users, customer=CustomerFactory(external_id="acme"), external_id="s1")
    ts = "2026-02-10T00:00:00Z"
    body = [
        {"transaction_id": "g1", "subscription": "s1", "code": "gauge", "timestamp": "2026-02-11T00:00:00Z", "properties": {"v": 5}},
        {"transaction_id": "g2", "subscription": "s1", "code": "gauge", "timestamp": ts, "properties": {"v": 1}},
        {"transaction_id": "g3", "subscription": "s1", "code": "gauge", "timestamp": "2026-02-11T00:00:00Z", "properties": {"v": 8}},
        {"transaction_id": "u1", "subscription": "s1", "code": "users", "timestamp": ts, "properties": {"user": "ann"}},
        {"transaction_id": "u2", "subscription": "s1", "code": "users", "timestamp": ts, "properties": {"user": "bob"}},
        {"transaction_id": "u3", "subscription": "s1", "code": "users", "timestamp": ts, "properties": {"user": "ann"}},
        {"transaction_id": "u4", "subscription": "s1", "code": "users", "timestamp": ts, "properties": {"user": 42}},
    ]
    assert event_ingest_batch(events=body).accepted == 7
    start, end = local_date_bounds_utc(date(2026, 2, 1), date(2026, 3, 1), "UTC")
    result = usage_aggregate(windows=[UsageWindow(sub.id, start, end)])
    assert result[(sub.id, latest.id)] == UsageAggregate(Decimal(8), 3)
    assert result[(sub.id, users.id)] == UsageAggregate(Decimal(3), 4)


@pytest.mark.django_db
def test_many_subscriptions_in_one_query_with_their_own_windows(make_metric, make_subscription, django_assert_num_queries):
    metric = make_metric("gb", "sum", "gb")
    other = make_metric("unused")
    subs = []
    for n, tz in enumerate(["UTC", TZ, "America/Los_Angeles"]):
        sub = make_subscription(metric, customer=CustomerFactory(timezone=tz), external_id=f"s{n}")
        subs.append((sub, tz))
    events = []
    for sub, _ in subs:
        for day in (1, 15, 28):
            for hour in (0, 12):
                events.append({"transaction_id": str(uuid.uuid4()), "subscription": sub.external_id, "code": "gb",
                               "timestamp": f"2026-03-{day:02d}T{hour:02d}:00:00Z", "properties": {"gb": "1.5"}})
        events.append({"transaction_id": str(uuid.uuid4()), "subscription": sub.external_id, "code": "gb",
                       "timestamp": "2026-03-31T23:00:00Z", "properties": {"gb": "100"}})
    assert event_ingest_batch(events=events).accepted == len(events)
    windows = [UsageWindow(sub.id, *local_date_bounds_utc(date(2026, 3, 1), date(2026, 4, 1), tz)) for sub, tz in subs]
    with django_assert_num_queries(1):
        result = usage_aggregate(windows=windows, metric_ids=[metric.id, other.id])
    utc, akl, la = (s.id for s, _ in subs)
    # UTC: all 6 + the 23:00Z one. Auckland (UTC+13 until 5 April): 2026-03-01T00:00Z is 1 March 13:00 local (in);
    # 31 March 23:00Z is 1 April local (out). Los Angeles (UTC-7 from 8 March): 1 March 00:00Z is 28 Feb local (out),
    # 31 March 23:00Z is 31 March local (in).
    assert result[(utc, metric.id)] == UsageAggregate(Decimal("109"), 7)
    assert result[(akl, metric.id)] == UsageAggregate(Decimal("9"), 6)
    assert result[(la, metric.id)] == UsageAggregate(Decimal("107.5"), 6)
    assert result[(utc, other.id)] == UsageAggregate(Decimal(0), 0)
    assert len(result) == 6


@pytest.mark.django_db
def test_late_events_are_excluded_by_default_and_billed_once(make_metric, make_subscription):
    metric = make_metric("gb", "sum", "gb")
    sub = make_subscription(metric, customer=CustomerFactory(external_id="acme"), external_id="s1",
                            usage_billed_through=date(2026, 3, 1))
    body = [{"transaction_id": f"e{i}", "subscription": "s1", "code": "gb", "timestamp": ts, "properties": {"gb": v}}
            for i, (ts, v) in enumerate([("2026-02-27T00:00:00Z", "4"), ("2026-02-28T10:00:00Z", "6"),
                                         ("2026-03-02T00:00:00Z", "1")])]
    assert event_ingest_batch(events=body).accepted == 3
    feb = UsageWindow(sub.id, *local_date_bounds_utc(date(2026, 2, 1), date(2026, 3, 1), "UTC"))
    assert usage_aggregate(windows=[feb]) == {}
    assert usage_aggregate(windows=[feb], late=None)[(sub.id, metric.id)] == UsageAggregate(Decimal(10), 2)
    assert usage_aggregate(windows=[feb], late=True)[(sub.id, metric.id)] == UsageAggregate(Decimal(10), 2)

    late = late_events_unbilled(subscription_ids=[sub.id])
    assert [e.value for e in late] == [Decimal(4), Decimal(6)]
    assert late_usage_aggregate(events=late, aggregation_by_metric={metric.id: "sum"}) == {
        (sub.id, metric.id): UsageAggregate(Decimal(10), 2)}
    invoice_id = uuid.uuid4()
    assert late_events_mark_billed(event_ids=[e.event_id for e in late], invoice_id=invoice_id) == 2
    assert late_events_mark_billed(event_ids=[e.event_id for e in late], invoice_id=uuid.uuid4()) == 0
    assert late_events_unbilled() == []


@pytest.mark.django_db
def test_event_values_in_timestamp_order(auckland):
    sub, metrics = auckland
    values = usage_event_values(subscription_id=sub.id, metric_id=metrics["sum"].id, start=JAN_START, end=JAN_END)
    assert values == INSIDE
    counts = usage_event_values(subscription_id=sub.id, metric_id=metrics["count"].id, start=JAN_START, end=JAN_END)
    assert counts == [Decimal(1)] * 4


@pytest.mark.django_db
def test_sums_stay_exact_beyond_28_digits(make_metric, make_subscription):
    metric = make_metric("volume", "sum", "amount")
    sub = make_subscription(metric, customer=CustomerFactory(external_id="acme"), external_id="s1")
    big = "999999999999999.999999999999"  # the largest event value (issue 10: 15 integer digits, 12 places)
    body = [{"transaction_id": f"v{i}", "subscription": "s1", "code": "volume", "timestamp": "2026-03-01T00:00:00Z",
             "properties": {"amount": big}} for i in range(100)]
    assert event_ingest_batch(events=body).accepted == 100
    start, end = local_date_bounds_utc(date(2026, 3, 1), date(2026, 4, 1), "UTC")
    result = usage_aggregate(windows=[UsageWindow(sub.id, start, end)])
    assert result[(sub.id, metric.id)].quantity == Decimal("99999999999999999.999999999900")  # 29 digits


@pytest.mark.django_db
def test_billing_run_sized_call_gives_the_same_answer_and_restores_settings(auckland, monkeypatch):
    from django.db import connection, transaction

    from usage import selectors

    sub, metrics = auckland
    small = usage_aggregate(windows=[UsageWindow(sub.id, JAN_START, JAN_END)])
    monkeypatch.setattr(selectors, "_BIG_CALL_WINDOWS", 1)
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        before = cursor.fetchone()[0]
    with transaction.atomic():
        big = usage_aggregate(windows=[UsageWindow(sub.id, JAN_START, JAN_END)])
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            assert cursor.fetchone()[0] == before
    assert big == small and len(big) == 5
