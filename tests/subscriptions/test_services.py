"""Lifecycle services: create/trial, plan and seat changes with hand-computed proration, pending
changes, cancel, illegal transitions, and the ledger → plan_segments reconstruction."""

from datetime import date
from decimal import Decimal

import pytest

from common.errors import ApplicationError, ConflictError, NotFoundError
from common.models import AuditEvent
from subscriptions.models import ChangeKind, ProrationItem, SubscriptionChange
from subscriptions.fees import advance_fee_for_period, arrears_fee_segments
from subscriptions.periods import Period
from subscriptions.selectors import (
    plan_segments,
    subscription_current_period,
    subscription_get,
)
from subscriptions.services import (
    subscription_activate_trials,
    subscription_apply_pending_changes,
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_end,
)
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db
D = date


def version(code, amount, interval="month", currency="USD", **kw):
    return PlanVersionFactory(plan__code=code, plan__currency=currency, plan__interval=interval, amount=Decimal(amount), **kw)


def items(sub):
    return [(i.kind, i.amount, i.period_start, i.period_end, i.quantity, i.unit_amount)
            for i in ProrationItem.objects.filter(subscription=sub).order_by("pk")]


# --- create / trials ------------------------------------------------------------------------

def test_create_resolves_current_public_version_and_writes_ledger():
    customer = CustomerFactory(currency="EUR")
    v1 = version("pro", "10", currency="EUR")
    v2 = version("pro", "12", currency="EUR")
    PlanVersionFactory(plan=v1.plan, amount=Decimal("5"), customer=CustomerFactory(currency="EUR"), based_on=v2)  # private
    sub = subscription_create(external_id="s1", customer=customer, plan_code="pro", start_date=D(2026, 1, 15),
                              quantity=3, today=D(2026, 1, 15))
    assert (sub.plan_version, sub.quantity, sub.status, sub.trial_end_date) == (v2, 3, "active", None)
    created = sub.changes.get()
    assert (created.kind, created.to_plan_version, created.to_quantity, created.effective_date) == ("created", v2, 3, D(2026, 1, 15))
    assert AuditEvent.objects.filter(action="subscription.created", object_id=str(sub.pk)).exists()
    assert subscription_current_period(subscription=sub, today=D(2026, 1, 20)) == Period(D(2026, 1, 15), D(2026, 2, 1))
    assert subscription_get(external_id="s1") == sub


def test_create_with_private_override_version():
    customer = CustomerFactory()
    public = version("pro", "100")
    private = PlanVersionFactory(plan=public.plan, amount=Decimal("80"), customer=customer, based_on=public)
    sub = subscription_create(external_id="s1", customer=customer, plan_code="pro", plan_version=private.version,
                              start_date=D(2026, 1, 1), today=D(2026, 1, 1))
    assert sub.plan_version == private
    other = CustomerFactory()
    with pytest.raises(ApplicationError) as err:
        subscription_create(external_id="s2", customer=other, plan_code="pro", plan_version=private.version, today=D(2026, 1, 1))
    assert "plan_version" in err.value.fields


def test_create_rejects_currency_mismatch_naming_plan():
    version("euro", "10", currency="EUR")
    with pytest.raises(ApplicationError) as err:
        subscription_create(external_id="s1", customer=CustomerFactory(currency="USD"), plan_code="euro")
    assert err.value.status_code == 400 and "plan" in err.value.fields and err.value.code == "currency_mismatch"


def test_create_duplicate_and_unknown_plan():
    version("pro", "10")
    customer = CustomerFactory()
    subscription_create(external_id="s1", customer=customer, plan_code="pro")
    with pytest.raises(ConflictError):
        subscription_create(external_id="s1", customer=customer, plan_code="pro")
    with pytest.raises(NotFoundError):
        subscription_create(external_id="s2", customer=customer, plan_code="nope")


def test_trial_then_activate():
    version("pro", "30", trial_days=14)
    sub = subscription_create(external_id="s1", customer=CustomerFactory(), plan_code="pro",
                              start_date=D(2026, 3, 1), today=D(2026, 3, 1))
    assert (sub.status, sub.trial_end_date) == ("trialing", D(2026, 3, 15))
    assert subscription_activate_trials(today=D(2026, 3, 14)) == 0
    assert subscription_activate_trials(today=D(2026, 3, 15)) == 1
    assert subscription_activate_trials(today=D(2026, 3, 15)) == 0  # rerun is a no-op
    sub.refresh_from_db()
    assert sub.status == "active"
    status_change = sub.changes.get(kind=ChangeKind.STATUS)
    assert (status_change.from_status, status_change.to_status, status_change.effective_date) == ("trialing", "active", D(2026, 3, 15))
    # March is billed in advance only from the trial end: 30 × 17/31 = 16.45
    fee = advance_fee_for_period(subscription=sub, period=Period(D(2026, 3, 1), D(2026, 4, 1)))
    assert (fee.start, fee.amount) == (D(2026, 3, 15), Decimal("16.45"))


def test_change_during_trial_has_no_proration():
    version("basic", "30", trial_days=14)
    version("pro", "90")
    sub = subscription_create(external_id="s1", customer=CustomerFactory(), plan_code="basic",
                              start_date=D(2026, 3, 1), today=D(2026, 3, 5))
    result = subscription_change_plan(subscription=sub, plan_code="pro", on=D(2026, 3, 5), today=D(2026, 3, 5))
    assert result.applied and result.proration_items == []
    assert result.subscription.plan_version.plan.code == "pro"


# --- proration (hand-computed) --------------------------------------------------------------

def test_upgrade_immediately_design_example():
    """Monthly in advance 100.00 → 300.00 on Apr 16, period [Apr 1, May 1) = 30 days:
    credit −100×15/30 = −50.00, charge 300×15/30 = 150.00."""
    basic = version("basic", "100")
    premium = version("premium", "300")
    sub = SubscriptionFactory(plan_version=basic, start_date=D(2026, 1, 1), advance_billed_through=D(2026, 5, 1),
                              usage_billed_through=D(2026, 4, 1))
    result = subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 4, 16), today=D(2026, 4, 16))
    assert result.applied and result.change.inputs["rule"] == "upgrade"
    assert items(sub) == [
        ("credit", Decimal("-50.00"), D(2026, 4, 16), D(2026, 5, 1), 1, Decimal("100")),
        ("charge", Decimal("150.00"), D(2026, 4, 16), D(2026, 5, 1), 1, Decimal("300")),
    ]
    sub.refresh_from_db()
    assert sub.plan_version == premium
    change = result.change
    assert (change.from_plan_version, change.to_plan_version, change.effective_date) == (basic, premium, D(2026, 4, 16))
    # the closed part of April is rated on the old version, the rest on the new one
    assert plan_segments(subscription=sub, start=D(2026, 4, 1), end=D(2026, 5, 1)) == [
        (D(2026, 4, 1), D(2026, 4, 16), basic, 1),
        (D(2026, 4, 16), D(2026, 5, 1), premium, 1),
    ]
    # May's advance fee is the new plan in full
    assert advance_fee_for_period(subscription=sub, period=Period(D(2026, 5, 1), D(2026, 6, 1))).amount == Decimal("300.00")


def test_seat_increase_mid_quarter():
    """Quarterly 90.00/seat, [Jan 1, Apr 1) = 90 days, 2 → 5 seats on Feb 15 (45 days left): 3 × 90 × 45/90 = 135.00."""
    seat = version("seat", "90", interval="quarter")
    sub = SubscriptionFactory(plan_version=seat, quantity=2, start_date=D(2026, 1, 1))
    result = subscription_change_quantity(subscription=sub, quantity=5, on=D(2026, 2, 15), today=D(2026, 2, 20))
    assert result.applied
    assert items(sub) == [("charge", Decimal("135.00"), D(2026, 2, 15), D(2026, 4, 1), 3, Decimal("90"))]
    assert plan_segments(subscription=sub, start=D(2026, 1, 1), end=D(2026, 4, 1)) == [
        (D(2026, 1, 1), D(2026, 2, 15), seat, 2), (D(2026, 2, 15), D(2026, 4, 1), seat, 5)]


def test_seat_decrease_defaults_to_period_end_and_applies_at_close():
    seat = version("seat", "90", interval="quarter")
    sub = SubscriptionFactory(plan_version=seat, quantity=5, start_date=D(2026, 1, 1))
    result = subscription_change_quantity(subscription=sub, quantity=2, on=D(2026, 2, 15), today=D(2026, 2, 15))
    assert not result.applied and result.change.effective_date == D(2026, 4, 1)
    assert items(sub) == []
    sub.refresh_from_db()
    assert sub.quantity == 5
    assert advance_fee_for_period(subscription=sub, period=Period(D(2026, 4, 1), D(2026, 7, 1))).amount == Decimal("180.00")
    assert subscription_apply_pending_changes(subscription=sub, on=D(2026, 3, 31)) == []
    assert len(subscription_apply_pending_changes(subscription=sub, on=D(2026, 4, 1))) == 1
    assert subscription_apply_pending_changes(subscription=sub, on=D(2026, 4, 1)) == []  # idempotent
    sub.refresh_from_db()
    assert sub.quantity == 2


def test_seat_decrease_immediately_credits():
    seat = version("seat", "90", interval="quarter")
    sub = SubscriptionFactory(plan_version=seat, quantity=5, start_date=D(2026, 1, 1))
    subscription_change_quantity(subscription=sub, quantity=4, effective="immediately", on=D(2026, 3, 2), today=D(2026, 3, 2))
    # 1 seat × 90 × 30/90 = 30.00 back
    assert items(sub) == [("credit", Decimal("-30.00"), D(2026, 3, 2), D(2026, 4, 1), 1, Decimal("90"))]


def test_downgrade_waits_for_period_end_and_upgrade_replaces_it():
    basic = version("basic", "100")
    premium = version("premium", "300")
    mid = version("mid", "200")
    sub = SubscriptionFactory(plan_version=premium, start_date=D(2026, 1, 1))
    down = subscription_change_plan(subscription=sub, plan_code="basic", on=D(2026, 4, 10), today=D(2026, 4, 10))
    assert not down.applied and down.change.effective_date == D(2026, 5, 1) and down.proration_items == []
    assert plan_segments(subscription=sub, start=D(2026, 4, 1), end=D(2026, 6, 1)) == [
        (D(2026, 4, 1), D(2026, 5, 1), premium, 1), (D(2026, 5, 1), D(2026, 6, 1), basic, 1)]
    # a second change replaces the scheduled downgrade
    again = subscription_change_plan(subscription=sub, plan_code="mid", effective="period_end", on=D(2026, 4, 12), today=D(2026, 4, 12))
    down.change.refresh_from_db()
    assert down.change.superseded_at is not None and down.change.superseded_by == again.change
    assert plan_segments(subscription=sub, start=D(2026, 5, 1), end=D(2026, 6, 1)) == [(D(2026, 5, 1), D(2026, 6, 1), mid, 1)]
    # every service first applies what has come due
    subscription_change_quantity(subscription=sub, quantity=2, on=D(2026, 5, 3), today=D(2026, 5, 3))
    sub.refresh_from_db()
    assert (sub.plan_version, sub.quantity) == (mid, 2)
    # 1 added seat × 200 × 29/31 = 187.10
    assert items(sub)[-1][:2] == ("charge", Decimal("187.10"))
    assert basic  # kept for readability


def test_in_arrears_plan_change_has_no_items_and_segments_bill_the_fee():
    old = version("arrears_a", "100", pay_in_advance=False)
    new = version("arrears_b", "310", pay_in_advance=False)
    sub = SubscriptionFactory(plan_version=old, start_date=D(2026, 1, 1))
    result = subscription_change_plan(subscription=sub, plan_code="arrears_b", on=D(2026, 3, 11), today=D(2026, 3, 11))
    assert result.applied and result.proration_items == []
    march = Period(D(2026, 3, 1), D(2026, 4, 1))
    assert advance_fee_for_period(subscription=sub, period=march) is None
    fees = arrears_fee_segments(subscription=sub, period=march)
    # 100 × 10/31 = 32.26 ; 310 × 21/31 = 210.00
    assert [(f.start, f.end, f.plan_version, f.amount) for f in fees] == [
        (D(2026, 3, 1), D(2026, 3, 11), old, Decimal("32.26")), (D(2026, 3, 11), D(2026, 4, 1), new, Decimal("210.00"))]


def test_change_from_in_advance_to_in_arrears_credits_only():
    version("adv", "100")
    new = version("arr", "300", pay_in_advance=False)
    sub = SubscriptionFactory(plan_version__plan__code="adv", plan_version__amount=Decimal("100"), start_date=D(2026, 1, 1))
    subscription_change_plan(subscription=sub, plan_code="arr", on=D(2026, 4, 16), today=D(2026, 4, 16))
    assert [i[:2] for i in items(sub)] == [("credit", Decimal("-50.00"))]
    fees = arrears_fee_segments(subscription=sub, period=Period(D(2026, 4, 1), D(2026, 5, 1)))
    assert [(f.plan_version, f.amount) for f in fees] == [(new, Decimal("150.00"))]


def test_change_on_period_start_before_advance_billed_has_no_items():
    version("basic", "100")
    premium = version("premium", "300")
    sub = SubscriptionFactory(plan_version__plan__code="basic", start_date=D(2026, 1, 1), advance_billed_through=D(2026, 4, 1))
    subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 4, 1), today=D(2026, 4, 1))
    assert items(sub) == []
    fee = advance_fee_for_period(subscription=sub, period=Period(D(2026, 4, 1), D(2026, 5, 1)))
    assert (fee.plan_version, fee.amount) == (premium, Decimal("300.00"))


# --- cancel / end ---------------------------------------------------------------------------

def test_cancel_at_period_end():
    sub = SubscriptionFactory(start_date=D(2026, 1, 1))
    result = subscription_cancel(subscription=sub, on=D(2026, 4, 16), today=D(2026, 4, 16))
    sub.refresh_from_db()
    assert (sub.status, sub.cancel_at_period_end, sub.end_date) == ("active", True, D(2026, 5, 1))
    assert result.proration_items == [] and not result.applied
    with pytest.raises(ConflictError) as err:
        subscription_change_plan(subscription=sub, plan_code=version("x", "500").plan.code, on=D(2026, 4, 17), today=D(2026, 4, 17))
    assert err.value.code == "cancellation_scheduled"
    assert advance_fee_for_period(subscription=sub, period=Period(D(2026, 5, 1), D(2026, 6, 1))) is None
    subscription_apply_pending_changes(subscription=sub, on=D(2026, 5, 1))
    sub.refresh_from_db()
    assert (sub.status, sub.cancel_at_period_end, sub.end_date) == ("canceled", False, D(2026, 5, 1))


def test_cancel_immediately_credits_unused_days():
    sub = SubscriptionFactory(start_date=D(2026, 1, 1), quantity=2, advance_billed_through=D(2026, 5, 1))
    result = subscription_cancel(subscription=sub, at="immediately", on=D(2026, 4, 16), today=D(2026, 4, 20))
    sub.refresh_from_db()
    assert (sub.status, sub.end_date, sub.cancel_at_period_end) == ("canceled", D(2026, 4, 16), False)
    # 2 seats × 100 × 15/30 = 100.00 back
    assert items(sub) == [("credit", Decimal("-100.00"), D(2026, 4, 16), D(2026, 5, 1), 2, Decimal("100"))]
    assert result.applied
    assert plan_segments(subscription=sub, start=D(2026, 4, 1), end=D(2026, 5, 1)) == [
        (D(2026, 4, 1), D(2026, 4, 16), sub.plan_version, 2)]


def test_cancel_immediately_credits_nothing_when_the_fee_was_never_billed():
    # April's in-advance fee is not invoiced yet (advance billed through April 1): no credit; the
    # final invoice charges the days used instead (tests/invoicing/test_money_rules.py).
    sub = SubscriptionFactory(start_date=D(2026, 1, 1), quantity=2, advance_billed_through=D(2026, 4, 1))
    result = subscription_cancel(subscription=sub, at="immediately", on=D(2026, 4, 16), today=D(2026, 4, 20))
    assert result.proration_items == [] and items(sub) == []


def test_immediate_cancel_overrides_scheduled_cancel():
    sub = SubscriptionFactory(start_date=D(2026, 1, 1))
    subscription_cancel(subscription=sub, on=D(2026, 4, 10), today=D(2026, 4, 10))
    subscription_cancel(subscription=sub, at="immediately", on=D(2026, 4, 16), today=D(2026, 4, 16))
    sub.refresh_from_db()
    assert (sub.status, sub.end_date) == ("canceled", D(2026, 4, 16))
    pending = SubscriptionChange.objects.get(subscription=sub, kind="cancel", effective_date=D(2026, 5, 1))
    assert pending.superseded_at is not None and pending.applied_at is None


@pytest.mark.parametrize("call", [
    lambda s: subscription_cancel(subscription=s, at="immediately", on=D(2026, 4, 20), today=D(2026, 4, 20)),
    lambda s: subscription_cancel(subscription=s, on=D(2026, 4, 20), today=D(2026, 4, 20)),
    lambda s: subscription_change_quantity(subscription=s, quantity=3, on=D(2026, 4, 20), today=D(2026, 4, 20)),
    lambda s: subscription_end(subscription=s, on=D(2026, 4, 20), today=D(2026, 4, 20)),
])
def test_illegal_transitions_from_canceled_are_409(call):
    sub = SubscriptionFactory(start_date=D(2026, 1, 1))
    subscription_cancel(subscription=sub, at="immediately", on=D(2026, 4, 16), today=D(2026, 4, 16))
    with pytest.raises(ConflictError) as err:
        call(sub)
    assert err.value.status_code == 409 and err.value.code == "invalid_state"


def test_end_without_credit():
    sub = SubscriptionFactory(start_date=D(2026, 1, 1))
    subscription_end(subscription=sub, on=D(2026, 6, 1), today=D(2026, 6, 1))
    sub.refresh_from_db()
    assert (sub.status, sub.end_date) == ("ended", D(2026, 6, 1))
    assert items(sub) == []


def test_changes_inside_invoiced_period_are_refused():
    version("premium", "300")
    sub = SubscriptionFactory(start_date=D(2026, 1, 1), usage_billed_through=D(2026, 4, 1))
    with pytest.raises(ConflictError) as err:
        subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 3, 20), today=D(2026, 4, 2))
    assert err.value.code == "period_invoiced" and "date" in err.value.fields
    with pytest.raises(ApplicationError) as err:  # immediate changes are not dated in the future
        subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 4, 20), today=D(2026, 4, 2))
    assert err.value.status_code == 400
    with pytest.raises(ApplicationError) as err:
        subscription_change_plan(subscription=sub, plan_code=version("weekly", "5", interval="week").plan.code,
                                 on=D(2026, 4, 2), today=D(2026, 4, 2))
    assert err.value.code == "interval_mismatch"
    with pytest.raises(ApplicationError) as err:
        subscription_change_plan(subscription=sub, plan_code=sub.plan_version.plan.code, on=D(2026, 4, 2), today=D(2026, 4, 2))
    assert err.value.code == "no_change"


def test_backdating_before_a_recorded_change_is_refused():
    version("premium", "300")
    version("ultra", "900")
    sub = SubscriptionFactory(start_date=D(2026, 1, 1))
    subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 4, 16), today=D(2026, 4, 16))
    with pytest.raises(ConflictError) as err:
        subscription_change_plan(subscription=sub, plan_code="ultra", on=D(2026, 4, 10), today=D(2026, 4, 16))
    assert err.value.code == "later_change_exists"


def test_anniversary_upgrade_uses_anniversary_period():
    version("basic", "100")
    version("premium", "300")
    sub = SubscriptionFactory(plan_version__plan__code="basic", billing_time="anniversary", start_date=D(2026, 1, 31))
    # period [Feb 28, Mar 31) = 31 days; change on Mar 21 leaves 10: −100×10/31 = −32.26, 300×10/31 = 96.77
    subscription_change_plan(subscription=sub, plan_code="premium", on=D(2026, 3, 21), today=D(2026, 3, 21))
    assert [(i[0], i[1], i[3]) for i in items(sub)] == [
        ("credit", Decimal("-32.26"), D(2026, 3, 31)), ("charge", Decimal("96.77"), D(2026, 3, 31))]
