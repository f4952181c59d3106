"""End to end through the API: metric → plan → customer → subscription → events → billing run →
invoice, with hand-computed lines and totals."""

from datetime import date
from decimal import Decimal

import pytest

from invoicing.billing import invoice_subscription_now
from invoicing.models import Invoice
from subscriptions.models import Subscription
from tests.invoicing.conftest import lines_of
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db

GRADUATED = {"tiers": [{"up_to": 50, "unit_amount": "40", "flat_amount": "0"},
                       {"up_to": None, "unit_amount": "35", "flat_amount": "0"}]}


def _jan(day: int, hour: int = 12, month: int = 1) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:00:00Z"


CASES = {
    # model: (metric (aggregation, field), properties, events (timestamp, props), quantity, amount, tiers)
    "standard_sum": (("sum", "gb"), "standard", {"unit_amount": "0.25"},
                     [(_jan(3), {"gb": 10}), (_jan(4), {"gb": "2.5"}), (_jan(5), {"gb": 7.5})], "20", "5.00",
                     [{"from": "0", "to": None, "units": "20", "unit_amount": "0.25", "flat_amount": "0", "amount": "5"}]),
    "package": (("sum", "n"), "package", {"package_size": 1000, "amount": "5.00", "free_units": 100},
                [(_jan(3), {"n": 1200}), (_jan(9), {"n": 1300})], "2500", "15.00", None),
    "graduated": (("count", None), "graduated", GRADUATED, [_jan(1 + i % 28, i % 24) for i in range(60)], "60",
                  "2350.00",
                  [{"from": "0", "to": "50", "units": "50", "unit_amount": "40", "flat_amount": "0", "amount": "2000"},
                   {"from": "50", "to": None, "units": "10", "unit_amount": "35", "flat_amount": "0", "amount": "350"}]),
    "volume": (("count", None), "volume", GRADUATED, [_jan(1 + i % 28, i % 24) for i in range(60)], "60", "2100.00",
               [{"from": "50", "to": None, "units": "60", "unit_amount": "35", "flat_amount": "0", "amount": "2100"}]),
    # 2.9% × 350.50 + 2 × 0.30 = 10.1645 + 0.60 = 10.7645 → 10.76
    "percentage": (("sum", "amount"), "percentage", {"rate": "2.9", "fixed_amount": "0.30", "free_units": 0},
                   [(_jan(7), {"amount": "100.00"}), (_jan(8), {"amount": 250.50})], "350.5", "10.76", None),
    "max": (("max", "seats"), "standard", {"unit_amount": "10"},
            [(_jan(2), {"seats": 3}), (_jan(9), {"seats": 7}), (_jan(20), {"seats": 5})], "7", "70.00", None),
    "unique_count": (("unique_count", "user"), "standard", {"unit_amount": "1.5"},
                     [(_jan(2), {"user": "a"}), (_jan(3), {"user": "b"}), (_jan(4), {"user": "a"})], "2", "3.00", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_charge_model_end_to_end(world, case):
    (aggregation, field), model, properties, events, quantity, amount, tiers = CASES[case]
    world.metric("m", aggregation, field)
    # In arrears, 50.00 base fee: a single invoice on Feb 1 with the fee and the usage of January.
    world.plan("p", amount="50.00", pay_in_advance=False,
               charges=[{"billable_metric": "m", "model": model, "properties": properties}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="p", start_date=date(2026, 1, 1))
    world.events("m", events, customer="c1")

    assert world.run(date(2026, 1, 31))["invoices_created"] == 0
    assert world.run(date(2026, 2, 1))["invoices_created"] == 1
    (invoice,) = world.invoices(customer="c1")
    invoice = world.invoice(invoice["id"])
    assert lines_of(invoice) == [("subscription", None, "1", "50.00"), ("usage", "m", quantity, amount)]
    usage = invoice["lines"][1]
    assert (usage["period_start"], usage["period_end"]) == ("2026-01-01", "2026-02-01")
    if tiers is not None:
        assert usage["tiers"] == tiers
    expected_total = f"{Decimal('50.00') + Decimal(amount):f}"
    assert invoice["total"] == expected_total and invoice["subtotal"] == expected_total
    assert invoice["status"] == "finalized"


def test_in_advance_fee_and_arrears_usage_share_one_invoice(world):
    world.metric("calls")
    world.plan("basic", amount="100.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                   "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 1))
    assert world.run(date(2026, 1, 1))["invoices_created"] == 1
    world.events("calls", [_jan(5), _jan(6), _jan(31, 23)], customer="c1")
    assert world.run(date(2026, 2, 1))["invoices_created"] == 1

    first, second = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    assert lines_of(world.invoice(first["id"])) == [("subscription", None, "1", "100.00")]
    assert (first["period_start"], first["period_end"]) == ("2026-01-01", "2026-02-01")
    second = world.invoice(second["id"])
    assert lines_of(second) == [("subscription", None, "1", "100.00"), ("usage", "calls", "3", "3.00")]
    fee, usage = second["lines"]
    assert (fee["period_start"], fee["period_end"]) == ("2026-02-01", "2026-03-01")  # the new period, in advance
    assert (usage["period_start"], usage["period_end"]) == ("2026-01-01", "2026-02-01")  # the closed one
    assert second["total"] == "103.00"
    assert (first["number"], second["number"]) == ("INV-2026-000001", "INV-2026-000002")


def test_calendar_first_period_is_prorated(world):
    world.metric("calls")
    world.plan("basic", amount="100.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                   "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 15))
    world.events("calls", [_jan(20)] * 1 + [_jan(21), _jan(30)], customer="c1")
    world.run(date(2026, 1, 15))
    world.run(date(2026, 2, 1))
    first, second = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    # 100.00 × 17/31 days (Jan 15–31) = 54.8387… → 54.84
    assert lines_of(world.invoice(first["id"])) == [("subscription", None, "1", "54.84")]
    assert (first["issue_date"], first["period_start"], first["period_end"]) == ("2026-01-15", "2026-01-15", "2026-02-01")
    assert "prorated 17/31 days" in world.invoice(first["id"])["lines"][0]["description"]
    assert lines_of(world.invoice(second["id"])) == [("subscription", None, "1", "100.00"), ("usage", "calls", "3", "3.00")]
    assert world.invoice(second["id"])["period_start"] == "2026-01-15"


def test_immediate_upgrade_invoices_the_closed_part_on_the_old_plan(world, billing_api):
    world.metric("calls")
    world.plan("basic", amount="100.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                   "properties": {"unit_amount": "1.00"}}])
    world.plan("pro", amount="200.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                 "properties": {"unit_amount": "0.50"}}])
    world.customer("c1")
    sub = world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 1))
    world.run(date(2026, 1, 1))
    world.events("calls", [_jan(5)] * 1 + [_jan(5, h) for h in range(1, 10)], customer="c1")  # 10 on basic
    world.events("calls", [_jan(20, h) for h in range(4)], customer="c1")  # 4 on pro

    changed = billing_api.post("/api/v1/subscriptions/s1/change_plan/", {"plan": "pro", "date": "2026-01-16"},
                               format="json")
    assert changed.status_code == 200, changed.content
    invoice = invoice_subscription_now(subscription=sub, on_date=date(2026, 1, 16), reason="upgrade")
    body = world.invoice(invoice.pk)
    # Usage Jan 1–15 on basic: 10 × 1.00; credit −100 × 16/31 = −51.61; charge 200 × 16/31 = 103.23.
    assert sorted(lines_of(body)) == sorted([
        ("usage", "calls", "10", "10.00"), ("proration", None, "1", "-51.61"), ("proration", None, "1", "103.23")])
    assert body["total"] == "61.62" and body["status"] == "finalized"
    assert Subscription.objects.get(pk=sub.pk).usage_billed_through == date(2026, 1, 16)
    assert invoice_subscription_now(subscription=sub, on_date=date(2026, 1, 16)) is None  # nothing left: no duplicate

    world.run(date(2026, 2, 1))
    latest = world.invoice(max(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])["id"])
    # Feb in advance on pro, usage Jan 16–31 on pro: 4 × 0.50.
    assert lines_of(latest) == [("subscription", None, "1", "200.00"), ("usage", "calls", "4", "2.00")]
    assert (latest["lines"][1]["period_start"], latest["lines"][1]["period_end"]) == ("2026-01-16", "2026-02-01")
    assert latest["total"] == "202.00" and latest["status"] == "finalized"


def test_late_usage_is_billed_once_on_the_next_invoice_continuing_the_tiers(world):
    world.metric("calls")
    world.plan("tiered", pay_in_advance=False, charges=[{"billable_metric": "calls", "model": "graduated",
                                                         "properties": GRADUATED}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="tiered", start_date=date(2026, 1, 1))
    world.events("calls", [_jan(1 + i % 28, i % 24) for i in range(50)], customer="c1")
    world.run(date(2026, 2, 1))
    world.events("calls", [_jan(25, h) for h in range(10)], customer="c1")  # late: January is invoiced
    world.events("calls", [_jan(3, h, month=2) for h in range(3)], customer="c1")
    assert UsageEvent.objects.filter(is_late=True).count() == 10

    assert world.run(date(2026, 3, 1))["invoices_created"] == 1
    assert world.run(date(2026, 3, 1))["invoices_created"] == 0
    march = world.invoice(max(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])["id"])
    # February: 3 × 40; the 10 late January calls continue January's tiers: 10 × 35 = 350.
    assert lines_of(march) == [("usage", "calls", "3", "120.00"), ("late_usage", "calls", "10", "350.00")]
    late = march["lines"][1]
    assert (late["period_start"], late["period_end"]) == ("2026-01-01", "2026-02-01")
    assert late["tiers"] == [{"from": "50", "to": None, "units": "10", "unit_amount": "35", "flat_amount": "0",
                              "amount": "350"}]
    assert march["total"] == "470.00"
    assert set(UsageEvent.objects.filter(is_late=True).values_list("late_billed_invoice_id", flat=True)) == {
        Invoice.objects.get(pk=march["id"]).pk}


def test_trial_bills_nothing_until_it_ends(world):
    world.metric("calls")
    world.plan("trial", amount="100.00", trial_days=14, charges=[{"billable_metric": "calls", "model": "standard",
                                                                  "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="trial", start_date=date(2026, 1, 1))
    world.events("calls", [_jan(5), _jan(20), _jan(21)], subscription="s1")
    assert world.run(date(2026, 1, 14))["invoices_created"] == 0
    assert world.run(date(2026, 1, 15))["invoices_created"] == 1
    world.run(date(2026, 2, 1))
    first, second = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    assert lines_of(world.invoice(first["id"])) == [("subscription", None, "1", "54.84")]  # 100 × 17/31
    # The January 5th call fell in the trial: only the two after it are billed.
    assert lines_of(world.invoice(second["id"])) == [("subscription", None, "1", "100.00"), ("usage", "calls", "2", "2.00")]


def test_late_usage_from_the_trial_is_settled_without_charge(world):
    world.metric("calls")
    world.plan("trial", pay_in_advance=False, trial_days=14,
               charges=[{"billable_metric": "calls", "model": "graduated", "properties": GRADUATED}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="trial", start_date=date(2026, 1, 1))
    # 60 on-time trial calls (never billed) and 50 after the trial: the January invoice bills 50 at 40.
    world.events("calls", [_jan(2 + i % 12, i % 24) for i in range(60)], customer="c1")
    world.events("calls", [_jan(15 + i % 16, i % 24) for i in range(50)], customer="c1")
    world.run(date(2026, 2, 1))
    (january,) = world.invoices(subscription="s1")
    assert lines_of(world.invoice(january["id"])) == [("usage", "calls", "50", "2000.00")]

    world.events("calls", [_jan(5, h) for h in range(4)], customer="c1")  # late, in the trial
    world.events("calls", [_jan(20, h) for h in range(2)], customer="c1")  # late, after the trial
    assert UsageEvent.objects.filter(is_late=True).count() == 6
    world.run(date(2026, 3, 1))
    march = world.invoice(max(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])["id"])
    # The two post-trial calls continue January's tiers (51st and 52nd at 35); the trial ones cost nothing.
    assert sorted(lines_of(march)) == sorted([("usage", "calls", "0", "0.00"), ("late_usage", "calls", "2", "70.00"),
                                              ("late_usage", "calls", "4", "0.00")])
    assert march["total"] == "70.00"
    assert not UsageEvent.objects.filter(is_late=True, late_billed_at__isnull=True).exists()


def test_cancel_at_period_end_gets_a_final_invoice_without_a_new_fee(world, billing_api):
    world.metric("calls")
    world.plan("basic", amount="100.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                   "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 1))
    world.run(date(2026, 1, 1))
    world.events("calls", [_jan(3), _jan(4)], customer="c1")
    assert billing_api.post("/api/v1/subscriptions/s1/cancel/", {"at": "period_end", "date": "2026-01-10"},
                            format="json").status_code == 200
    assert world.run(date(2026, 2, 1))["invoices_created"] == 1
    assert world.run(date(2026, 3, 1))["invoices_created"] == 0
    final = world.invoice(max(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])["id"])
    assert lines_of(final) == [("usage", "calls", "2", "2.00")]


def test_jpy_rounds_half_up_to_whole_yen(world):
    world.metric("calls")
    world.plan("yen", currency="JPY", amount="1000", charges=[{"billable_metric": "calls", "model": "standard",
                                                               "properties": {"unit_amount": "0.5"}}])
    world.customer("umbrella", currency="JPY", timezone="Asia/Tokyo")
    world.subscription("s1", customer="umbrella", plan="yen", start_date=date(2026, 1, 15))
    # 2026-01-31T16:00Z is Feb 1st in Tokyo: not January's usage.
    world.events("calls", ["2026-01-20T00:00:00Z", "2026-01-21T00:00:00Z", "2026-01-31T14:59:59Z",
                           "2026-01-31T15:00:00Z"], customer="umbrella")
    world.run(date(2026, 1, 15))
    world.run(date(2026, 2, 1))
    first, second = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    first, second = world.invoice(first["id"]), world.invoice(second["id"])
    assert lines_of(first) == [("subscription", None, "1", "548")]  # 1000 × 17/31 = 548.39 → 548
    assert lines_of(second) == [("subscription", None, "1", "1000"), ("usage", "calls", "3", "2")]  # 1.5 → 2
    assert second["lines"][1]["unit_amount"] == "0.5"
    assert (second["total"], second["currency"]) == ("1002", "JPY")
