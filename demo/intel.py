"""Demo usage intelligence (DESIGN.md §12): one metered customer, Lumen Mapping, with three months of
daily API usage split by team (a weekly pattern: busy weekdays, quiet weekends, ±8 % noise), so the
back office shows every part of it:
- two injected spikes. The first (about 4 × a weekday, in the second month) held that month's draft;
  finance dismissed it ("planned load test") and approved the invoice: a dismissed anomaly, and its
  pattern remembered. The second (about 8 × a weekday, in the last closed month) is real: its
  draft waits in the review queue with the open anomaly (observed, expected, score) as its reason;
- two threshold alerts on the open period: a units alert that has fired (a `usage.threshold_crossed`
  audit event / webhook) and an amount alert still below its threshold;
- the open period's forecast crosses the plan's next tier (graduated), and each usage line can be
  split by the `team` property (allocation).
Pricing simulations are computed on request, not stored: nothing to seed.

Deterministic (fixed seed and transaction ids, dates relative to `today`) and idempotent: a second
call finds the customer and does nothing. Everything goes through the services the API uses."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from analytics.mrr import add_months, month_start

CUSTOMER = "in_lumen"
SUBSCRIPTION = "in_lumen_api"
PLAN = "in_metered_api"
METRIC = "api_calls"  # demo/data.py's metric: sum of the `calls` property
TEAMS = ("platform", "data", "mobile")
ACTOR = "seed_demo"
LOAD_TEST_FACTOR, SPIKE_FACTOR = 4, 8


def _weekday_on_or_after(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _events(start: date, end: date, spikes: dict[date, int]) -> list[dict]:
    rng = random.Random(20261126)
    events = []
    day = start
    while day < end:
        level = 1100 if day.weekday() < 5 else 350
        calls = round(level * rng.uniform(0.92, 1.08)) * spikes.get(day, 1)
        shares = (calls // 2, calls // 3, calls - calls // 2 - calls // 3)  # platform, data, mobile
        for team, n in zip(TEAMS, shares):
            stamp = datetime.combine(day, time(12), tzinfo=timezone.utc).isoformat()
            events.append({"transaction_id": f"{SUBSCRIPTION}-{day.isoformat()}-{team}", "subscription": SUBSCRIPTION,
                           "code": METRIC, "timestamp": stamp, "properties": {"calls": n, "team": team}})
        day += timedelta(days=1)
    return events


def seed_intel(*, today: date, bill: bool = True) -> dict:
    from analytics.alerts import usage_alert_create, usage_alerts_evaluate
    from analytics.anomalies import anomaly_dismiss
    from analytics.models import Anomaly, AnomalyStatus
    from catalog.models import BillableMetric, Plan
    from catalog.services import billable_metric_create, plan_create
    from customers.models import Customer
    from customers.services import customer_create
    from subscriptions.services import subscription_create
    from usage.services.ingest import event_ingest_batch

    if Customer.objects.filter(external_id=CUSTOMER).exists():
        return {"intelligence demo customers": 0}
    if not BillableMetric.objects.filter(code=METRIC).exists():
        billable_metric_create(code=METRIC, name="API calls", aggregation="sum", field="calls", actor=ACTOR)
    if not Plan.objects.filter(code=PLAN).exists():
        plan_create(code=PLAN, name="Metered API (tiered)", currency="USD", interval="month", amount=Decimal("49.00"),
                    pay_in_advance=False, actor=ACTOR, charges=[{
                        "billable_metric": METRIC, "model": "graduated", "properties": {"tiers": [
                            {"up_to": 30000, "unit_amount": "0.002", "flat_amount": "0"},
                            {"up_to": None, "unit_amount": "0.0015", "flat_amount": "0"}]}}])
    base = add_months(month_start(today), -3)
    customer = customer_create(external_id=CUSTOMER, name="Lumen Mapping", currency="USD", country="US",
                               email="billing@lumen.example", collection_method="send_invoice", net_terms_days=30,
                               actor=ACTOR)
    sub = subscription_create(external_id=SUBSCRIPTION, customer=customer, plan_code=PLAN, start_date=base, today=base,
                              actor=ACTOR)
    load_test = _weekday_on_or_after(add_months(base, 1) + timedelta(days=17))
    spike = _weekday_on_or_after(add_months(base, 2) + timedelta(days=19))
    events = _events(base, today, {load_test: LOAD_TEST_FACTOR, spike: SPIKE_FACTOR})
    now = datetime.combine(today, time(), tzinfo=timezone.utc)
    for offset in range(0, len(events), 1000):
        event_ingest_batch(events=events[offset:offset + 1000], now=now)
    summary = {"intelligence demo customers": 1, "intelligence usage events": len(events)}
    if bill:
        from invoicing.billing import billing_run
        from invoicing.models import Invoice
        from invoicing.services import invoice_approve

        for k in (1, 2, 3):  # one run per month end, as the beat would have done
            billing_run(as_of=add_months(base, k), actor=ACTOR, subscription_ids=[sub.pk])
            if k == 2:  # finance reviews the load test: normal, dismissed; the held invoice approved
                for anomaly in Anomaly.objects.filter(subscription=sub, status=AnomalyStatus.OPEN, date=load_test):
                    anomaly_dismiss(anomaly=anomaly, actor="finance:demo",
                                    note="Planned load test announced by the customer; expected.")
                for invoice in Invoice.objects.filter(subscription=sub, needs_review=True, status="draft"):
                    invoice_approve(invoice=invoice, actor="finance:demo")
        summary["intelligence anomalies (open / dismissed)"] = "{} / {}".format(
            Anomaly.objects.filter(subscription=sub, status=AnomalyStatus.OPEN).count(),
            Anomaly.objects.filter(subscription=sub, status=AnomalyStatus.DISMISSED).count())
    # Alerts on the open period: 5,000 calls (crossed once the month has about a week of usage) and
    # 500.00 of usage (far above the month's forecast).
    usage_alert_create(subscription=sub, billable_metric_code=METRIC, threshold_units=Decimal(5000), actor=ACTOR)
    usage_alert_create(subscription=sub, billable_metric_code=METRIC, threshold_amount=Decimal("500.00"), actor=ACTOR)
    summary["intelligence alerts fired"] = usage_alerts_evaluate(now=now, subscription_ids=[sub.pk])
    return summary
