"""`invoice_spike` compares like with like (analytics/anomalies.py): a total that rose because of a
plan upgrade or added seats is explained, not anomalous; a total that rose with usage volume is a
spike. Hand-computed through real billing runs."""

from datetime import date

import pytest

from analytics.models import Anomaly
from subscriptions.models import Subscription
from subscriptions.services import subscription_change_plan, subscription_change_quantity

pytestmark = pytest.mark.django_db


def _calls(world, month: int, n: int):
    # n calls spread over days 2–27 (one every hour), the same level every month
    world.events("calls", [f"2026-{month:02d}-{2 + (h // 24) % 26:02d}T{h % 24:02d}:00:00Z" for h in range(n)],
                 customer="c1")


@pytest.fixture
def basic(world):
    world.metric("calls")
    usage = [{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.10"}}]
    world.plan("basic", amount="20.00", pay_in_advance=False, charges=usage)
    world.plan("pro", amount="100.00", pay_in_advance=False, charges=usage)
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 1))
    for month in (1, 2, 3):
        _calls(world, month, 100)
        world.run(date(2026, month + 1, 1))
    totals = [i["total"] for i in sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])]
    assert totals == ["30.00", "30.00", "30.00"]  # 20.00 + 100 × 0.10
    return world


def _invoice(world, billing_date: date) -> dict:
    return next(i for i in world.invoices(subscription="s1") if i["billing_date"] == billing_date.isoformat())


def test_plan_upgrade_is_explained_then_a_usage_spike_is_flagged(basic):
    sub = Subscription.objects.get(external_id="s1")
    subscription_change_plan(subscription=sub, plan_code="pro", on=date(2026, 4, 1), today=date(2026, 4, 1))
    _calls(basic, 4, 100)
    basic.run(date(2026, 5, 1))
    april = _invoice(basic, date(2026, 5, 1))
    # 100.00 + 10.00 = 110.00: over 3 × 30.00 = 90.00 (the old rule flagged it), but usage is unchanged:
    # like for like 30.00 + (10.00 − 10.00) = 30.00 ≤ 90.00 → explained by the upgrade, not held
    assert (april["total"], april["needs_review"], april["status"]) == ("110.00", False, "finalized")
    assert not Anomaly.objects.filter(kind="invoice_spike").exists()

    _calls(basic, 5, 800)
    basic.run(date(2026, 6, 1))
    may = _invoice(basic, date(2026, 6, 1))
    # 100.00 + 80.00 = 180.00. May spans 31 days: February (28 days) and April (30) scale to 31.
    # Recent totals 30 × 31/28 = 33.2143, 30, 110 × 31/30 = 113.6667 → median 33.2143;
    # usage 10 × 31/28 = 11.0714, 10, 10 × 31/30 = 10.3333 → median 10.3333;
    # like for like 33.2143 + 80 − 10.3333 = 102.8810 > 3 × 33.2143 = 99.6429 → invoice_spike,
    # score 102.8810 / 33.2143 = 3.0975
    assert (may["total"], may["needs_review"], may["status"]) == ("180.00", True, "draft")
    (reason,) = [r for r in may["review_reasons"] if r["rule"] == "anomaly.invoice_spike"]
    assert {k: reason[k] for k in ("observed", "expected", "score", "total", "recent_invoices_median")} == {
        "observed": "80", "expected": "10.3333", "score": "3.0975", "total": "180.00",
        "recent_invoices_median": "33.2143"}
    a = Anomaly.objects.get(kind="invoice_spike")
    assert (str(a.invoice_id), a.inputs["like_for_like_total"], a.inputs["recent_usage_median"]) == (
        may["id"], "102.8810", "10.3333")


def test_a_usage_rise_just_at_the_factor_is_not_flagged(basic):
    _calls(basic, 4, 700)
    basic.run(date(2026, 5, 1))
    # 20.00 + 70.00 = 90.00. April spans 30 days: February's 30.00 and 10.00 scale to 32.1429 and 10.7143;
    # medians 30.00 and 10.00 → like for like 30 + 70 − 10 = 90.00, not over 3 × 30.00
    april = _invoice(basic, date(2026, 5, 1))
    assert (april["total"], april["needs_review"]) == ("90.00", False)


def test_added_seats_are_explained(basic):
    sub = Subscription.objects.get(external_id="s1")
    subscription_change_quantity(subscription=sub, quantity=6, on=date(2026, 4, 1), today=date(2026, 4, 1))
    _calls(basic, 4, 100)
    basic.run(date(2026, 5, 1))
    april = _invoice(basic, date(2026, 5, 1))
    # 6 × 20.00 + 10.00 = 130.00 > 90.00, usage unchanged → not held
    assert (april["total"], april["needs_review"]) == ("130.00", False)
    assert not Anomaly.objects.exists()


def test_an_upgrade_to_dearer_usage_prices_compares_volume_at_the_previous_prices(world):
    world.metric("calls")
    world.plan("cheap", amount="0", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.10"}}])
    world.plan("premium", amount="0", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.50"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="cheap", start_date=date(2026, 1, 1))
    for month in (1, 2, 3):
        _calls(world, month, 100)
        world.run(date(2026, month + 1, 1))
    subscription_change_plan(subscription=Subscription.objects.get(external_id="s1"), plan_code="premium",
                             on=date(2026, 4, 1), today=date(2026, 4, 1))
    _calls(world, 4, 120)
    world.run(date(2026, 5, 1))
    april = _invoice(world, date(2026, 5, 1))
    # 120 × 0.50 = 60.00 > 3 × 10.00; at March's price 120 × 0.10 = 12.00 → like for like 12.00 ≤ 30.00
    assert (april["total"], april["needs_review"]) == ("60.00", False)


def test_the_first_usage_billed_after_an_in_advance_first_invoice_is_no_spike(world):
    world.metric("calls")
    world.plan("seats", amount="20.00", pay_in_advance=True,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="seats", start_date=date(2026, 1, 1))
    world.run(date(2026, 1, 1))  # January's fee in advance: 20.00, no usage period billed
    _calls(world, 1, 100)
    world.run(date(2026, 2, 1))
    feb = _invoice(world, date(2026, 2, 1))
    # 20.00 + 100.00 of January's usage: no earlier invoice billed usage, so there is no yardstick
    assert (feb["total"], feb["needs_review"]) == ("120.00", False)
    assert not Anomaly.objects.filter(kind="invoice_spike").exists()
