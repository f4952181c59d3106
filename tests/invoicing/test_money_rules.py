"""Issue 11: money defects found by the acceptance scenarios, each with hand-computed amounts
(DESIGN.md §3–§6): late usage vs the minimum commitment, repeated late batches, repeating coupons
count periods, credits of what was charged, live usage of per-event percentage charges, catch-up
runs without a cap, late attribution to ended subscriptions, issue dates, the review spike rule."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from catalog.services import billable_metric_create, coupon_create, plan_create
from customers.services import customer_create
from invoicing.billing import billing_run
from invoicing.coupons import coupon_apply
from invoicing.models import CouponRedemption, Invoice, InvoiceLine
from invoicing.services import invoice_finalize
from subscriptions.services import subscription_cancel, subscription_change_plan, subscription_create
from usage.live import subscription_usage_current
from usage.models import UsageEvent
from usage.partitioning import forget_known_partitions
from usage.services.ingest import event_ingest_batch

pytestmark = pytest.mark.django_db
_tid = itertools.count()


@pytest.fixture(autouse=True)
def _partitions():
    forget_known_partitions()
    yield
    forget_known_partitions()


def _setup(*, aggregation="count", field="", model="standard", props=None, amount="0", in_advance=False,
           minimum=None, start=date(2026, 1, 1), interval="month", customer="c1", sub="s1", grace=0, net_terms=0):
    if not _metric_exists("m"):
        billable_metric_create(code="m", name="M", aggregation=aggregation, field=field)
    plan_create(code=f"p-{sub}", name="P", currency="USD", interval=interval, amount=Decimal(amount),
                pay_in_advance=in_advance, minimum_commitment=minimum,
                charges=[{"billable_metric": "m", "model": model, "properties": props or {"unit_amount": "1.00"}}])
    cust = _customer(customer, grace=grace, net_terms=net_terms)
    return subscription_create(external_id=sub, customer=cust, plan_code=f"p-{sub}", start_date=start, today=start)


def _metric_exists(code):
    from catalog.models import BillableMetric

    return BillableMetric.objects.filter(code=code).exists()


def _customer(external_id, *, grace=0, net_terms=0):
    from customers.models import Customer

    existing = Customer.objects.filter(external_id=external_id).first()
    return existing or customer_create(external_id=external_id, name=external_id.upper(), currency="USD",
                                       timezone="UTC", invoice_grace_period_days=grace, net_terms_days=net_terms)


def _post(events, *, sub="s1", customer=None):
    """events: [(datetime, properties)] → all accepted."""
    body = []
    for ts, props in events:
        item = {"transaction_id": f"t{next(_tid)}", "code": "m", "timestamp": ts.isoformat(), "properties": props}
        if customer:
            item["customer"] = customer
        else:
            item["subscription"] = sub
        body.append(item)
    result = event_ingest_batch(events=body)
    assert not result.rejected, result.rejected


def _jan(day, hour=12, minute=0):
    return datetime(2026, 1, day, hour, minute, tzinfo=timezone.utc)


def _units(n, day=5):
    return [(_jan(day, 10, i % 60), {}) for i in range(n)]


def _late_lines(sub):
    return list(InvoiceLine.objects.filter(invoice__subscription=sub, kind="late_usage").order_by("invoice__billing_date")
                .values_list("quantity", "amount"))


def _lines(invoice):
    return sorted((line.kind, line.amount) for line in invoice.lines.all())


# --- 1. late usage counts toward the minimum commitment -------------------------------------------

@pytest.mark.parametrize("late, expected", [(50, "0.00"), (250, "50.00")])
def test_late_usage_is_billed_only_above_the_true_up_already_charged(late, expected):
    sub = _setup(minimum=Decimal(300))
    _post(_units(100))
    billing_run(as_of=date(2026, 2, 1))
    jan = Invoice.objects.get(subscription=sub, billing_date=date(2026, 2, 1))
    assert _lines(jan) == [("minimum_commitment", Decimal("200.00")), ("usage", Decimal("100.00"))]
    _post(_units(late, day=20))
    billing_run(as_of=date(2026, 3, 1))
    # max(300, 100 + late) − max(300, 100): +50 → 0.00, +250 → 350 − 300 = 50.00
    assert _late_lines(sub) == [(Decimal(late), Decimal(expected))]


def test_two_late_batches_against_the_minimum():
    sub = _setup(minimum=Decimal(300))
    _post(_units(100))
    billing_run(as_of=date(2026, 2, 1))
    _post(_units(50, day=20))
    billing_run(as_of=date(2026, 3, 1))
    _post(_units(250, day=21))
    billing_run(as_of=date(2026, 4, 1))
    # 150 billed so far (max 300); 400 now: 400 − 300 = 100.00
    assert _late_lines(sub) == [(Decimal(50), Decimal("0.00")), (Decimal(250), Decimal("100.00"))]


def test_late_usage_against_a_prorated_minimum():
    # Calendar billing from Jan 17: the first period is 15 of 31 days; minimum 300 × 15/31 = 145.16.
    sub = _setup(minimum=Decimal(300), start=date(2026, 1, 17))
    _post(_units(100, day=20))
    billing_run(as_of=date(2026, 2, 1))
    jan = Invoice.objects.get(subscription=sub, billing_date=date(2026, 2, 1))
    assert _lines(jan) == [("minimum_commitment", Decimal("45.16")), ("usage", Decimal("100.00"))]
    _post(_units(60, day=25))
    billing_run(as_of=date(2026, 3, 1))
    assert _late_lines(sub) == [(Decimal(60), Decimal("14.84"))]  # 160 − 145.16


# --- 2. a second late batch never re-bills the first ----------------------------------------------

def test_unique_users_across_late_batches():
    sub = _setup(aggregation="unique_count", field="user", props={"unit_amount": "5.00"})
    _post([(_jan(3), {"user": "u1"})])
    billing_run(as_of=date(2026, 2, 1))
    _post([(_jan(10), {"user": "u2"})])
    billing_run(as_of=date(2026, 3, 1))
    _post([(_jan(12), {"user": "u3"}), (_jan(13), {"user": "u2"})])
    billing_run(as_of=date(2026, 4, 1))
    # 3 users × 5.00 = 15.00 in all: 5.00 on time, then one new user per late batch
    assert _late_lines(sub) == [(Decimal(1), Decimal("5.00")), (Decimal(1), Decimal("5.00"))]


def test_max_across_late_batches():
    sub = _setup(aggregation="max", field="value")
    _post([(_jan(3), {"value": 10})])
    billing_run(as_of=date(2026, 2, 1))
    _post([(_jan(10), {"value": 15})])
    billing_run(as_of=date(2026, 3, 1))
    _post([(_jan(12), {"value": 20})])
    billing_run(as_of=date(2026, 4, 1))
    # 10 → 15 → 20 at 1.00: 10.00 + 5.00 + 5.00 = 20.00
    assert _late_lines(sub) == [(Decimal(5), Decimal("5.00")), (Decimal(5), Decimal("5.00"))]


def test_percentage_with_a_free_event_across_late_batches():
    sub = _setup(aggregation="sum", field="value", model="percentage", props={"rate": "10", "free_units": "1"})
    _post([(_jan(10), {"value": 100})])
    billing_run(as_of=date(2026, 2, 1))  # the only event is free: 0.00
    _post([(_jan(20), {"value": 50})])
    billing_run(as_of=date(2026, 3, 1))  # [100 free, 50]: 5.00
    _post([(_jan(2), {"value": 20})])
    billing_run(as_of=date(2026, 4, 1))
    # [20 free, 100, 50] = 15.00 in all; 5.00 billed so far → 10.00
    assert _late_lines(sub) == [(Decimal(50), Decimal("5.00")), (Decimal(20), Decimal("10.00"))]


# --- 3. repeating coupons count billing periods ---------------------------------------------------

def test_upgrade_invoice_does_not_use_a_coupon_period(django_capture_on_commit_callbacks):
    sub = _setup(amount="100", in_advance=True)
    plan_create(code="pro", name="Pro", currency="USD", interval="month", amount=Decimal(250))
    coupon = coupon_create(code="TEN2", name="10% for 2 periods", kind="percent", percent_off=Decimal(10),
                           duration="repeating", duration_periods=2)
    coupon_apply(coupon=coupon, customer=sub.customer)
    billing_run(as_of=date(2026, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_date=date(2026, 1, 1))
    assert (jan.subtotal, jan.discount, jan.total) == (Decimal("100.00"), Decimal("10.00"), Decimal("90.00"))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_change_plan(subscription=sub, plan_code="pro", on=date(2026, 1, 16), today=date(2026, 1, 16))
    upgrade = Invoice.objects.get(subscription=sub, billing_date=date(2026, 1, 16))
    # Credit: 16 of 31 days of the 90.00 actually charged, 100 × 16/31 × 0.9 = −46.45 (not discounted
    # again); charge 250 × 16/31 = 129.03, 10 % off = 12.90: 82.58 − 12.90 = 69.68. No period used.
    assert _lines(upgrade) == [("proration", Decimal("-46.45")), ("proration", Decimal("129.03")),
                               ("usage", Decimal("0.00"))]
    assert (upgrade.subtotal, upgrade.discount, upgrade.total) == (Decimal("82.58"), Decimal("12.90"), Decimal("69.68"))
    assert CouponRedemption.objects.get().periods_applied == 1
    billing_run(as_of=date(2026, 2, 1))
    feb = Invoice.objects.get(subscription=sub, billing_date=date(2026, 2, 1))
    assert (feb.subtotal, feb.total) == (Decimal("250.00"), Decimal("225.00"))
    billing_run(as_of=date(2026, 3, 1))
    mar = Invoice.objects.get(subscription=sub, billing_date=date(2026, 3, 1))
    assert (mar.discount, mar.total) == (Decimal("0.00"), Decimal("250.00"))
    redemption = CouponRedemption.objects.get()
    assert (redemption.periods_applied, redemption.is_active) == (2, False)


# --- 4. credits return what was charged; nothing for a fee never billed ----------------------------

def test_cancel_credit_is_net_of_the_discount(django_capture_on_commit_callbacks):
    sub = _setup(amount="66", in_advance=True)
    coupon = coupon_create(code="HALF", name="50% off", kind="percent", percent_off=Decimal(50), duration="forever")
    coupon_apply(coupon=coupon, customer=sub.customer)
    billing_run(as_of=date(2026, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_date=date(2026, 1, 1))
    assert (jan.subtotal, jan.discount, jan.total) == (Decimal("66.00"), Decimal("33.00"), Decimal("33.00"))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(subscription=sub, at="immediately", on=date(2026, 1, 12), today=date(2026, 1, 12))
    final = Invoice.objects.get(subscription=sub, billing_date=date(2026, 1, 12))
    # 20 of 31 days unused: 66 × 20/31 = 42.58 nominal; half of it was charged → 21.29
    assert ("proration", Decimal("-21.29")) in _lines(final)
    assert final.total == Decimal("-21.29")


def test_cancel_before_the_first_fee_was_billed_charges_the_days_used(django_capture_on_commit_callbacks):
    sub = _setup(amount="100", in_advance=True, start=date(2026, 11, 10))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(subscription=sub, at="immediately", on=date(2026, 11, 26), today=date(2026, 11, 26))
    final = Invoice.objects.get(subscription=sub)
    # Nov 10–26: 16 of November's 30 days × 100 = 53.33; no credit
    assert _lines(final) == [("subscription", Decimal("53.33")), ("usage", Decimal("0.00"))]
    assert (final.period_start, final.period_end, final.total) == (date(2026, 11, 10), date(2026, 11, 26),
                                                                    Decimal("53.33"))
    billing_run(as_of=date(2026, 12, 1))
    assert Invoice.objects.filter(subscription=sub).count() == 1


def test_upgrade_then_cancel_before_any_run_bills_each_plan_for_its_days(django_capture_on_commit_callbacks):
    sub = _setup(amount="100", in_advance=True, start=date(2026, 4, 1))
    plan_create(code="pro", name="Pro", currency="USD", interval="month", amount=Decimal(300))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_change_plan(subscription=sub, plan_code="pro", on=date(2026, 4, 11), today=date(2026, 4, 11))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(subscription=sub, at="immediately", on=date(2026, 4, 21), today=date(2026, 4, 21))
    billing_run(as_of=date(2026, 5, 1))
    # Old plan Apr 1–11: 100 × 10/30 = 33.33; new plan Apr 11–21: 300 × 10/30 = 100.00 → 133.33, as
    # April's fee 100.00 − 66.67 (old unused) + 200.00 (new remaining) − 100.00 (new unused).
    amounts = sorted(InvoiceLine.objects.filter(invoice__subscription=sub).exclude(amount=0)
                     .values_list("amount", flat=True))
    assert amounts == [Decimal("-100.00"), Decimal("-66.67"), Decimal("100.00"), Decimal("200.00")]
    assert sum(amounts) == Decimal("133.33")


# --- 5. live usage of percentage charges priced per event ------------------------------------------

def test_live_usage_forecast_for_per_event_percentage():
    props = {"rate": "10", "fixed_amount": "0.20", "free_units": "1", "min_per_transaction": "1.00",
             "max_per_transaction": "5.00"}
    sub = _setup(aggregation="sum", field="value", model="percentage", props=props, start=date(2026, 3, 1))
    at = [datetime(2026, 3, d, 12, tzinfo=timezone.utc) for d in (2, 5, 9)]
    _post([(at[0], {"value": 100}), (at[1], {"value": 10}), (at[2], {"value": 40})])
    usage = subscription_usage_current(subscription=sub, now=datetime(2026, 3, 16, tzinfo=timezone.utc))
    # [100 free, 10 → 1.20, 40 → 4.20] = 5.40
    assert usage["charges"][0]["amount"] == "5.40"
    # 15 of 31 days elapsed: 3 events → 6.2 → 6; 3 more at the mean 50: 5.20 each, capped at 5.00 → 15.00
    assert usage["forecast"]["charges"][0]["amount"] == "20.40"
    assert usage["forecast"]["total"] == "20.40"


def test_live_usage_endpoint_answers_for_per_event_percentage(billing_api):
    props = {"rate": "2.5", "min_per_transaction": "0.50", "max_per_transaction": "3"}
    today = datetime.now(timezone.utc).date()
    sub = _setup(aggregation="sum", field="value", model="percentage", props=props, start=today.replace(day=1))
    _post([(datetime.now(timezone.utc) - timedelta(minutes=1), {"value": 10})])
    response = billing_api.get(f"/api/v1/subscriptions/{sub.external_id}/usage/")
    assert response.status_code == 200, response.content
    assert response.json()["charges"][0]["amount"] == "0.50"  # 2.5 % of 10 = 0.25, raised to the 0.50 minimum


# --- 6. a catch-up run bills every closed period ---------------------------------------------------

def test_catch_up_bills_418_weekly_periods():
    sub = _setup(amount="1", interval="week", start=date(2018, 10, 1))  # a Monday
    run = billing_run(as_of=date(2026, 10, 5), auto_finalize=False)  # 418 weeks later
    sub.refresh_from_db()
    assert (run.status, run.error_count, run.invoices_created) == ("succeeded", 0, 418)
    assert sub.usage_billed_through == date(2026, 10, 5)
    assert Invoice.objects.filter(subscription=sub).count() == 418


# --- 7. late events with the customer id only go to the subscription live at their timestamp ------

def test_late_event_by_customer_goes_to_the_canceled_subscription(django_capture_on_commit_callbacks):
    old = _setup(props={"unit_amount": "2.00"})
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(subscription=old, at="immediately", on=date(2026, 1, 20), today=date(2026, 1, 20))
    new = _setup(props={"unit_amount": "9.00"}, start=date(2026, 2, 1), sub="s2")
    _post([(_jan(15), {}), (_jan(16), {}), (_jan(17), {})], customer="c1")
    assert set(UsageEvent.objects.values_list("subscription_id", "is_late")) == {(old.pk, True)}
    billing_run(as_of=date(2026, 2, 3))
    late = Invoice.objects.get(subscription=old, reason="late_usage")
    assert _lines(late) == [("late_usage", Decimal("6.00"))]  # 3 × 2.00
    assert not InvoiceLine.objects.filter(invoice__subscription=new, kind="late_usage").exists()


# --- 8. issue date = finalization day --------------------------------------------------------------

def test_a_later_finalization_moves_the_issue_and_due_dates():
    sub = _setup(grace=5, net_terms=14)
    _post(_units(10))
    billing_run(as_of=date(2026, 2, 1))
    draft = Invoice.objects.get(subscription=sub)
    assert (draft.status, draft.issue_date) == ("draft", date(2026, 2, 1))
    other = _setup(customer="c2", sub="s2", grace=0, net_terms=14)
    _post(_units(3), sub="s2")
    billing_run(as_of=date(2026, 2, 1), subscription_ids=[other.pk])
    early = Invoice.objects.get(subscription=other)
    assert (early.issue_date, early.due_date, early.number) == (date(2026, 2, 1), date(2026, 2, 15), "INV-2026-000001")
    late = invoice_finalize(invoice=draft, today=date(2026, 3, 10))
    assert (late.issue_date, late.due_date, late.number) == (date(2026, 3, 10), date(2026, 3, 24), "INV-2026-000002")


def test_a_catch_up_run_issues_on_its_as_of():
    sub = _setup(net_terms=10)
    billing_run(as_of=date(2026, 3, 15))
    assert list(Invoice.objects.filter(subscription=sub).order_by("number").values_list(
        "billing_date", "issue_date", "due_date")) == [
        (date(2026, 2, 1), date(2026, 3, 15), date(2026, 3, 25)),
        (date(2026, 3, 1), date(2026, 3, 15), date(2026, 3, 25)),
    ]


# --- 9. the spike rule scales both invoices by the days their lines cover --------------------------

def test_first_full_invoice_after_a_short_in_advance_period_is_not_a_spike():
    # Jun 10: 100 × 21/30 = 70.00 in advance (lines span 21 days). Jul 1: June's usage 348.00 for
    # Jun 10–Jul 1 plus July's 100.00 in advance = 448.00, lines spanning Jun 10–Aug 1 = 52 days:
    # yardstick 3 × 70 × 52/21 = 520.00 > 448.00.
    sub = _setup(amount="100", in_advance=True, start=date(2026, 6, 10), props={"unit_amount": "1.00"})
    billing_run(as_of=date(2026, 6, 10))
    _post([(datetime(2026, 6, 12, 10, i % 60, i // 60, tzinfo=timezone.utc), {}) for i in range(348)])
    billing_run(as_of=date(2026, 7, 1))
    july = Invoice.objects.get(subscription=sub, billing_date=date(2026, 7, 1))
    assert (july.total, july.needs_review, july.status) == (Decimal("448.00"), False, "finalized")


def test_demo_has_no_false_spike_flags():
    from demo.data import seed_demo

    seed_demo(today=date(2026, 10, 15))
    flagged = Invoice.objects.filter(subscription__external_id__in=["sub_acme_growth", "sub_globex_team"],
                                     needs_review=True)
    assert not flagged.exists()
