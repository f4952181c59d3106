"""Invoice explanations (every figure in the text is a figure of the invoices; drivers sum to the
delta) and cost allocation (largest remainder, exact sums), hand-computed."""

import re
from datetime import date
from decimal import Decimal

import pytest

from invoicing.allocation import split_largest_remainder

pytestmark = pytest.mark.django_db
NUMBER = re.compile(r"\d+(?:\.\d+)?")


NOT_FIGURES = {"id", "customer", "subscription", "review_reasons", "credit_notes", "approved_by", "payments"}


def _numbers_of(invoice: dict) -> set[Decimal]:
    """Every figure the invoice shows (amounts, quantities, prices, tiers, dates, its number); not its
    ids, timestamps or review notes, whose digits would let any number through."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in NOT_FIGURES and not k.endswith(("_at", "_url")):
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            found.update(Decimal(n) for n in NUMBER.findall(str(value)))

    walk(invoice)
    return found


def _calls(world, month, n, team=None):
    props = {"team": team} if team else {}
    world.events("calls", [(f"2026-{month:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i // 24 % 60:02d}:00Z", props)
                           for i in range(n)], customer="c1")


def test_explanation_lines_summary_and_drivers(world, billing_api):
    world.metric("calls")
    world.plan("pro", amount="50.00", pay_in_advance=False, charges=[{
        "billable_metric": "calls", "model": "graduated",
        "properties": {"tiers": [{"up_to": 100, "unit_amount": "0.10"}, {"up_to": None, "unit_amount": "0.05"}]}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="pro", start_date=date(2026, 1, 1), quantity=2)
    _calls(world, 1, 150)
    _calls(world, 2, 300)
    world.run(date(2026, 3, 1))
    jan, feb = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    assert (jan["total"], feb["total"]) == ("112.50", "120.00")  # 2 × 50 + 100 × 0.10 + 50 × 0.05; 2 × 50 + 10 + 200 × 0.05

    body = billing_api.get(f"/api/v1/invoices/{feb['id']}/explanation/").json()
    assert len(body["lines"]) == len(feb["lines"]) == 2
    assert body["lines"][1]["text"] == (
        "Calls from 2026-02-01 until 2026-03-01: 300 units (100 units in tier 0 to 100 at 0.1 = 10; "
        "200 units in tier 100 and above at 0.05 = 10) = 20.00.")
    assert body["lines"][0]["text"] == "Base fee from 2026-02-01 until 2026-03-01: 2 seat(s) × 50.00 = 100.00."
    comparison = body["comparison"]
    assert (comparison["previous_invoice"], comparison["total_delta"]) == (jan["id"], "7.50")
    # volume: 300 calls at January's prices = 20.00, against 12.50 then → +7.50; no price, seat or tax change
    assert [d["amount"] for d in comparison["drivers"]] == ["7.50"]
    assert sum(Decimal(d["amount"]) for d in comparison["drivers"]) == Decimal(comparison["total_delta"])

    allowed = _numbers_of(world.invoice(feb["id"])) | _numbers_of(world.invoice(jan["id"]))
    texts = [body["summary"], *(ln["text"] for ln in body["lines"])]
    for d in comparison["drivers"]:
        texts.append(d["text"])
        allowed.add(Decimal(d["amount"]))
    for text in texts:
        for n in NUMBER.findall(text):
            assert Decimal(n) in allowed, (n, text)

    first = billing_api.get(f"/api/v1/invoices/{jan['id']}/explanation/").json()
    assert first["comparison"]["previous_invoice"] is None and first["comparison"]["drivers"] == []
    assert billing_api.get("/api/v1/invoices/00000000-0000-0000-0000-000000000000/explanation/").status_code == 404


def test_largest_remainder_by_hand():
    q = Decimal("0.01")
    # 11.00 over 7:7:6:1 → 366.67, 366.67, 314.29, 52.38 cents → floors 366+366+314+52 = 1098, 2 more to a and b
    got = split_largest_remainder(Decimal("11.00"), {"a": Decimal(7), "b": Decimal(7), "c": Decimal(6), None: Decimal(1)}, q)
    assert got == {"a": Decimal("3.67"), "b": Decimal("3.67"), "c": Decimal("3.14"), None: Decimal("0.52")}
    assert split_largest_remainder(Decimal("0.01"), {"x": Decimal(1), "y": Decimal(1)}, q) == {"x": Decimal("0.01"),
                                                                                               "y": Decimal("0.00")}


def test_allocation_by_team(world, billing_api):
    world.metric("calls")
    world.plan("metered", amount="0", pay_in_advance=False, charges=[{
        "billable_metric": "calls", "model": "graduated",
        "properties": {"tiers": [{"up_to": 10, "unit_amount": "0"}, {"up_to": None, "unit_amount": "1"}]}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    _calls(world, 1, 7, "a")
    _calls(world, 1, 7, "b")
    _calls(world, 1, 6, "c")
    _calls(world, 1, 1)
    world.run(date(2026, 2, 1), finalize=False)
    (inv,) = world.invoices(subscription="s1")
    assert inv["total"] == "11.00"  # 21 calls, the first 10 free
    body = billing_api.get(f"/api/v1/invoices/{inv['id']}/allocation/?by=team").json()
    assert body["by"] == "team"
    assert body["groups"] == [{"value": "a", "amount": "3.67", "units": "7"}, {"value": "b", "amount": "3.67", "units": "7"},
                              {"value": "c", "amount": "3.14", "units": "6"}]
    assert (body["unattributed"], body["unattributed_units"]) == ("0.52", "1")
    assert sum(Decimal(g["amount"]) for g in body["groups"]) + Decimal(body["unattributed"]) == Decimal("11.00")
    assert billing_api.get(f"/api/v1/invoices/{inv['id']}/allocation/").status_code == 400
    nobody = billing_api.get(f"/api/v1/invoices/{inv['id']}/allocation/?by=region").json()
    assert (nobody["groups"], nobody["unattributed"]) == ([], "11.00")


def test_every_driver_by_hand_upgrade_seats_coupon_ended_and_tax(world, billing_api):
    """January: 1 seat of basic (20.00) + 100 calls at 0.10, a 10 % coupon for one period, 20 % tax.
    February: upgraded to pro (30.00 a seat, calls at 0.20) with 3 seats from Feb 1, 200 calls, the
    coupon over. Every driver hand-computed; they sum to the delta exactly."""
    from catalog.models import Coupon
    from catalog.services import coupon_create, tax_rate_create
    from customers.models import Customer
    from invoicing.coupons import coupon_apply
    from subscriptions.models import Subscription
    from subscriptions.services import subscription_change_plan, subscription_change_quantity

    world.metric("calls")
    world.plan("basic", amount="20.00", pay_in_advance=False, charges=[
        {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.10"}}])
    world.plan("pro", amount="30.00", pay_in_advance=False, charges=[
        {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.20"}}])
    tax_rate_create(name="TVA", country="FR", rate=Decimal("20"))
    world.customer("c1", country="FR")
    world.subscription("s1", customer="c1", plan="basic", start_date=date(2026, 1, 1))
    coupon_create(code="WELCOME10", name="Welcome", kind="percent", percent_off=Decimal("10"), duration="repeating",
                  duration_periods=1)
    coupon_apply(coupon=Coupon.objects.get(code="WELCOME10"), customer=Customer.objects.get(external_id="c1"),
                 on=date(2026, 1, 1))
    _calls(world, 1, 100)
    world.run(date(2026, 2, 1))
    sub = Subscription.objects.get(external_id="s1")
    subscription_change_plan(subscription=sub, plan_code="pro", on=date(2026, 2, 1), today=date(2026, 2, 1))
    subscription_change_quantity(subscription=Subscription.objects.get(pk=sub.pk), quantity=3, on=date(2026, 2, 1),
                                 today=date(2026, 2, 1))
    _calls(world, 2, 200)
    world.run(date(2026, 3, 1))
    jan, feb = sorted(world.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    # January: 20.00 + 10.00 = 30.00; −3.00 (10 %); tax 20 % of 27.00 = 5.40 → 32.40
    assert (jan["subtotal"], jan["discount"], jan["tax"], jan["total"]) == ("30.00", "3.00", "5.40", "32.40")
    # February: 3 × 30.00 + 200 × 0.20 = 130.00; no discount; tax 26.00 → 156.00
    assert (feb["subtotal"], feb["discount"], feb["tax"], feb["total"]) == ("130.00", "0.00", "26.00", "156.00")

    body = billing_api.get(f"/api/v1/invoices/{feb['id']}/explanation/").json()
    comparison = body["comparison"]
    assert comparison["total_delta"] == "123.60"
    amounts = [d["amount"] for d in comparison["drivers"]]
    # volume: 200 calls at January's 0.10 = 20.00 − 10.00 → 10.00; price: 40.00 − 20.00 → 20.00;
    # seats: (3 − 1) × 20.00 → 40.00; base price: (30.00 − 20.00) × 3 → 30.00; proration 0 (omitted);
    # the coupon ended: −(0.00 − 3.00) → 3.00; taxes: 26.00 − 5.40 → 20.60. Sum 123.60.
    assert amounts == ["10.00", "20.00", "40.00", "30.00", "3.00", "20.60"]
    assert sum(Decimal(a) for a in amounts) == Decimal("123.60")
    allowed = _numbers_of(world.invoice(feb["id"])) | _numbers_of(world.invoice(jan["id"])) | {Decimal(a) for a in amounts}
    january = billing_api.get(f"/api/v1/invoices/{jan['id']}/explanation/").json()
    assert "Discount WELCOME10: 3.00." in january["summary"] and "TVA at 20" in january["summary"]
    texts = [body["summary"], january["summary"], *(ln["text"] for ln in body["lines"] + january["lines"]),
             *(d["text"] for d in comparison["drivers"])]
    for text in texts:
        for n in NUMBER.findall(text.replace("WELCOME10", "")):  # the coupon's code is a name, not a figure
            assert Decimal(n) in allowed, (n, text)


def test_explanation_on_the_pdf_only_behind_the_setting(world, settings):
    from invoicing.models import Invoice
    from invoicing.pdf import render_invoice_html, render_invoice_pdf

    world.metric("calls")
    world.plan("metered", amount="0", pay_in_advance=False, charges=[
        {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.10"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    _calls(world, 1, 100)
    _calls(world, 2, 175)
    world.run(date(2026, 3, 1))
    jan, feb = sorted(Invoice.objects.all(), key=lambda i: i.billing_date)
    assert (jan.total, feb.total) == (Decimal("10.00"), Decimal("17.50"))
    assert "What changed" not in render_invoice_html(feb)  # off by default
    settings.INVOICE_PDF_EXPLANATION = True
    html = render_invoice_html(feb)
    assert "What changed since the previous invoice ($10.00): $7.50" in html
    assert "Calls: 175 units against 100 units on the previous invoice (10.00 then, 17.50 now): $7.50" in html
    assert "What changed" not in render_invoice_html(jan)  # nothing to compare with
    assert render_invoice_pdf(feb).startswith(b"%PDF")
