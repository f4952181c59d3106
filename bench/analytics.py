"""Finance analytics benchmark: the 12-month MRR bridge and the month's summary over 10,000
subscriptions with 18 months of history.

    .venv/bin/python bench/analytics.py [--subscriptions 10000] [--repeat 5] [--keep]

Works in its own database (ledgerline_bench_analytics, recreated unless --keep finds it seeded).
Customers (about 0.8 per subscription: some hold two), plans (monthly, weekly, quarterly, yearly),
subscriptions and their change ledgers (created, upgrades, seat changes, cancellations, trials)
are generated deterministically with bulk inserts; `analytics_rebuild` then writes the movement
ledger from that history (timed and reported). The timed part is
`analytics.selectors.mrr_bridge` over 12 months plus `analytics_summary` for the last month, as
the API calls them. Target: < 2 s. The script checks the bridge identity on every month.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_analytics")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, setup_django  # noqa: E402

FIRST_MONTH = date(2025, 1, 1)
MONTHS = 18  # history: 2025-01 … 2026-06
BRIDGE_FROM, BRIDGE_TO = date(2025, 7, 1), date(2026, 6, 1)
PLANS = [("b_starter", "month", "29"), ("b_pro", "month", "99"), ("b_business", "month", "299"),
         ("b_weekly", "week", "12"), ("b_quarterly", "quarter", "250"), ("b_annual", "year", "2400")]


def seed(n_subs: int) -> None:
    from django.utils import timezone

    from analytics.mrr import add_months
    from catalog.models import Plan, PlanVersion
    from customers.models import Customer
    from subscriptions.models import Subscription, SubscriptionChange

    t0 = time.monotonic()
    rng = random.Random(2026)
    versions = []
    for code, interval, amount in PLANS:
        plan = Plan.objects.create(code=code, name=code, currency="USD", interval=interval)
        versions.append(PlanVersion.objects.create(plan=plan, version=1, amount=Decimal(amount)))
    monthly = [v for v in versions if v.plan.interval == "month"]
    n_customers = int(n_subs * 0.8)
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"bench_{i}", name=f"Bench {i}", currency="USD") for i in range(n_customers)], batch_size=5000)
    subs, stories = [], []
    for i in range(n_subs):
        customer = customers[i % n_customers]
        version = rng.choice(versions)
        start = add_months(FIRST_MONTH, rng.randrange(MONTHS)) + timedelta(days=rng.randrange(28))
        quantity = rng.randint(1, 5)
        trial_end = start + timedelta(days=14) if rng.random() < 0.1 else None
        steps = [("created", start, version, quantity, "active")]
        day = start
        if version in monthly:
            for _ in range(rng.choice([0, 0, 1, 2])):
                day += timedelta(days=rng.randint(30, 150))
                steps.append(("plan", day, rng.choice(monthly), None, None))
        if rng.random() < 0.2:
            day += timedelta(days=rng.randint(20, 120))
            steps.append(("quantity", day, None, rng.randint(1, 8), None))
        if rng.random() < 0.25:
            day += timedelta(days=rng.randint(30, 200))
            steps.append(("cancel", day, None, None, "canceled"))
        steps = [s for s in steps if s[1] < date(2026, 7, 1)]
        final_version = [s[2] for s in steps if s[2] is not None][-1]
        final_qty = [s[3] for s in steps if s[3] is not None][-1]
        canceled = steps[-1][0] == "cancel"
        subs.append(Subscription(external_id=f"bench_sub_{i}", customer=customer, plan_version=final_version,
                                 quantity=final_qty, status="canceled" if canceled else "active", start_date=start,
                                 trial_end_date=trial_end, end_date=steps[-1][1] if canceled else None))
        stories.append(steps)
    subs = Subscription.objects.bulk_create(subs, batch_size=5000)
    now = timezone.now()
    changes = []
    for sub, steps in zip(subs, stories):
        for kind, day, version, quantity, status in steps:
            changes.append(SubscriptionChange(subscription=sub, kind=kind, effective_date=day, to_plan_version=version,
                                              to_quantity=quantity, to_status=status or "", actor="bench", applied_at=now))
    SubscriptionChange.objects.bulk_create(changes, batch_size=5000)
    print(f"seeded {n_customers:,} customers, {n_subs:,} subscriptions, {len(changes):,} changes "
          f"in {time.monotonic() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_database(fresh=not args.keep)
    setup_django()
    from django.db import connection

    from analytics.models import MrrMovement
    from analytics.mrr import ledger_rebuild
    from analytics.selectors import analytics_summary, mrr_bridge
    from subscriptions.models import Subscription

    if not Subscription.objects.exists():
        seed(args.subscriptions)
        t0 = time.monotonic()
        ledger_rebuild()
        print(f"analytics_rebuild: {MrrMovement.objects.count():,} movements in {time.monotonic() - t0:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE analytics_mrrmovement")
    timings = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        bridge = mrr_bridge(currency="USD", start=BRIDGE_FROM, end=BRIDGE_TO)
        summary = analytics_summary(currency="USD", month=BRIDGE_TO)
        timings.append(time.perf_counter() - t0)
    for row in bridge:
        assert row.mrr == row.mrr_start + row.new + row.reactivation + row.expansion - row.contraction - row.churn
    assert summary["mrr"] == bridge[-1].mrr
    print(f"12-month bridge + summary over {Subscription.objects.count():,} subscriptions: "
          f"median {statistics.median(timings) * 1000:.0f} ms, best {min(timings) * 1000:.0f} ms "
          f"({args.repeat} runs; target < 2000 ms)")
    print(f"June 2026: MRR {summary['mrr']}, customers {summary['customers']}, NRR {summary['nrr']}, "
          f"GRR {summary['grr']}, logo churn {summary['logo_churn_rate']}, 12-month NRR {summary['nrr_12m']}, "
          f"GRR {summary['grr_12m']}")


if __name__ == "__main__":
    main()
