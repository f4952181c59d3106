"""An immediate upgrade or cancel is invoiced right after it commits (DESIGN §5: one invoice with the
closed part's usage on the old plan and the proration items); a seat change waits for the next cycle."""

from datetime import date
from decimal import Decimal

import pytest

from catalog.services import plan_create
from invoicing.billing import billing_run
from invoicing.models import Invoice
from subscriptions.services import subscription_cancel, subscription_change_plan, subscription_change_quantity
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription():
    sub = SubscriptionFactory(plan_version__amount=Decimal("100.00"), plan_version__plan__code="basic",
                              start_date=date(2026, 4, 1))
    plan_create(code="pro", name="Pro", currency=sub.customer.currency, interval="month", amount=Decimal("300.00"))
    billing_run(as_of=date(2026, 4, 1))  # April's fee in advance: 100.00
    return sub


def _amounts(invoice):
    return sorted((line.kind, line.amount) for line in invoice.lines.all())


def test_upgrade_is_invoiced_on_commit(subscription, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_change_plan(subscription=subscription, plan_code="pro", on=date(2026, 4, 16), today=date(2026, 4, 16))
    invoice = Invoice.objects.get(subscription=subscription, billing_date=date(2026, 4, 16))
    # 15 of April's 30 days remain: credit −100 × 15/30 = −50.00, charge 300 × 15/30 = 150.00.
    assert _amounts(invoice) == [("proration", Decimal("-50.00")), ("proration", Decimal("150.00"))]
    assert invoice.total == Decimal("100.00")


def test_immediate_cancel_is_invoiced_on_commit(subscription, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(subscription=subscription, at="immediately", on=date(2026, 4, 21), today=date(2026, 4, 21))
    invoice = Invoice.objects.get(subscription=subscription, billing_date=date(2026, 4, 21))
    assert _amounts(invoice) == [("proration", Decimal("-33.33"))]  # −100 × 10/30 = −33.333…


def test_seat_increase_waits_for_the_next_cycle(subscription, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_change_quantity(subscription=subscription, quantity=3, on=date(2026, 4, 16), today=date(2026, 4, 16))
    assert not Invoice.objects.filter(billing_date=date(2026, 4, 16)).exists()
    billing_run(as_of=date(2026, 5, 1))
    may = Invoice.objects.get(subscription=subscription, billing_date=date(2026, 5, 1))
    # May in advance for 3 seats: 300.00; 2 added seats for 15/30 days of April: 2 × 100 × 15/30 = 100.00.
    assert _amounts(may) == [("proration", Decimal("100.00")), ("subscription", Decimal("300.00"))]
