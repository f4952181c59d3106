"""The spike check scales a short (prorated) previous invoice; a catch-up run numbers invoices in date order."""

from datetime import date

import pytest

from tests.invoicing.test_lifecycle import _at

pytestmark = pytest.mark.django_db


@pytest.fixture
def metered(world):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False, charges=[{"billable_metric": "calls", "model": "standard",
                                                          "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 15))
    world.events("calls", [_at(1, 16, h) for h in range(10)], customer="c1")  # 10.00 over Jan 15–31 (17 days)
    world.run(date(2026, 2, 1))
    return world


def _february(world):
    world.run(date(2026, 3, 1))
    return max(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])


def test_full_month_after_short_first_period_is_not_a_spike(metered):
    # February spans 28 days vs January's 17: the yardstick is 3 × 10.00 × 28/17 = 49.41.
    metered.events("calls", [_at(2, 2 + h // 24, h % 24) for h in range(49)], customer="c1")
    feb = _february(metered)
    assert (feb["total"], feb["needs_review"], feb["status"]) == ("49.00", False, "finalized")


def test_spike_beyond_the_scaled_yardstick_is_flagged(metered):
    metered.events("calls", [_at(2, 2 + h // 24, h % 24) for h in range(50)], customer="c1")
    feb = _february(metered)
    assert (feb["total"], feb["needs_review"]) == ("50.00", True)
    (reason,) = feb["review_reasons"]  # analytics' invoice_spike: 50 > 3 × 10.00 × 28/17 = 49.41
    assert (reason["rule"], reason["expected"]) == ("anomaly.invoice_spike", "16.4706")


def test_catch_up_run_numbers_invoices_in_issue_date_order(world):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False, charges=[{"billable_metric": "calls", "model": "standard",
                                                          "properties": {"unit_amount": "1.00"}}])
    for customer in ("b-customer", "a-customer"):
        world.customer(customer)
        world.subscription(f"s-{customer}", customer=customer, plan="metered", start_date=date(2026, 1, 1))
        for month in (1, 2, 3):
            world.events("calls", [_at(month, 3, h) for h in range(5)], customer=customer)
    world.run(date(2026, 4, 1))  # one run bills January, February and March for both
    invoices = sorted(world.invoices(), key=lambda i: i["number"])
    # The run's as_of is its "now": everything it finalizes is issued on April 1 (DESIGN.md §6), numbered
    # in billing-date order, then by customer.
    assert [(i["issue_date"], i["billing_date"], i["customer"]) for i in invoices] == [
        ("2026-04-01", "2026-02-01", "a-customer"), ("2026-04-01", "2026-02-01", "b-customer"),
        ("2026-04-01", "2026-03-01", "a-customer"), ("2026-04-01", "2026-03-01", "b-customer"),
        ("2026-04-01", "2026-04-01", "a-customer"), ("2026-04-01", "2026-04-01", "b-customer"),
    ]
    assert [i["number"] for i in invoices] == [f"INV-2026-{n:06d}" for n in range(1, 7)]


def test_a_flagged_draft_cannot_be_finalized_before_approval(metered):
    """Issue 10 item 7: the API `finalize` (and the admin action, same service) refuses a draft waiting for review."""
    from invoicing.models import Invoice
    from invoicing.services import invoice_approve, invoice_finalize
    from common.errors import ConflictError

    metered.events("calls", [_at(2, 2 + h // 24, h % 24) for h in range(50)], customer="c1")
    feb = _february(metered)
    assert (feb["status"], feb["needs_review"]) == ("draft", True)
    response = metered.billing.post(f"/api/v1/invoices/{feb['id']}/finalize/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "needs_review"
    with pytest.raises(ConflictError):
        invoice_finalize(invoice=Invoice(pk=feb["id"]))
    assert metered.invoice(feb["id"])["status"] == "draft"
    invoice = invoice_approve(invoice=Invoice(pk=feb["id"]), actor="finance")
    assert (invoice.status, invoice.needs_review, invoice.number) == ("finalized", False, "INV-2026-000002")
