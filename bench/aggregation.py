"""Grouped usage aggregation over one generated month: 10,000,000 events for 10,000 subscriptions,
five metrics (count, sum, max, unique_count, latest), customers in UTC, Auckland and Los Angeles.

    .venv/bin/python bench/aggregation.py [--events 10000000] [--subscriptions 10000] [--regenerate]

The events are generated with set-based SQL (INSERT … SELECT generate_series, in 1M-row chunks)
into the dedicated bench database (ledgerline_bench), once; later runs reuse them. The timed part
is `usage.selectors.usage_aggregate` with one window per subscription (each customer's local
June 2025) — one grouped query, as a billing run calls it. Target: <= 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, psql_connect, setup_django  # noqa: E402

MONTH_START = "2025-06-01 00:00:00+00"
MONTH_SECONDS = 30 * 24 * 3600
CHUNK = 1_000_000
TIMEZONES = ("UTC", "Pacific/Auckland", "America/Los_Angeles", "UTC")
METRICS = (("agg_count", "count", ""), ("agg_sum", "sum", "v"), ("agg_max", "max", "v"),
           ("agg_unique", "unique_count", "user"), ("agg_latest", "latest", "v"))


def seed_subscriptions(n: int):
    from catalog.models import BillableMetric, Charge, Plan, PlanVersion
    from customers.models import Customer
    from subscriptions.models import Subscription

    metrics = []
    for code, aggregation, field in METRICS:
        metric, _ = BillableMetric.objects.get_or_create(code=code, defaults={"name": code, "aggregation": aggregation,
                                                                              "field": field})
        metrics.append(metric)
    plan, _ = Plan.objects.get_or_create(code="agg_plan", defaults={"name": "agg", "currency": "USD", "interval": "month"})
    version, created = PlanVersion.objects.get_or_create(plan=plan, version=1)
    if created:
        for metric in metrics:
            Charge.objects.create(plan_version=version, billable_metric=metric, model="standard",
                                  properties={"unit_amount": "0.01"})
    have = Subscription.objects.filter(external_id__startswith="agg_sub_").count()
    if have < n:
        customers = Customer.objects.bulk_create(
            [Customer(external_id=f"agg_cus_{i}", name=f"Agg {i}", currency="USD", timezone=TIMEZONES[i % len(TIMEZONES)])
             for i in range(have, n)], batch_size=2000)
        Subscription.objects.bulk_create(
            [Subscription(external_id=f"agg_sub_{i}", customer=c, plan_version=version, start_date=date(2025, 1, 1))
             for i, c in zip(range(have, n), customers)], batch_size=2000)
    subs = list(Subscription.objects.filter(external_id__startswith="agg_sub_").select_related("customer")
                .order_by("id")[:n])
    return subs, metrics


def generate_events(conn, sub_ids: list[int], metric_ids: list[int], total: int) -> None:
    from usage.partitioning import usage_partition_ensure
    from datetime import datetime, timezone

    usage_partition_ensure(timestamp=datetime(2025, 6, 1, tzinfo=timezone.utc))
    conn.execute("TRUNCATE usage_event_y2025m06")
    n_subs, n_metrics = len(sub_ids), len(metric_ids)
    t0 = time.perf_counter()
    for lo in range(1, total + 1, CHUNK):
        hi = min(lo + CHUNK - 1, total)
        # metric k of the five: 0 count, 1 sum, 2 max, 3 unique_count (users), 4 latest
        conn.execute(
            f"""
            INSERT INTO usage_event (transaction_id, customer_id, subscription_id, metric_id, "timestamp", properties,
                                     value, unique_value, received_at, is_late)
            SELECT 'agg-' || g, s.customer_id, s.id, m.id,
                   %(start)s::timestamptz + ((g::bigint * 7919) %% {MONTH_SECONDS}) * interval '1 second',
                   '{{"region": "eu"}}'::jsonb,
                   CASE WHEN m.k IN (1, 2, 4) THEN ((g %% 100000) / 100.0)::numeric END,
                   CASE WHEN m.k = 3 THEN 'user-' || (g %% 997) END,
                   now(), false
            FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
            JOIN LATERAL (SELECT (%(subs)s::bigint[])[1 + (g / {n_metrics}) %% {n_subs}] AS id) sid ON true
            JOIN subscriptions_subscription s ON s.id = sid.id
            JOIN LATERAL (SELECT (%(metrics)s::bigint[])[1 + g %% {n_metrics}] AS id, (g %% {n_metrics})::int AS k) m ON true
            """,
            {"start": MONTH_START, "lo": lo, "hi": hi, "subs": sub_ids, "metrics": metric_ids},
        )
        print(f"  generated {hi:,} events ({time.perf_counter() - t0:.0f} s)", flush=True)
    conn.execute("VACUUM (ANALYZE) usage_event_y2025m06")
    print(f"  generated and vacuumed in {time.perf_counter() - t0:.0f} s", flush=True)
    # Generated rows bypass ingestion, which maintains the daily rollups: rebuild them.
    from usage.rollups import usage_rollups_rebuild

    print(f"  rollups rebuilt: {usage_rollups_rebuild()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    ensure_database()
    setup_django()
    from common.timeutil import local_date_bounds_utc
    from usage.selectors import UsageWindow, usage_aggregate, usage_aggregate_raw

    subs, metrics = seed_subscriptions(args.subscriptions)
    sub_ids, metric_ids = [s.id for s in subs], [m.id for m in metrics]
    with psql_connect() as conn:
        existing = conn.execute("SELECT count(*) FROM usage_event WHERE \"timestamp\" >= %s AND \"timestamp\" < %s::timestamptz + interval '1 month'",
                                (MONTH_START, MONTH_START)).fetchone()[0] if not args.regenerate else -1
        if existing != args.events:
            print(f"generating {args.events:,} events for {len(sub_ids):,} subscriptions × {len(metric_ids)} metrics …", flush=True)
            generate_events(conn, sub_ids, metric_ids, args.events)
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('usage_event_y2025m06'))").fetchone()[0]
    print(f"data: {args.events:,} events in June 2025 (partition usage_event_y2025m06, {size} with indexes)")

    windows = [UsageWindow(s.id, *local_date_bounds_utc(date(2025, 6, 1), date(2025, 7, 1), s.customer.timezone))
               for s in subs]
    timings = []
    result = {}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        result = usage_aggregate(windows=windows, metric_ids=metric_ids)
        timings.append(time.perf_counter() - t0)
    counted = sum(a.event_count for a in result.values())
    print(f"grouped aggregation: {len(windows):,} windows × {len(metric_ids)} metrics, {counted:,} events aggregated; "
          f"runs {', '.join(f'{t:.2f}' for t in timings)} s; best {min(timings):.2f} s, median {statistics.median(timings):.2f} s")
    t0 = time.perf_counter()
    raw = usage_aggregate_raw(windows=windows, metric_ids=metric_ids)
    print(f"same from the raw events (no rollups): {time.perf_counter() - t0:.2f} s; results identical: {raw == result}")
    one = subs[1]  # an Auckland customer
    t0 = time.perf_counter()
    for s in subs[:200]:
        usage_aggregate(windows=[UsageWindow(s.id, *local_date_bounds_utc(date(2025, 6, 1), date(2025, 7, 1),
                                                                            s.customer.timezone))])
    per_sub = (time.perf_counter() - t0) / 200
    print(f"single-subscription aggregation (index path): {per_sub * 1000:.1f} ms per subscription (mean of 200)")
    sample = {m.code: result[(one.id, m.id)] for m in metrics}
    print("sample (" + one.external_id + ", " + one.customer.timezone + "): "
          + ", ".join(f"{code}={agg.quantity} ({agg.event_count} ev)" for code, agg in sample.items()))
    print(f"target: grouped aggregation <= 10 s {'PASS' if min(timings) <= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
