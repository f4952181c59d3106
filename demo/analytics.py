"""Demo data for finance analytics: 16 months of subscription history with every MRR movement
(new, expansion, contraction, churn, reactivation; trials, a yearly plan, a weekly plan, a forever
coupon, downgrades and cancellations at period end, EUR beside USD) and monthly metered usage with
trend and seasonality, so the bridge, cohorts, AR aging and the forecast back-test have something
to show. Everything goes through the services the API uses: the MRR ledger fills itself through
the domain events; the billing run invoices the usage; most old invoices are paid.

Dates are relative to `today` (month 0 is 16 months before the current month). Idempotent: a
second call finds the customers and does nothing."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.db import transaction

from analytics.mrr import add_months, month_start
from catalog.models import Coupon, Plan
from catalog.services import coupon_create, plan_create
from customers.models import Customer
from customers.services import customer_create
from invoicing.billing import billing_run
from invoicing.coupons import coupon_apply
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import invoice_mark_paid, invoice_mark_uncollectible
from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.services import (subscription_activate, subscription_apply_pending_changes, subscription_cancel,
                                    subscription_change_plan, subscription_change_quantity, subscription_create)
from usage.services.ingest import event_ingest_batch

HISTORY_MONTHS = 16
USD, EUR = "USD", "EUR"

PLANS = [
    dict(code="an_starter", name="Starter", currency=USD, interval="month", amount="29.00"),
    dict(code="an_pro", name="Pro", currency=USD, interval="month", amount="99.00"),
    dict(code="an_business", name="Business", currency=USD, interval="month", amount="299.00"),
    dict(code="an_annual", name="Enterprise (yearly)", currency=USD, interval="year", amount="2400.00"),
    dict(code="an_weekly", name="Weekly pass", currency=USD, interval="week", amount="12.00"),
    dict(code="an_eu_pro", name="Pro (EUR)", currency=EUR, interval="month", amount="79.00"),
    dict(code="an_metered", name="Metered API", currency=USD, interval="month", amount="0", pay_in_advance=False,
         charges=[{"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.002"}}]),
]

CUSTOMERS = [
    ("an_alpine", "Alpine Robotics", USD), ("an_birch", "Birch & Co", USD), ("an_cedar", "Cedar Health", USD),
    ("an_delta", "Delta Freight", USD), ("an_elm", "Elm Studio", USD), ("an_fjord", "Fjord Labs", USD),
    ("an_grove", "Grove Markets", USD), ("an_harbor", "Harbor Legal", USD), ("an_iris", "Iris Optics", USD),
    ("an_juniper", "Juniper Schools", USD), ("an_kestrel", "Kestrel Air", USD), ("an_linden", "Linden Bank", USD),
    ("an_maple", "Maple Foods", USD), ("an_nova", "Nova Energy", USD),
    ("an_oslo", "Oslo Fisk AS", EUR), ("an_porto", "Porto Vinhos Lda", EUR),
]

# (customer, subscription, action, month, day, options) — in date order per subscription.
STORY = [
    ("an_alpine", "an_alpine_1", "create", 0, 5, dict(plan="an_starter", quantity=2)),
    ("an_alpine", "an_alpine_1", "plan", 3, 12, dict(plan="an_pro")),                       # expansion
    ("an_alpine", "an_alpine_1", "seats", 6, 3, dict(quantity=4)),                          # expansion
    ("an_birch", "an_birch_1", "create", 0, 10, dict(plan="an_pro")),
    ("an_birch", "an_birch_1", "plan", 4, 20, dict(plan="an_starter")),                     # contraction (period end)
    ("an_birch", "an_birch_1", "cancel", 8, 15, dict(at="period_end")),                     # churn
    ("an_birch", "an_birch_2", "create", 11, 7, dict(plan="an_starter")),                   # reactivation
    ("an_cedar", "an_cedar_1", "create", 1, 1, dict(plan="an_business")),
    ("an_cedar", "an_cedar_1", "cancel", 5, 18, dict(at="immediately")),                    # churn
    ("an_delta", "an_delta_1", "create", 1, 15, dict(plan="an_annual", coupon="AN_PARTNER15")),  # yearly, forever coupon
    ("an_elm", "an_elm_1", "create", 2, 20, dict(plan="an_pro", quantity=3, trial_days=14)),  # trial, then new
    ("an_elm", "an_elm_1", "seats", 7, 10, dict(quantity=2)),                               # contraction (period end)
    ("an_fjord", "an_fjord_1", "create", 4, 25, dict(plan="an_starter", trial_days=14)),
    ("an_fjord", "an_fjord_1", "cancel", 5, 2, dict(at="immediately")),                     # canceled in trial: no MRR
    ("an_grove", "an_grove_1", "create", 2, 3, dict(plan="an_weekly", quantity=2)),
    ("an_harbor", "an_harbor_1", "create", 3, 1, dict(plan="an_business", quantity=2)),
    ("an_iris", "an_iris_1", "create", 5, 8, dict(plan="an_pro")),
    ("an_iris", "an_iris_1", "plan", 9, 14, dict(plan="an_business")),                      # expansion
    ("an_iris", "an_iris_1", "plan", 12, 2, dict(plan="an_pro")),                           # contraction (period end)
    ("an_juniper", "an_juniper_1", "create", 6, 1, dict(plan="an_starter", quantity=3)),
    ("an_juniper", "an_juniper_1", "cancel", 10, 20, dict(at="period_end")),                # churn
    ("an_kestrel", "an_kestrel_1", "create", 8, 11, dict(plan="an_pro", quantity=2)),
    ("an_linden", "an_linden_1", "create", 10, 4, dict(plan="an_business")),
    ("an_linden", "an_linden_1", "seats", 12, 9, dict(quantity=2)),                         # expansion
    ("an_maple", "an_maple_1", "create", 12, 16, dict(plan="an_starter")),
    ("an_nova", "an_nova_1", "create", 13, 3, dict(plan="an_pro")),
    ("an_oslo", "an_oslo_1", "create", 0, 12, dict(plan="an_eu_pro", quantity=2)),
    ("an_oslo", "an_oslo_1", "seats", 7, 1, dict(quantity=3)),                              # expansion (EUR)
    ("an_porto", "an_porto_1", "create", 4, 9, dict(plan="an_eu_pro")),
    ("an_porto", "an_porto_1", "cancel", 9, 3, dict(at="period_end")),                      # churn (EUR)
]

# Metered usage: (customer, first month, monthly calls at month 0, monthly growth).
METERED = [
    ("an_alpine", 0, 180_000, 0.03), ("an_delta", 1, 400_000, 0.02),
    ("an_grove", 2, 60_000, 0.05), ("an_harbor", 3, 250_000, 0.01), ("an_iris", 5, 120_000, 0.04),
]
SLOW_PAYERS = ("an_kestrel", "an_harbor")
WRITTEN_OFF = "an_cedar"


def _day(base: date, month: int, day: int) -> date:
    return add_months(base, month).replace(day=day)


def _ensure_catalog(actor: str) -> None:
    for data in PLANS:
        if not Plan.objects.filter(code=data["code"]).exists():
            plan_create(actor=actor, **{**data, "amount": Decimal(data["amount"])})
    if not Coupon.objects.filter(code="AN_PARTNER15").exists():
        coupon_create(code="AN_PARTNER15", name="Partner discount 15%", kind="percent", percent_off=Decimal("15"),
                      duration="forever", actor=actor)


def _apply_story(customers: dict, base: date, actor: str) -> list[int]:
    ids = []
    for customer_id, sub_id, action, month, day, opts in STORY:
        on = _day(base, month, day)
        customer = customers[customer_id]
        if action == "create":
            sub = subscription_create(external_id=sub_id, customer=customer, plan_code=opts["plan"], start_date=on, today=on,
                                      quantity=opts.get("quantity", 1), trial_days=opts.get("trial_days"), actor=actor)
            ids.append(sub.pk)
            if opts.get("coupon"):
                coupon_apply(coupon=Coupon.objects.get(code=opts["coupon"]), customer=customer, on=on, actor=actor)
            if sub.trial_end_date and sub.status == SubscriptionStatus.TRIALING and sub_id != "an_fjord_1":
                subscription_activate(subscription=sub, on=sub.trial_end_date, today=sub.trial_end_date, actor=actor)
            continue
        sub = Subscription.objects.get(external_id=sub_id)
        if action == "plan":
            result = subscription_change_plan(subscription=sub, plan_code=opts["plan"], on=on, today=on, actor=actor)
        elif action == "seats":
            result = subscription_change_quantity(subscription=sub, quantity=opts["quantity"], on=on, today=on, actor=actor)
        else:
            result = subscription_cancel(subscription=sub, at=opts["at"], on=on, today=on, actor=actor)
        if not result.applied:  # scheduled at period end: the billing run would apply it on that day
            subscription_apply_pending_changes(subscription=sub, on=result.change.effective_date, actor=actor)
    return ids


def _metered(customers: dict, base: date, actor: str) -> tuple[list[int], list[dict]]:
    rng = random.Random(16)
    ids, events = [], []
    for customer_id, first, calls, growth in METERED:
        sub_id = f"{customer_id}_metered"
        sub = subscription_create(external_id=sub_id, customer=customers[customer_id], plan_code="an_metered",
                                  start_date=_day(base, first, 1), today=_day(base, first, 1), actor=actor)
        ids.append(sub.pk)
        for month in range(first, HISTORY_MONTHS):
            service = add_months(base, month)
            season = 1 + 0.2 * math.sin(2 * math.pi * (service.month - 3) / 12)
            volume = int(calls * (1 + growth) ** (month - first) * season * rng.uniform(0.92, 1.08))
            for part, day in enumerate((5, 15, 25)):
                stamp = datetime.combine(service.replace(day=day), time(12), tzinfo=timezone.utc).isoformat()
                events.append({"transaction_id": f"{sub_id}-{service:%Y-%m}-{part}", "subscription": sub_id,
                               "code": "api_calls", "timestamp": stamp, "properties": {"calls": volume // 3}})
    return ids, events


def _collect(today: date, actor: str) -> dict:
    """Most invoices get paid; two customers pay late; one invoice is written off."""
    invoices = Invoice.objects.filter(customer__external_id__startswith="an_", status=InvoiceStatus.FINALIZED, amount_due__gt=0)
    paid = 0
    for invoice in invoices.order_by("issue_date", "pk"):
        slow = invoice.customer.external_id in SLOW_PAYERS
        horizon = today - timedelta(days=120 if slow else 25)
        if invoice.customer.external_id == WRITTEN_OFF and invoice.due_date and invoice.due_date < today - timedelta(days=150):
            invoice_mark_uncollectible(invoice=invoice, actor=actor, reason="demo: customer went out of business")
            continue
        if invoice.due_date and invoice.due_date < horizon:
            paid_on = min(invoice.due_date + timedelta(days=3), today)
            invoice_mark_paid(invoice=invoice, paid_on=paid_on, reference=f"demo-{invoice.number}", actor=actor)
            paid += 1
    return {"paid": paid}


def seed_analytics(*, today: date, bill: bool = True, actor: str = "seed_demo") -> dict:
    if Customer.objects.filter(external_id=CUSTOMERS[0][0]).exists():
        return {"analytics demo customers": 0}
    base = add_months(month_start(today), -HISTORY_MONTHS)
    with transaction.atomic():
        _ensure_catalog(actor)
        customers = {ext: customer_create(external_id=ext, name=name, currency=currency, actor=actor,
                                          email=f"billing@{ext[3:]}.example", country="US" if currency == USD else "PT",
                                          collection_method="send_invoice", net_terms_days=30)
                     for ext, name, currency in CUSTOMERS}
        ids = _apply_story(customers, base, actor)
        metered_ids, events = _metered(customers, base, actor)
    for offset in range(0, len(events), 1000):
        event_ingest_batch(events=events[offset:offset + 1000])
    summary = {"analytics demo customers": len(customers), "analytics usage events": len(events)}
    if bill:
        # One run per month, as the hourly beat would have done: each invoice is issued on its own
        # run's date (DESIGN.md §6), so the history has real due dates and ages.
        created, as_of = 0, add_months(base, 1)
        while as_of < today:
            created += billing_run(as_of=as_of, actor=actor, subscription_ids=ids + metered_ids).invoices_created
            as_of = add_months(as_of, 1)
        created += billing_run(as_of=today, actor=actor, subscription_ids=ids + metered_ids).invoices_created
        summary["analytics invoices"] = created
        summary["analytics invoices paid"] = _collect(today, actor)["paid"]
    return summary
