"""MRR normalization and discount rules (DESIGN.md §11), backdated changes and the ledger's races."""

import threading
from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db import connection, transaction

from analytics.models import MrrMovement
from analytics.mrr import (
    CouponWindow,
    SubscriptionHistory,
    VersionPrice,
    customer_movements,
    ledger_refresh,
    normalize_monthly,
    subscription_mrr,
)
from catalog.services import coupon_create
from invoicing.coupons import coupon_apply, coupon_redemptions_consume, coupon_remove
from invoicing.models import CouponRedemption
from subscriptions.services import (
    subscription_apply_pending_changes,
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
)
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory

D = date


@pytest.mark.parametrize("interval, amount, expected", [
    ("week", "10", "43.33"),       # 10 × 52 / 12 = 43.333…
    ("week", "15", "65.00"),
    ("month", "99.995", "100.00"),  # half up, once
    ("quarter", "100", "33.33"),
    ("year", "1000", "83.33"),
    ("year", "1002", "83.50"),
])
def test_monthly_normalization(interval, amount, expected):
    assert normalize_monthly(Decimal(amount), interval=interval, currency="USD") == Decimal(expected)


def test_normalization_to_the_currency_exponent():
    assert normalize_monthly(Decimal("10000"), interval="week", currency="JPY") == Decimal("43333")
    assert normalize_monthly(Decimal("1"), interval="quarter", currency="KWD") == Decimal("0.333")


class _Coupon:
    def __init__(self, kind, *, percent_off=None, amount_off=None, currency=""):
        self.code = self.name = f"{kind}-coupon"
        self.kind, self.percent_off, self.amount_off, self.currency, self.pk = kind, percent_off, amount_off, currency, None


def _history(steps, trial_end=None, currency="USD"):
    return SubscriptionHistory(pk=1, currency=currency, trial_end_date=trial_end, steps=steps)


VERSIONS = {1: VersionPrice(Decimal("100"), 10, "month"), 2: VersionPrice(Decimal("30"), 20, "week"),
            3: VersionPrice(Decimal("1200"), 30, "year")}


def test_seats_trial_and_status():
    h = _history([(D(2026, 1, 10), 1, 3, "active")], trial_end=D(2026, 2, 1))
    assert subscription_mrr(h, D(2026, 1, 31), versions=VERSIONS, coupons=[]) == 0  # trialing
    assert subscription_mrr(h, D(2026, 2, 1), versions=VERSIONS, coupons=[]) == Decimal("300.00")
    past_due = _history([(D(2026, 1, 1), 1, 1, "active"), (D(2026, 2, 3), None, None, "past_due")])
    assert subscription_mrr(past_due, D(2026, 2, 28), versions=VERSIONS, coupons=[]) == Decimal("100.00")
    ended = _history([(D(2026, 1, 1), 1, 1, "active"), (D(2026, 2, 3), None, None, "ended")])
    assert subscription_mrr(ended, D(2026, 2, 28), versions=VERSIONS, coupons=[]) == 0


def test_recurring_discounts_stack_like_invoices_and_fixed_ones_are_per_period():
    h = _history([(D(2026, 1, 1), 2, 2, "active")])  # weekly 30 × 2 = 60 per week
    window = lambda coupon, start=D(2026, 1, 1), end=None, plans=frozenset(), sub=None: CouponWindow(  # noqa: E731
        coupon=coupon, subscription_id=sub, plan_ids=plans, start=start, end=end, order=(start,))
    ten_off = window(_Coupon("fixed", amount_off=Decimal("10"), currency="USD"))
    half = window(_Coupon("percent", percent_off=Decimal("50")))
    # (60 − 10) × 50% = 25 per week → 25 × 52 / 12 = 108.33
    assert subscription_mrr(h, D(2026, 1, 31), versions=VERSIONS, coupons=[ten_off, half]) == Decimal("108.33")
    # Not yet started, ended, another plan, another subscription, another currency: no discount (260.00 = 60 × 52 / 12).
    for w in (window(half.coupon, start=D(2026, 2, 1)), window(half.coupon, end=D(2026, 1, 31)),
              window(half.coupon, plans=frozenset({99})), window(half.coupon, sub=7),
              window(_Coupon("fixed", amount_off=Decimal("10"), currency="EUR"))):
        assert subscription_mrr(h, D(2026, 1, 31), versions=VERSIONS, coupons=[w]) == Decimal("260.00")
    # A fixed coupon larger than the fee takes it to zero, never below.
    big = window(_Coupon("fixed", amount_off=Decimal("500"), currency="USD"))
    assert subscription_mrr(h, D(2026, 1, 31), versions=VERSIONS, coupons=[big]) == 0


def test_movements_per_currency_month_end_and_reactivation():
    usd = SubscriptionHistory(pk=1, currency="USD", trial_end_date=None, steps=[
        (D(2026, 1, 15), 1, 1, "active"), (D(2026, 3, 1), None, None, "canceled")])
    usd_again = SubscriptionHistory(pk=2, currency="USD", trial_end_date=None, steps=[(D(2026, 5, 31), 3, 1, "active")])
    moves = [(m.currency, f"{m.month:%Y-%m}", m.kind, m.amount) for m in customer_movements([usd, usd_again], [], versions=VERSIONS)]
    # canceled on the 1st of March belongs to March; starting on May 31 counts for May (end of its last day).
    assert moves == [("USD", "2026-01", "new", Decimal("100.00")), ("USD", "2026-03", "churn", Decimal("100.00")),
                     ("USD", "2026-05", "reactivation", Decimal("100.00"))]
    # Churn and return inside one month leaves no movement.
    blip = SubscriptionHistory(pk=3, currency="USD", trial_end_date=None, steps=[
        (D(2026, 1, 1), 1, 1, "active"), (D(2026, 2, 3), None, None, "canceled"), (D(2026, 2, 20), None, None, "active")])
    assert [m.kind for m in customer_movements([blip], [], versions=VERSIONS)] == ["new"]


@pytest.mark.django_db
def test_backdated_seat_change_rewrites_the_months_it_reaches():
    PlanVersionFactory(plan__code="seat", amount=Decimal("10"))
    customer = CustomerFactory()
    sub = subscription_create(external_id="s", customer=customer, plan_code="seat", quantity=1, start_date=D(2026, 1, 5),
                              today=D(2026, 1, 5))
    # Recorded in March, effective February 20th (nothing invoiced yet): February's MRR moves.
    subscription_change_quantity(subscription=sub, quantity=4, on=D(2026, 2, 20), today=D(2026, 3, 3))
    assert sorted((f"{m.month:%Y-%m}", m.kind, m.amount) for m in MrrMovement.objects.all()) == [
        ("2026-01", "new", Decimal("10.0000")), ("2026-02", "expansion", Decimal("30.0000"))]


@pytest.mark.django_db
def test_coupon_events_move_mrr_live():
    PlanVersionFactory(plan__code="pro", amount=Decimal("200"))
    customer = CustomerFactory()
    subscription_create(external_id="s", customer=customer, plan_code="pro", start_date=D(2026, 1, 1), today=D(2026, 1, 1))
    once = coupon_create(code="ONCE", name="Once", kind="percent", percent_off=Decimal("50"))  # not recurring
    coupon_apply(coupon=once, customer=customer, on=D(2026, 1, 1))
    three = coupon_create(code="THREE", name="Three months", kind="fixed", amount_off=Decimal("20"), currency="USD",
                          duration="repeating", duration_periods=1)
    redemption = coupon_apply(coupon=three, customer=customer, on=D(2026, 2, 10))
    rows = lambda: [(f"{m.month:%Y-%m}", m.kind, m.mrr_after) for m in MrrMovement.objects.order_by("month")]  # noqa: E731
    assert rows() == [("2026-01", "new", Decimal("200.0000")), ("2026-02", "contraction", Decimal("180.0000"))]
    # Used up by an invoice: the discount stops on that (UTC-local) day.
    CouponRedemption.objects.filter(pk=redemption.pk).update(created_at=datetime(2026, 2, 10, tzinfo=dt_timezone.utc))
    coupon_redemptions_consume(redemptions=[redemption], invoice_id="inv-1")
    ended = CouponRedemption.objects.get(pk=redemption.pk).ended_at
    month = ended.date().replace(day=1)
    assert rows()[-1] == (f"{month:%Y-%m}", "expansion", Decimal("200.0000"))
    forever = coupon_create(code="FOREVER", name="Forever", kind="percent", percent_off=Decimal("25"), duration="forever")
    applied = coupon_apply(coupon=forever, customer=customer, on=D(2026, 3, 1))
    # March: THREE (applied first, still running then) takes 20, FOREVER 25% of the remaining 180 → 135.
    assert ("2026-03", "contraction", Decimal("135.0000")) in rows()
    coupon_remove(redemption=applied)
    assert rows()[-1][1:] == ("expansion", Decimal("200.0000"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_of_one_customer_leave_one_consistent_ledger():
    """Two transactions change two subscriptions of one customer at once: the advisory lock makes the
    second refresh wait and recompute from the first one's committed change (no lost movement, no
    duplicate row)."""
    PlanVersionFactory(plan__code="seat", amount=Decimal("10"))
    customer = CustomerFactory()
    subs = [subscription_create(external_id=f"s{i}", customer=customer, plan_code="seat", start_date=D(2026, 1, 1),
                                today=D(2026, 1, 1)) for i in range(2)]
    barrier = threading.Barrier(2)
    errors = []

    def change(sub, seats):
        try:
            with transaction.atomic():
                barrier.wait()
                subscription_change_quantity(subscription=sub, quantity=seats, on=D(2026, 2, 10), today=D(2026, 2, 10))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(sub, seats)) for sub, seats in zip(subs, (3, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    # January 2 × 10 = 20 (new); February 3 × 10 + 5 × 10 = 80 (expansion 60).
    assert sorted((f"{m.month:%Y-%m}", m.kind, m.amount, m.mrr_after) for m in MrrMovement.objects.all()) == [
        ("2026-01", "new", Decimal("20.0000"), Decimal("20.0000")),
        ("2026-02", "expansion", Decimal("60.0000"), Decimal("80.0000"))]
    assert ledger_refresh(customer_ids=[customer.pk]) == 0  # nothing left to correct


@pytest.mark.django_db
def test_a_scheduled_change_counts_from_its_effective_date_and_drops_out_when_superseded():
    PlanVersionFactory(plan__code="big", amount=Decimal("100"))
    PlanVersionFactory(plan__code="small", amount=Decimal("40"))
    customer = CustomerFactory()
    sub = subscription_create(external_id="s", customer=customer, plan_code="big", start_date=D(2026, 1, 1), today=D(2026, 1, 1))
    subscription_change_plan(subscription=sub, plan_code="small", on=D(2026, 2, 10), today=D(2026, 2, 10))  # Mar 1
    rows = lambda: [(f"{m.month:%Y-%m}", m.kind, m.mrr_after) for m in MrrMovement.objects.order_by("month")]  # noqa: E731
    assert rows() == [("2026-01", "new", Decimal("100.0000")), ("2026-03", "contraction", Decimal("40.0000"))]
    # Scheduled again, then an immediate cancel supersedes every schedule: churn in February only.
    subscription_cancel(subscription=sub, at="immediately", on=D(2026, 2, 20), today=D(2026, 2, 20))
    assert rows() == [("2026-01", "new", Decimal("100.0000")), ("2026-02", "churn", Decimal("0.0000"))]
    # Applying the (superseded) schedule later changes nothing.
    subscription_apply_pending_changes(subscription=sub, on=D(2026, 3, 1))
    assert rows() == [("2026-01", "new", Decimal("100.0000")), ("2026-02", "churn", Decimal("0.0000"))]


@pytest.mark.django_db
def test_a_failing_refresh_never_undoes_the_subscription_change(monkeypatch, caplog):
    import analytics.mrr as mrr

    PlanVersionFactory(plan__code="p", amount=Decimal("10"))
    customer = CustomerFactory()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(mrr, "customer_movements", broken)
    sub = subscription_create(external_id="s", customer=customer, plan_code="p", start_date=D(2026, 1, 1), today=D(2026, 1, 1))
    assert sub.pk and not MrrMovement.objects.exists()
    assert "analytics_rebuild will repair it" in caplog.text
    monkeypatch.undo()
    mrr.ledger_rebuild()
    assert [(m.kind, m.amount) for m in MrrMovement.objects.all()] == [("new", Decimal("10.0000"))]
