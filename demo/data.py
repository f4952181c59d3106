"""The demo data set: realistic customers, plans, subscriptions and usage, loaded idempotently by
`manage.py seed_demo`, then a billing cycle. Everything goes through the services the API uses.

It contains the seed example of the product brief: API access at 0.004 per call with a 200.00
monthly minimum; Acme signs up on March 5th (anniversary billing) and makes 180,000 calls → its
April 5th invoice is 720.00; Initech makes 40,000 calls → 160.00 usage + 40.00 minimum true-up."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from catalog.models import BillableMetric, Coupon, Plan, TaxRate
from catalog.services import billable_metric_create, coupon_create, plan_create, tax_rate_create
from common.auth import DEMO_PASSWORD_DEFAULT
from customers.models import CreditGrant, Customer
from customers.services import customer_create, prepaid_credit_grant
from demo.analytics import seed_analytics
from demo.intel import seed_intel
from demo.payments import seed_payments
from demo.revrec import demo_revrec_close
from invoicing.billing import billing_run
from invoicing.coupons import coupon_apply
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from usage.services.ingest import event_ingest_batch

DEMO_ADMIN_USERNAME = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
DEMO_ADMIN_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", DEMO_PASSWORD_DEFAULT)

DEMO_CUSTOMERS = [
    dict(external_id="acme", name="Acme Analytics Inc.", currency="USD", email="ops@acme.example",
         billing_email="ap@acme.example", timezone="America/Los_Angeles", country="US", region="CA",
         address="500 Howard St, San Francisco, CA 94105", collection_method="send_invoice", net_terms_days=30),
    dict(external_id="initech", name="Initech Pty Ltd", currency="USD", email="finance@initech.example",
         timezone="Pacific/Auckland", country="NZ", address="1 Queen St, Auckland 1010",
         collection_method="send_invoice", net_terms_days=30),
    dict(external_id="globex", name="Globex GmbH", currency="EUR", email="it@globex.example",
         billing_email="rechnung@globex.example", timezone="Europe/Berlin", country="DE", tax_id="DE123456789",
         address="Friedrichstraße 1, 10117 Berlin", collection_method="send_invoice", net_terms_days=14),
    dict(external_id="hooli", name="Hooli Payments SAS", currency="EUR", email="compta@hooli.example",
         timezone="Europe/Paris", country="FR", address="10 rue de Rivoli, 75001 Paris",
         collection_method="send_invoice", net_terms_days=30),
    dict(external_id="umbrella", name="Umbrella KK", currency="JPY", email="keiri@umbrella.example",
         timezone="Asia/Tokyo", country="JP", address="1-1 Marunouchi, Chiyoda-ku, Tokyo",
         collection_method="send_invoice", net_terms_days=30),
]

DEMO_METRICS = [
    dict(code="api_calls", name="API calls", aggregation="sum", field="calls",
         description="API calls, reported by the gateway in batches"),
    dict(code="storage_gb", name="Peak storage (GB)", aggregation="max", field="gb"),
    dict(code="active_users", name="Monthly active users", aggregation="unique_count", field="user_id"),
    dict(code="payment_volume", name="Payment volume", aggregation="sum", field="amount"),
]

DEMO_PLANS = [
    dict(code="api_access", name="API access", currency="USD", interval="month", amount="0", pay_in_advance=False,
         minimum_commitment="200.00",
         charges=[{"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.004"}}]),
    dict(code="growth", name="Growth", currency="USD", interval="month", amount="49.00", pay_in_advance=True,
         charges=[
             {"billable_metric": "api_calls", "model": "graduated", "properties": {"tiers": [
                 {"up_to": 100000, "unit_amount": "0.002", "flat_amount": "0"},
                 {"up_to": None, "unit_amount": "0.001", "flat_amount": "0"}]}},
             {"billable_metric": "storage_gb", "model": "package",
              "properties": {"package_size": 10, "amount": "2.50", "free_units": 5}},
         ]),
    dict(code="team", name="Team", currency="EUR", interval="month", amount="20.00", pay_in_advance=True,
         charges=[{"billable_metric": "active_users", "model": "volume", "properties": {"tiers": [
             {"up_to": 25, "unit_amount": "8", "flat_amount": "0"},
             {"up_to": 100, "unit_amount": "6", "flat_amount": "0"},
             {"up_to": None, "unit_amount": "4", "flat_amount": "0"}]}}]),
    dict(code="payments", name="Payments", currency="EUR", interval="month", amount="0", pay_in_advance=False,
         charges=[{"billable_metric": "payment_volume", "model": "percentage",
                   "properties": {"rate": "2.9", "fixed_amount": "0.30", "free_units": 0}}]),
    dict(code="tokyo", name="Tokyo Standard", currency="JPY", interval="month", amount="5000", pay_in_advance=True,
         charges=[{"billable_metric": "api_calls", "model": "package",
                   "properties": {"package_size": 10000, "amount": "1000", "free_units": 0}}]),
]


@dataclass(frozen=True)
class DemoSubscription:
    external_id: str
    customer: str
    plan: str
    start: date
    billing_time: str = "calendar"
    quantity: int = 1


DEMO_SUBSCRIPTIONS = [
    DemoSubscription("sub_acme_api", "acme", "api_access", date(2026, 3, 5), "anniversary"),
    DemoSubscription("sub_initech_api", "initech", "api_access", date(2026, 3, 5), "anniversary"),
    DemoSubscription("sub_acme_growth", "acme", "growth", date(2026, 7, 14), "calendar", 3),
    DemoSubscription("sub_globex_team", "globex", "team", date(2026, 6, 10), "calendar", 5),
    DemoSubscription("sub_hooli_payments", "hooli", "payments", date(2026, 8, 1), "calendar"),
    DemoSubscription("sub_umbrella_tokyo", "umbrella", "tokyo", date(2026, 9, 1), "calendar"),
]


def demo_admin_ensure() -> None:
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True})
    if created:
        user.set_password(DEMO_ADMIN_PASSWORD)
        user.save()
    viewer, created = User.objects.get_or_create(username="viewer", defaults={"is_staff": True})
    if created:
        viewer.set_password(DEMO_ADMIN_PASSWORD)
        viewer.save()
        viewer.groups.add(Group.objects.get(name="finance-viewer"))


def demo_catalog_ensure() -> None:
    for data in DEMO_METRICS:
        if not BillableMetric.objects.filter(code=data["code"]).exists():
            billable_metric_create(actor="seed_demo", **data)
    for data in DEMO_PLANS:
        if not Plan.objects.filter(code=data["code"]).exists():
            plan_create(actor="seed_demo", **{**data, "amount": Decimal(data["amount"]),
                                              "minimum_commitment": Decimal(data["minimum_commitment"])
                                              if data.get("minimum_commitment") else None})


DEMO_TAX_RATES = [
    dict(name="TVA France", country="FR", rate="20"),
    dict(name="Mehrwertsteuer", country="DE", rate="19"),
    dict(name="Consumption tax", country="JP", rate="10"),
]


def demo_taxes_and_credits_ensure(customers: dict[str, Customer]) -> None:
    """Tax rates (Globex is EU B2B with a VAT id: reverse charge), a launch coupon for Hooli and
    prepaid credit for Umbrella, so the demo invoices show each step of lines → coupons → tax →
    credit balance → prepaid credits. Acme and Initech stay untaxed: they carry the seed example."""
    for data in DEMO_TAX_RATES:
        if not TaxRate.objects.filter(name=data["name"], country=data["country"]).exists():
            tax_rate_create(actor="seed_demo", **{**data, "rate": Decimal(data["rate"])})
    if not Coupon.objects.filter(code="LAUNCH20").exists():
        coupon = coupon_create(code="LAUNCH20", name="Launch offer: 20% off for 3 months", kind="percent",
                               percent_off=Decimal("20"), duration="repeating", duration_periods=3, actor="seed_demo")
        coupon_apply(coupon=coupon, customer=customers["hooli"], on=date(2026, 8, 1), actor="seed_demo")
    if not CreditGrant.objects.filter(customer=customers["umbrella"]).exists():
        prepaid_credit_grant(customer=customers["umbrella"], currency="JPY", amount=Decimal("10000"),
                             reason="Prepaid onboarding package", actor="seed_demo")


def demo_customers_ensure() -> dict[str, Customer]:
    out = {}
    for data in DEMO_CUSTOMERS:
        existing = Customer.objects.filter(external_id=data["external_id"]).first()
        out[data["external_id"]] = existing or customer_create(actor="seed_demo", **data)
    return out


def demo_subscriptions_ensure(customers: dict[str, Customer], today: date) -> None:
    for demo in DEMO_SUBSCRIPTIONS:
        if not Subscription.objects.filter(external_id=demo.external_id).exists():
            subscription_create(external_id=demo.external_id, customer=customers[demo.customer], plan_code=demo.plan,
                                start_date=demo.start, billing_time=demo.billing_time, quantity=demo.quantity,
                                today=today, actor="seed_demo")


def _at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour % 24), tzinfo=timezone.utc).isoformat()


def _days(start: date, end: date):
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)


def demo_events(today: date) -> list[dict]:
    """Deterministic events (fixed transaction ids), so reloading the demo only finds duplicates."""
    rng = random.Random(20260305)
    events: list[dict] = []

    def add(tid, sub, code, day, hour, **props):
        events.append({"transaction_id": tid, "subscription": sub, "code": code, "timestamp": _at(day, hour),
                       "properties": props})

    # Seed example: 180,000 calls for Acme and 40,000 for Initech in [Mar 5, Apr 5), reported 1,000 at a time,
    # at 12:00 UTC on days well inside the period in both customers' time zones.
    for i in range(180):
        add(f"acme-mar-{i}", "sub_acme_api", "api_calls", date(2026, 3, 6) + timedelta(days=i % 28), 12, calls=1000)
    for i in range(40):
        add(f"initech-mar-{i}", "sub_initech_api", "api_calls", date(2026, 3, 6) + timedelta(days=i % 28), 12, calls=1000)
    # Later months: Acme keeps calling (varying volume); Initech tails off.
    for day in _days(date(2026, 4, 6), today - timedelta(days=1)):
        add(f"acme-{day}", "sub_acme_api", "api_calls", day, 18, calls=rng.randint(1500, 9000))
        if day.day % 3 == 0:
            add(f"initech-{day}", "sub_initech_api", "api_calls", day, 2, calls=rng.randint(500, 2500))
    for day in _days(date(2026, 7, 14), today - timedelta(days=1)):
        add(f"acme-growth-{day}", "sub_acme_growth", "api_calls", day, 20, calls=rng.randint(2000, 6000))
        add(f"acme-storage-{day}", "sub_acme_growth", "storage_gb", day, 20, gb=str(Decimal(40 + day.toordinal() % 30)))
    for day in _days(date(2026, 6, 10), today - timedelta(days=1)):
        for user in rng.sample(range(60), 12):
            add(f"globex-{day}-{user}", "sub_globex_team", "active_users", day, 9, user_id=f"u{user:03d}")
    for day in _days(date(2026, 8, 1), today - timedelta(days=1)):
        for n in range(3):
            cents = rng.randint(1500, 250000)
            add(f"hooli-{day}-{n}", "sub_hooli_payments", "payment_volume", day, 10 + n,
                amount=str(Decimal(cents).scaleb(-2)))
    for day in _days(date(2026, 9, 1), today - timedelta(days=1)):
        add(f"umbrella-{day}", "sub_umbrella_tokyo", "api_calls", day, 3, calls=rng.randint(500, 4000))
    return events


def demo_usage_ingest(today: date) -> dict:
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    events = demo_events(today)
    for offset in range(0, len(events), 1000):
        result = event_ingest_batch(events=events[offset:offset + 1000])
        totals["accepted"] += result.accepted
        totals["duplicates"] += result.duplicates
        totals["rejected"] += len(result.rejected)
    return totals


def seed_demo(*, today: date | None = None, bill: bool = True) -> dict:
    today = today or date.today()
    with transaction.atomic():
        demo_admin_ensure()
        demo_catalog_ensure()
        customers = demo_customers_ensure()
        demo_taxes_and_credits_ensure(customers)
        demo_subscriptions_ensure(customers, today)
    usage = demo_usage_ingest(today)
    summary = {"customers": len(customers), "subscriptions": len(DEMO_SUBSCRIPTIONS), **{f"events {k}": v for k, v in usage.items()}}
    if bill:
        run = billing_run(as_of=today, actor="seed_demo")
        summary["invoices created by the billing run"] = run.invoices_created

        summary.update({f"payments: {k}": v for k, v in seed_payments().items()})

    summary.update(seed_analytics(today=today, bill=bill))

    summary.update(seed_intel(today=today, bill=bill))
    if bill:
        summary.update(demo_revrec_close(today))  # after every area that bills: closes the demo's months
    # Each later area (payments, dunning, revenue, analytics, ...) seeds its part in its own module
    # `demo/<area>.py`, called from here after the billing cycle, and adds its counts to `summary`.
    return summary
