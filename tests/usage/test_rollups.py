"""Daily rollups agree with the raw events for every aggregation: maintained at ingest (late events
included), read by usage_aggregate for local-period windows, rebuilt by the command, and a window
whose edge cuts a bucket (the customer's timezone changed) falls back to the raw events."""

import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.timeutil import local_date_bounds_utc
from customers.models import Customer
from tests.customers.factories import CustomerFactory
from usage.models import UsageRollupDaily, UsageRollupUnique
from usage.partitioning import forget_known_partitions
from usage.rollups import usage_rollups_rebuild, usage_statistics_refresh
from usage.selectors import BILLED, UsageAggregate, UsageWindow, usage_aggregate, usage_aggregate_raw
from usage.services.ingest import event_ingest, event_ingest_batch

AGGREGATIONS = ["count", "sum", "max", "unique_count", "latest"]
TIMEZONES = ["UTC", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"]
_counter = itertools.count()


def _setup(make_metric, make_subscription, tz: str, n: int):
    metrics = {agg: make_metric(f"r{n}_{agg}", agg, "" if agg == "count" else "v") for agg in AGGREGATIONS}
    for metric in metrics.values():  # the generated values include negatives: the metrics opt in (issue 10)
        metric.allow_negative = True
        metric.save(update_fields=["allow_negative"])
    customer = CustomerFactory(external_id=f"rc{n}", timezone=tz)
    sub = make_subscription(*metrics.values(), customer=customer, external_id=f"rs{n}", start_date=date(2026, 1, 1))
    return sub, metrics


def _rows(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5")
        return [row[:-1] if table == "usage_rollup_daily" else row for row in cursor.fetchall()]  # not updated_at


def _post(sub, metrics, events):
    body = []
    for i, (agg, ts, value) in enumerate(events):
        event = {"transaction_id": f"{sub.external_id}-{next(_counter)}", "subscription": sub.external_id,
                 "code": metrics[agg].code, "timestamp": ts.isoformat()}
        if agg != "count":
            event["properties"] = {"v": value}
        body.append(event)
    result = event_ingest_batch(events=body)
    assert not result.rejected, result.rejected


event_strategy = st.lists(
    st.tuples(st.sampled_from(AGGREGATIONS), st.integers(min_value=0, max_value=62 * 24 * 4 - 1),
              st.sampled_from(["0", "1", "2.5", "-3", "7", "100.125", "0.000000000001"]),
              st.integers(min_value=0, max_value=2)),
    min_size=1, max_size=40)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(tz=st.sampled_from(TIMEZONES), raw=event_strategy,
       cut=st.integers(min_value=2, max_value=58), late_through=st.integers(min_value=0, max_value=40))
def test_rollups_agree_with_raw_events_for_every_aggregation(make_metric, make_subscription, tz, raw, cut,
                                                             late_through):
    """Events at 15-minute steps over January–February 2026 in the customer's timezone, in up to three
    batches; after the first batch the subscription's usage is billed through a day of January, so
    later batches before it are late. Every window (whole local days) and late filter agree."""
    forget_known_partitions()
    n = next(_counter)
    sub, metrics = _setup(make_metric, make_subscription, tz, n)
    origin = local_date_bounds_utc(date(2026, 1, 1), date(2026, 1, 1), tz)[0]
    for batch in range(3):
        events = [(agg, origin + timedelta(minutes=15 * step), value)
                  for agg, step, value, b in raw if b == batch]
        if events:
            _post(sub, metrics, events)
        if batch == 0 and late_through:
            sub.usage_billed_through = date(2026, 1, 1) + timedelta(days=late_through)
            sub.save(update_fields=["usage_billed_through"])
    metric_ids = [m.id for m in metrics.values()]
    windows = [
        local_date_bounds_utc(date(2026, 1, 1), date(2026, 3, 1), tz),
        local_date_bounds_utc(date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=cut), tz),
        local_date_bounds_utc(date(2026, 1, 1) + timedelta(days=cut), date(2026, 3, 1), tz),
        local_date_bounds_utc(date(2026, 1, 2), date(2026, 1, 3), tz),
    ]
    for start, end in windows:
        window = [UsageWindow(sub.id, start, end)]
        for late in (False, True, None, BILLED):
            with_ids = usage_aggregate(windows=window, metric_ids=metric_ids, late=late)
            assert with_ids == usage_aggregate_raw(windows=window, metric_ids=metric_ids, late=late), (start, end, late)
            assert usage_aggregate(windows=window, late=late) == usage_aggregate_raw(windows=window, late=late)


@pytest.mark.django_db
def test_rollup_rows_hold_the_local_day_and_are_what_a_rebuild_computes(make_metric, make_subscription):
    sub, metrics = _setup(make_metric, make_subscription, "Pacific/Auckland", 900)
    # 2026-01-15T10:59Z is 23:59 on 15 Jan in Auckland (UTC+13); 11:00Z is 16 Jan 00:00.
    a, b = datetime(2026, 1, 15, 10, 59, tzinfo=timezone.utc), datetime(2026, 1, 15, 11, 0, tzinfo=timezone.utc)
    _post(sub, metrics, [("sum", a, "2.5"), ("sum", b, "4"), ("sum", a, "1"), ("latest", a, "9"), ("latest", a, "3"),
                         ("max", b, "-3"), ("max", b, "-7"), ("unique_count", a, "x"), ("unique_count", a, "x"),
                         ("unique_count", b, "x"), ("count", a, None)])
    sums = {r.day: (r.event_count, r.value_sum) for r in UsageRollupDaily.objects.filter(metric_id=metrics["sum"].id)}
    assert sums == {date(2026, 1, 15): (2, Decimal("3.5")), date(2026, 1, 16): (1, Decimal(4))}
    day15 = UsageRollupDaily.objects.get(metric_id=metrics["sum"].id, day=date(2026, 1, 15))
    assert (day15.bucket_start, day15.bucket_end) == (datetime(2026, 1, 14, 11, tzinfo=timezone.utc),
                                                      datetime(2026, 1, 15, 11, tzinfo=timezone.utc))
    latest = UsageRollupDaily.objects.get(metric_id=metrics["latest"].id)
    assert latest.latest_value == Decimal(3)  # same timestamp: the later event (higher id) wins
    assert UsageRollupDaily.objects.get(metric_id=metrics["max"].id).value_max == Decimal(-3)
    assert UsageRollupUnique.objects.filter(metric_id=metrics["unique_count"].id).count() == 2  # "x" on two days
    before_daily, before_unique = _rows("usage_rollup_daily"), _rows("usage_rollup_unique")
    result = usage_rollups_rebuild()
    assert result["daily_rows"] == len(before_daily) == 7
    assert (_rows("usage_rollup_daily"), _rows("usage_rollup_unique")) == (before_daily, before_unique)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM usage_rollup_daily")
        cursor.execute("DELETE FROM usage_rollup_unique")
    call_command("usage_rollups_rebuild")
    assert (_rows("usage_rollup_daily"), _rows("usage_rollup_unique")) == (before_daily, before_unique)


@pytest.mark.django_db
def test_a_duplicate_or_rejected_event_does_not_touch_the_rollups(make_metric, make_subscription):
    sub, metrics = _setup(make_metric, make_subscription, "UTC", 901)
    event = {"transaction_id": "dup-1", "subscription": sub.external_id, "code": metrics["sum"].code,
             "timestamp": "2026-01-10T10:00:00Z", "properties": {"v": "5"}}
    assert event_ingest(payload=event).status == "accepted"
    assert event_ingest(payload=event).status == "duplicate"
    assert event_ingest(payload={**event, "properties": {"v": "6"}}).status == "conflict"
    row = UsageRollupDaily.objects.get(metric_id=metrics["sum"].id)
    assert (row.event_count, row.value_sum) == (1, Decimal(5))


@pytest.mark.django_db
def test_a_timezone_change_falls_back_to_raw_events_exactly(make_metric, make_subscription):
    """Events stored while the customer was in UTC; the customer moves to Auckland. January in
    Auckland starts at 2025-12-31T11:00Z, inside the UTC bucket of 31 December: the window cuts that
    bucket, so its subscription is aggregated from the raw events."""
    sub, metrics = _setup(make_metric, make_subscription, "UTC", 902)
    sub.start_date = date(2025, 12, 1)
    sub.save(update_fields=["start_date"])
    _post(sub, metrics, [("sum", datetime(2025, 12, 31, 5, tzinfo=timezone.utc), "1"),
                         ("sum", datetime(2025, 12, 31, 12, tzinfo=timezone.utc), "10"),
                         ("sum", datetime(2026, 1, 20, tzinfo=timezone.utc), "100")])
    Customer.objects.filter(pk=sub.customer_id).update(timezone="Pacific/Auckland")
    window = [UsageWindow(sub.id, *local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), "Pacific/Auckland"))]
    assert usage_aggregate(windows=window)[(sub.id, metrics["sum"].id)] == UsageAggregate(Decimal(110), 2)
    utc_window = [UsageWindow(sub.id, *local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), "UTC"))]
    assert usage_aggregate(windows=utc_window)[(sub.id, metrics["sum"].id)] == UsageAggregate(Decimal(100), 1)


@pytest.mark.django_db
def test_many_windows_read_the_rollups_in_one_query(make_metric, make_subscription, django_assert_num_queries):
    """A billing-run sized call (≥ 200 windows) pins its plan with local settings: still exact."""
    metric = make_metric("bulk_sum", "sum", "v")
    users = make_metric("bulk_users", "unique_count", "v")
    subs = [make_subscription(metric, users, customer=CustomerFactory(timezone=TIMEZONES[i % 5]), external_id=f"bulk{i}")
            for i in range(210)]
    body = [{"transaction_id": f"bulk-{i}-{j}", "subscription": s.external_id, "code": metric.code,
             "timestamp": f"2026-01-{10 + j:02d}T12:00:00Z", "properties": {"v": str(i + j)}}
            for i, s in enumerate(subs) for j in range(3)]
    body += [{"transaction_id": f"bulk-u-{i}-{j}", "subscription": s.external_id, "code": users.code,
              "timestamp": f"2026-01-{10 + j:02d}T12:00:00Z", "properties": {"v": f"user-{j % 2}"}}
             for i, s in enumerate(subs) for j in range(3)]
    for start in range(0, len(body), 1000):
        assert not event_ingest_batch(events=body[start:start + 1000]).rejected
    windows = [UsageWindow(s.id, *local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), s.customer.timezone))
               for s in subs]
    result = usage_aggregate(windows=windows, metric_ids=[metric.id, users.id])
    assert result == usage_aggregate_raw(windows=windows, metric_ids=[metric.id, users.id])
    assert result[(subs[7].id, metric.id)] == UsageAggregate(Decimal(7 + 8 + 9), 3)
    assert result[(subs[7].id, users.id)] == UsageAggregate(Decimal(2), 3)


@pytest.mark.django_db(transaction=True)
def test_statistics_refresh_analyzes_stale_rollups_only(make_metric, make_subscription):
    sub, metrics = _setup(make_metric, make_subscription, "UTC", 903)
    body = [{"transaction_id": f"stale-{i}", "subscription": sub.external_id, "code": metrics["unique_count"].code,
             "timestamp": (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i)).isoformat(),
             "properties": {"v": f"user-{i}"}} for i in range(1000)]
    assert event_ingest_batch(events=body).accepted == 1000
    with connection.cursor() as cursor:  # this backend's counters reach the shared statistics now
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT 1")
    assert "usage_rollup_unique" in usage_statistics_refresh()
    assert usage_statistics_refresh() == []  # fresh now


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_on_the_same_days_keep_the_rollups_exact(make_metric, make_subscription):
    """Two real connections post batches over the same subscription-days in opposite orders; the
    upserts lock rollup rows in key order, so neither deadlocks, and the rollups equal the raw events."""
    import threading

    sub, metrics = _setup(make_metric, make_subscription, "America/Los_Angeles", 904)
    days = [datetime(2026, 1, d, 12, tzinfo=timezone.utc) for d in range(1, 21)]
    errors, barrier = [], threading.Barrier(2)

    def writer(tag, ordered_days):
        from django.db import connection as conn

        try:
            barrier.wait(timeout=10)
            for round_ in range(5):
                body = [{"transaction_id": f"cc-{tag}-{round_}-{i}-{agg}", "subscription": sub.external_id,
                         "code": metrics[agg].code, "timestamp": (day + timedelta(seconds=round_)).isoformat(),
                         "properties": {} if agg == "count" else {"v": f"{i % 4}.5"}}
                        for i, day in enumerate(ordered_days) for agg in AGGREGATIONS]
                result = event_ingest_batch(events=body)
                assert result.accepted == len(body), result.rejected
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=("a", days)), threading.Thread(target=writer, args=("b", days[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    window = [UsageWindow(sub.id, *local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), "America/Los_Angeles"))]
    result = usage_aggregate(windows=window)
    assert result == usage_aggregate_raw(windows=window)
    assert result[(sub.id, metrics["count"].id)].event_count == 2 * 5 * 20
    assert result[(sub.id, metrics["unique_count"].id)].quantity == 4  # 0.5, 1.5, 2.5, 3.5


@pytest.mark.django_db
def test_usage_daily_per_local_day_for_every_aggregation(make_metric, make_subscription):
    """usage_daily (anomalies, weekday forecasts) reads the rollups per customer-local day; each day
    equals the raw events of that local day (`latest` reads as the day's maximum)."""
    from usage.selectors import usage_daily

    tz = "Asia/Kolkata"  # UTC+05:30: a local day is not a run of UTC hours
    sub, metrics = _setup(make_metric, make_subscription, tz, 905)
    start = local_date_bounds_utc(date(2026, 1, 1), date(2026, 1, 1), tz)[0]
    events = [(agg, start + timedelta(hours=7 * i), str(i % 5)) for i in range(30) for agg in AGGREGATIONS]
    _post(sub, metrics, events)
    daily = usage_daily(start=date(2026, 1, 1), end=date(2026, 2, 1), subscription_ids=[sub.id])
    for agg, metric in metrics.items():
        series = sorted((day, quantity) for s, m, day, quantity in daily if s == sub.id and m == metric.id)
        assert [day for day, _ in series] == [date(2026, 1, d) for d in range(1, 10)]  # 30 × 7 h = 8.75 days
        for day, quantity in series:
            lo, hi = local_date_bounds_utc(day, day + timedelta(days=1), tz)
            if agg == "latest":
                expected = max(Decimal(v) for a, ts, v in events if a == agg and lo <= ts < hi)
            else:
                expected = usage_aggregate_raw(windows=[UsageWindow(sub.id, lo, hi)])[(sub.id, metric.id)].quantity
            assert quantity == expected, (agg, day)
    first = [q for s, m, day, q in daily if m == metrics["count"].id and day == date(2026, 1, 1)]
    assert first == [Decimal(4)]  # 00:00, 07:00, 14:00, 21:00 local
