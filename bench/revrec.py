"""Revenue-recognition benchmark: closing a month over 10,000 subscriptions' invoices.

    .venv/bin/python bench/revrec.py [--subscriptions 10000]

Works in its own database (ledgerline_bench_revrec, recreated). Seeds N customers and N finalized
invoices issued 2026-04-01 (bulk inserts), each with a pay-in-advance fee line and a usage line
in arrears: three in four fees are monthly (April, 49.00), one in four yearly (April 2026 – March
2027, 588.00); usage covers March (0.01 × the customer number). Then, timed:
1. `revrec_sync` posts every invoice (obligations, schedules, the invoice and credits entries);
2. `revrec_close(2026-03)` accrues March usage to unbilled receivable;
3. `revrec_close(2026-04)` recognizes April from deferred revenue;
4. the April close rerun (nothing posts);
5. with `--accrual` (default on): N anniversary subscriptions (period May 15 – Jun 15) with a graduated
   usage charge and 3 events each in May, none invoiced: `revrec_close(2026-05)` rates and accrues
   every one (the uninvoiced-usage accrual at close, revrec/accruals.py).
It checks the trial balance sums to zero, the rollforward identity, and that the reconciliation
kinds sum exactly, and prints wall times, rows and peak memory (RSS).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_revrec")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, setup_django  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(n: int) -> None:
    from customers.models import Customer
    from invoicing.models import Invoice, InvoiceLine, InvoiceStatus

    issue = date(2026, 4, 1)
    customers = Customer.objects.bulk_create([Customer(external_id=f"bench_{i}", name=f"Bench {i}", currency="USD")
                                              for i in range(1, n + 1)], batch_size=2000)
    invoices, lines = [], []
    for i, customer in enumerate(customers, start=1):
        yearly = i % 4 == 0
        fee = Decimal("588.00") if yearly else Decimal("49.00")
        usage = (Decimal(i) / 100).quantize(Decimal("0.01"))
        total = fee + usage
        invoice = Invoice(number=f"INV-2026-{i:06d}", status=InvoiceStatus.FINALIZED, customer=customer, currency="USD",
                          billing_date=issue, issue_date=issue, due_date=issue, period_start=date(2026, 3, 1),
                          period_end=issue, subtotal=total, total=total, amount_due=total,
                          finalized_at=datetime(2026, 4, 1, 6, tzinfo=timezone.utc))
        invoices.append(invoice)
        lines.append(InvoiceLine(invoice=invoice, position=0, kind="subscription", description="fee", amount=fee,
                                 period_start=issue, period_end=date(2027, 4, 1) if yearly else date(2026, 5, 1)))
        lines.append(InvoiceLine(invoice=invoice, position=1, kind="usage", description="usage", amount=usage,
                                 period_start=date(2026, 3, 1), period_end=issue))
    Invoice.objects.bulk_create(invoices, batch_size=2000)
    InvoiceLine.objects.bulk_create(lines, batch_size=4000)
    from django.db import connection

    with connection.cursor() as cursor:  # as autovacuum would after a billing run
        cursor.execute("ANALYZE customers_customer, invoicing_invoice, invoicing_invoiceline")


def seed_usage(n: int) -> None:
    """N anniversary subscriptions (from 2026-05-15) on one plan with a graduated usage charge, 3 API
    calls each in May (customer i: at i mod 28 + 15 hours), none invoiced."""
    from datetime import timedelta

    from catalog.models import BillableMetric, Charge, Plan, PlanVersion
    from customers.models import Customer
    from subscriptions.models import Subscription
    from usage.models import UsageEvent

    metric = BillableMetric.objects.create(code="bench_calls", name="calls", aggregation="count")
    plan = Plan.objects.create(code="bench_usage", name="usage", currency="USD", interval="month")
    version = PlanVersion.objects.create(plan=plan, version=1, amount=Decimal("0"))
    Charge.objects.create(plan_version=version, billable_metric=metric, model="graduated",
                          properties={"tiers": [{"up_to": 2, "unit_amount": "1.00", "flat_amount": "0"}, {"up_to": None, "unit_amount": "0.50", "flat_amount": "0"}]})
    customers = list(Customer.objects.order_by("pk")[:n])
    subs = Subscription.objects.bulk_create([
        Subscription(external_id=f"bench_sub_{c.pk}", customer=c, plan_version=version, billing_time="anniversary",
                     start_date=date(2026, 5, 15)) for c in customers], batch_size=2000)
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    events = []
    for i, sub in enumerate(subs):
        for k in range(3):
            ts = datetime(2026, 5, 16 + (i + k) % 15, 12, tzinfo=timezone.utc) + timedelta(minutes=k)
            events.append(UsageEvent(transaction_id=f"b{i}_{k}", customer_id=sub.customer_id, subscription_id=sub.pk,
                                     metric_id=metric.pk, timestamp=ts, properties={}, received_at=now))
    from usage.partitioning import usage_partitions_ensure_for

    usage_partitions_ensure_for(timestamps=[datetime(2026, 5, 20, tzinfo=timezone.utc)])
    UsageEvent.objects.bulk_create(events, batch_size=5000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscriptions_subscription, usage_event")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--accrual", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    ensure_database(fresh=True)
    setup_django()
    from decimal import Decimal as D

    from revrec.close import revrec_close
    from revrec.models import JournalEntry, JournalLine, ScheduleEntry
    from revrec.postings import revrec_sync
    from revrec.reports import reconciliation, rollforward, trial_balance

    t0 = time.monotonic()
    seed(args.subscriptions)
    print(f"seeded {args.subscriptions} invoices in {time.monotonic() - t0:.1f}s")
    timings = {}
    for label, call in [("sync (post invoices)", revrec_sync),
                        ("close 2026-03 (usage accrual)", lambda: revrec_close(month=date(2026, 3, 1))),
                        ("close 2026-04 (recognition)", lambda: revrec_close(month=date(2026, 4, 1))),
                        ("close 2026-04 rerun", lambda: revrec_close(month=date(2026, 4, 1)))]:
        start = time.monotonic()
        result = call()
        timings[label] = time.monotonic() - start
        print(f"{label:32s} {timings[label]:7.1f}s  {getattr(result, 'as_dict', lambda: result)()}")
    tb = trial_balance(currency="USD", through=date(2026, 4, 30))
    rf = rollforward(month=date(2026, 4, 1), currency="USD")
    recon = reconciliation(month=date(2026, 4, 1), currency="USD")
    assert tb["total"] == "0.00"
    assert D(rf["closing_deferred"]) == D(rf["opening_deferred"]) + D(rf["billed"]) - D(rf["recognized"]) - D(rf["credited"])
    assert sum(D(k["amount"]) for k in recon["billed_vs_recognized"]) == D(recon["billed"]) - D(recon["recognized"])
    print(f"journal entries {JournalEntry.objects.count()}, lines {JournalLine.objects.count()}, "
          f"schedule entries {ScheduleEntry.objects.count()}")
    print(f"April: billed {recon['billed']}, recognized {recon['recognized']}, rollforward {rf}")
    print(f"peak RSS {rss_mb():.0f} MB")
    if args.accrual:
        seed_usage(args.subscriptions)
        start = time.monotonic()
        result = revrec_close(month=date(2026, 5, 1))
        elapsed = time.monotonic() - start
        print(f"{'close 2026-05 (uninvoiced usage)':32s} {elapsed:7.1f}s  {result}")
        from revrec.models import UsageAccrual
        from django.db.models import Sum

        total = UsageAccrual.objects.filter(month=date(2026, 5, 1)).aggregate(s=Sum("amount"))["s"]
        # graduated: 2 × 1.00 + 1 × 0.50 per subscription
        assert total == Decimal("2.50") * args.subscriptions, total
        assert trial_balance(currency="USD", through=date(2026, 5, 31))["total"] == "0.00"
        print(f"accrued {UsageAccrual.objects.count()} subscriptions, {total} USD; peak RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
