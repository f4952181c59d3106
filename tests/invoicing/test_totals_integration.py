"""Invoice totals end to end: lines → coupons → tax → credit balance → prepaid credits, previewed on
drafts, frozen and consumed at finalize (single and batch paths). Every figure is hand-computed."""

from datetime import date
from decimal import Decimal as D

import pytest

from catalog.services import coupon_create, tax_rate_create
from catalog.taxes import EXEMPT_NOTE, REVERSE_CHARGE_NOTE
from common.errors import ConflictError
from common.models import AuditEvent
from customers.models import BalanceTransactionKind, CreditGrant, CreditGrantUsage, Customer, CustomerBalanceTransaction
from customers.selectors import customer_credit_balance
from customers.services import balance_adjust, prepaid_credit_grant
from invoicing.coupons import coupon_apply
from invoicing.models import CouponRedemption, CouponUsage, Invoice, InvoiceLine, InvoiceStatus, LineKind
from invoicing.services import invoice_finalize
from tests.race import race

pytestmark = pytest.mark.django_db


def _jan(day: int, hour: int = 12) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00Z"


def _plan(world, code="pro", *, currency="USD", base="100.00", unit="49.99"):
    """Arrears plan: base fee `base` per month + `unit` per call (one call in January → two lines)."""
    if not any(m["code"] == "calls" for m in world.ok(world.billing.get("/api/v1/billable_metrics/"))["results"]):
        world.metric("calls")
    world.plan(code, currency=currency, amount=base, pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": unit}}])


def _customer_invoice(world, cid, *, plan="pro", calls=1, finalize=False, run_as_of=date(2026, 2, 1), **customer):
    world.customer(cid, **customer)
    world.subscription(f"sub-{cid}", customer=cid, plan=plan, start_date=date(2026, 1, 1))
    if calls:
        world.events("calls", [_jan(10, h) for h in range(calls)], subscription=f"sub-{cid}")
    world.run(run_as_of, finalize=finalize)
    invoices = world.invoices(subscription=f"sub-{cid}")
    return invoices[0] if len(invoices) == 1 else invoices


def _money(invoice):
    return {k: invoice[k] for k in ("subtotal", "discount", "tax", "total", "credit_balance_applied",
                                    "prepaid_applied", "amount_paid", "amount_due")}


def test_coupon_tax_credit_balance_and_prepaid_in_order(world, billing_api):
    """100.00 + 49.99 = 149.99; 10% coupon: 14.999 → 15.00; taxable 134.99; 8.25%: 11.136675 → 11.14;
    total 146.13; credit balance 20.00 → 126.13; prepaid 30.00 → amount due 96.13."""
    _plan(world)
    tax_rate_create(name="Sales tax", country="US", rate="8.25")
    coupon = coupon_create(code="TEN", name="Ten percent", kind="percent", percent_off="10", duration="forever")
    world.customer("acme", country="US")
    customer = Customer.objects.get(external_id="acme")
    coupon_apply(coupon=coupon, customer=customer)
    balance_adjust(customer=customer, currency="USD", amount=D("20.00"), description="goodwill")
    prepaid_credit_grant(customer=customer, currency="USD", amount=D("30.00"), reason="prepaid pack")
    world.subscription("sub-acme", customer="acme", plan="pro", start_date=date(2026, 1, 1))
    world.events("calls", [_jan(10)], subscription="sub-acme")
    world.run(date(2026, 2, 1), finalize=False)
    (draft,) = world.invoices(subscription="sub-acme")

    expected = {"subtotal": "149.99", "discount": "15.00", "tax": "11.14", "total": "146.13",
                "credit_balance_applied": "20.00", "prepaid_applied": "30.00", "amount_paid": "0.00",
                "amount_due": "96.13"}
    # The draft previews the discount, tax and credits; nothing is consumed yet.
    assert draft["status"] == "draft" and _money(draft) == expected
    assert customer_credit_balance(customer=customer, currency="USD") == D("20.00")
    assert CreditGrant.objects.get(customer=customer).remaining == D("30.00")
    assert CouponUsage.objects.count() == 0

    response = billing_api.post(f"/api/v1/invoices/{draft['id']}/finalize/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "finalized" and _money(body) == expected
    assert body["discount_lines"] == [{"coupon_id": coupon.pk, "code": "TEN", "description": "Ten percent (10% off)",
                                       "amount": "15.00"}]
    (tax_line,) = body["tax_lines"]
    assert (tax_line["name"], tax_line["rate"], tax_line["taxable_amount"], tax_line["amount"]) == (
        "Sales tax", "8.25", "134.99", "11.14")
    assert body["tax_note"] == "" and body["credit_notes"] == []
    # Consumed once, for this invoice.
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")
    assert CreditGrant.objects.get(customer=customer).remaining == D("0.00")
    assert CreditGrantUsage.objects.get().invoice_id == draft["id"]
    assert CouponUsage.objects.get().amount == D("15.00")
    audit = AuditEvent.objects.get(action="invoice.finalized", object_id=draft["id"])
    assert audit.inputs["coupons"] == ["TEN"] and audit.inputs["credit_balance_applied"] == "20.00"

    # Finalizing again is a 409 and consumes nothing more.
    assert billing_api.post(f"/api/v1/invoices/{draft['id']}/finalize/").status_code == 409
    assert CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.APPLIED_TO_INVOICE).count() == 1
    assert CreditGrantUsage.objects.count() == 1
    # Partial payments come off what is left after credits.
    paid = billing_api.post(f"/api/v1/invoices/{draft['id']}/mark_paid/", {"amount": "96.13"}, format="json").json()
    assert (paid["status"], paid["amount_paid"], paid["amount_due"]) == ("paid", "96.13", "0.00")


def test_two_tax_rates_are_rounded_separately(world):
    """10.30 taxable: state 5% = 0.515 → 0.52, county 2.5% = 0.2575 → 0.26; tax 0.78 (one 7.5% rate would give 0.77)."""
    _plan(world, "small", base="0", unit="10.30")
    tax_rate_create(name="CA state tax", country="US", region="CA", rate="5")
    tax_rate_create(name="County tax", country="US", region="CA", rate="2.5")
    tax_rate_create(name="Other state", country="US", region="NY", rate="4")
    invoice = _customer_invoice(world, "west", plan="small", finalize=True, country="US", region="CA")
    assert (invoice["status"], invoice["subtotal"], invoice["tax"], invoice["total"], invoice["amount_due"]) == (
        "finalized", "10.30", "0.78", "11.08", "11.08")
    assert [(t["name"], t["rate"], t["amount"]) for t in invoice["tax_lines"]] == [
        ("CA state tax", "5", "0.52"), ("County tax", "2.5", "0.26")]


def test_jpy_invoice_with_coupon_and_tax(world):
    """JPY (no decimals): 1000 + 2500 = 3500; 15% coupon 525; taxable 2975; 10% tax 297.5 → 298; total 3273."""
    _plan(world, "jp", currency="JPY", base="1000", unit="2500")
    tax_rate_create(name="Consumption tax", country="JP", rate="10")
    coupon = coupon_create(code="JP15", name="Launch", kind="percent", percent_off="15", duration="once")
    world.customer("tokyo", currency="JPY", country="JP")
    coupon_apply(coupon=coupon, customer=Customer.objects.get(external_id="tokyo"))
    world.subscription("sub-tokyo", customer="tokyo", plan="jp", start_date=date(2026, 1, 1))
    world.events("calls", [_jan(5)], subscription="sub-tokyo")
    world.run(date(2026, 2, 1))
    (invoice,) = world.invoices(subscription="sub-tokyo")
    assert _money(invoice) == {"subtotal": "3500", "discount": "525", "tax": "298", "total": "3273",
                               "credit_balance_applied": "0", "prepaid_applied": "0", "amount_paid": "0",
                               "amount_due": "3273"}
    assert invoice["tax_lines"][0]["taxable_amount"] == "2975" and invoice["status"] == "finalized"


def test_reverse_charge_eu_b2b_customer(world):
    _plan(world, "eu", currency="EUR", base="100.00", unit="49.99")
    tax_rate_create(name="USt", country="DE", rate="19")
    invoice = _customer_invoice(world, "berlin", plan="eu", finalize=True, currency="EUR", country="DE",
                                tax_id="DE123456789")
    assert (invoice["subtotal"], invoice["tax"], invoice["total"], invoice["tax_lines"]) == ("149.99", "0.00", "149.99", [])
    assert invoice["tax_note"] == REVERSE_CHARGE_NOTE
    # The same country without a tax id (B2C) pays the German rate: 149.99 × 19% = 28.4981 → 28.50.
    b2c = _customer_invoice(world, "munich", plan="eu", finalize=True, currency="EUR", country="DE")
    assert (b2c["tax"], b2c["total"], b2c["tax_note"]) == ("28.50", "178.49", "")


def test_exempt_customer(world):
    _plan(world)
    tax_rate_create(name="Sales tax", country="US", rate="8.25")
    invoice = _customer_invoice(world, "school", finalize=True, country="US", tax_exempt=True)
    assert (invoice["tax"], invoice["total"], invoice["tax_lines"], invoice["tax_note"]) == (
        "0.00", "149.99", [], EXEMPT_NOTE)


def test_once_and_repeating_coupons_over_three_periods(world):
    """Arrears 100.00 a month, Jan–Mar billed in one catch-up run (finalized in one batch):
    a `once` 10% coupon discounts January only; a `repeating` 2-period 5.00 coupon January and February."""
    _plan(world, "base", base="100.00", unit="0")
    once = coupon_create(code="ONCE10", name="Once", kind="percent", percent_off="10", duration="once")
    twice = coupon_create(code="TWO5", name="Two months", kind="fixed", amount_off="5.00", currency="USD",
                          duration="repeating", duration_periods=2)
    world.customer("c-once")
    world.customer("c-rep")
    coupon_apply(coupon=once, customer=Customer.objects.get(external_id="c-once"))
    coupon_apply(coupon=twice, customer=Customer.objects.get(external_id="c-rep"))
    for cid in ("c-once", "c-rep"):
        world.subscription(f"sub-{cid}", customer=cid, plan="base", start_date=date(2026, 1, 1))
    world.run(date(2026, 4, 1))

    def discounts(cid):
        invoices = sorted(world.invoices(subscription=f"sub-{cid}"), key=lambda i: i["period_start"])
        assert [i["status"] for i in invoices] == ["finalized"] * 3
        return [(i["period_start"], i["discount"], i["total"]) for i in invoices]

    assert discounts("c-once") == [("2026-01-01", "10.00", "90.00"), ("2026-02-01", "0.00", "100.00"),
                                   ("2026-03-01", "0.00", "100.00")]
    assert discounts("c-rep") == [("2026-01-01", "5.00", "95.00"), ("2026-02-01", "5.00", "95.00"),
                                  ("2026-03-01", "0.00", "100.00")]
    assert CouponRedemption.objects.get(coupon=once).ended_at is not None
    rep = CouponRedemption.objects.get(coupon=twice)
    assert (rep.periods_applied, rep.ended_at is not None) == (2, True)


def test_batch_finalize_shares_credit_between_invoices_of_one_customer(world):
    """Two subscriptions of one customer, 149.99 each, no tax; credit balance 200.00: the first invoice
    (by subscription creation) takes 149.99, the second the remaining 50.01 and owes 99.98."""
    _plan(world)
    world.customer("multi")
    customer = Customer.objects.get(external_id="multi")
    balance_adjust(customer=customer, currency="USD", amount=D("200.00"), description="migration credit")
    for n in (1, 2):
        world.subscription(f"m{n}", customer="multi", plan="pro", start_date=date(2026, 1, 1))
        world.events("calls", [_jan(10 + n)], subscription=f"m{n}")
    world.run(date(2026, 2, 1))
    invoices = sorted(world.invoices(customer="multi"), key=lambda i: i["number"])
    assert [(i["credit_balance_applied"], i["amount_due"], i["status"]) for i in invoices] == [
        ("149.99", "0.00", "paid"), ("50.01", "99.98", "finalized")]
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")


def test_negative_total_credits_the_balance(world):
    """A net-credit invoice: 50.00 − 80.00 = −30.00; 8.25% gives back −2.475 → −2.48; total −32.48 →
    nothing due, paid at finalize, 32.48 to the customer's balance, which the next invoice uses."""
    tax_rate_create(name="Sales tax", country="US", rate="8.25")
    world.customer("neg", country="US")
    customer = Customer.objects.get(external_id="neg")
    invoice = Invoice.objects.create(customer=customer, currency="USD", billing_date=date(2026, 3, 1),
                                     issue_date=date(2026, 3, 1), reason="manual")
    InvoiceLine.objects.create(invoice=invoice, position=0, kind=LineKind.ADJUSTMENT, description="Service", amount=D("50.00"))
    InvoiceLine.objects.create(invoice=invoice, position=1, kind=LineKind.CREDIT, description="Refund of overcharge",
                               amount=D("-80.00"))
    invoice = invoice_finalize(invoice=invoice)
    assert (invoice.status, invoice.subtotal, invoice.tax, invoice.total, invoice.amount_due) == (
        InvoiceStatus.PAID, D("-30.00"), D("-2.48"), D("-32.48"), D("0.00"))
    assert customer_credit_balance(customer=customer, currency="USD") == D("32.48")
    # Idempotent per invoice: the balance ledger holds one invoice-credit row for it.
    assert CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.INVOICE_CREDIT,
                                                     invoice_id=str(invoice.pk)).count() == 1

    # Next invoice 40.00: tax 3.30; total 43.30; 32.48 from the balance → 10.82 due.
    nxt = Invoice.objects.create(customer=customer, currency="USD", billing_date=date(2026, 4, 1),
                                 issue_date=date(2026, 4, 1), reason="manual")
    InvoiceLine.objects.create(invoice=nxt, position=0, kind=LineKind.ADJUSTMENT, description="Service", amount=D("40.00"))
    nxt = invoice_finalize(invoice=nxt)
    assert (nxt.tax, nxt.total, nxt.credit_balance_applied, nxt.amount_due) == (D("3.30"), D("43.30"), D("32.48"),
                                                                                 D("10.82"))


def test_only_taxable_lines_are_taxed(world):
    """Lines 100.00 (taxable) + 50.00 (not taxable); 10% coupon = 15.00, of which 100/150 → 10.00 falls
    on the taxable line; tax 8.25% × 90.00 = 7.425 → 7.43; total 135.00 + 7.43 = 142.43."""
    tax_rate_create(name="Sales tax", country="US", rate="8.25")
    coupon = coupon_create(code="TENX", name="Ten", kind="percent", percent_off="10", duration="forever")
    world.customer("mixed", country="US")
    customer = Customer.objects.get(external_id="mixed")
    coupon_apply(coupon=coupon, customer=customer)
    invoice = Invoice.objects.create(customer=customer, currency="USD", billing_date=date(2026, 3, 1),
                                     issue_date=date(2026, 3, 1), reason="manual")
    InvoiceLine.objects.create(invoice=invoice, position=0, kind=LineKind.ADJUSTMENT, description="Software",
                               amount=D("100.00"))
    InvoiceLine.objects.create(invoice=invoice, position=1, kind=LineKind.ADJUSTMENT, description="Pass-through fee",
                               amount=D("50.00"), taxable=False)
    invoice = invoice_finalize(invoice=invoice)
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (D("150.00"), D("15.00"), D("7.43"),
                                                                               D("142.43"))
    assert invoice.tax_lines[0]["taxable_amount"] == "90.00"


@pytest.mark.django_db(transaction=True)
def test_concurrent_finalization_consumes_credit_once(world):
    """Two threads finalize the same draft and two threads finalize two drafts of one customer with
    20.00 of credit balance and 30.00 prepaid: one finalize wins per draft, credits are spent once."""
    _plan(world)
    world.customer("race")
    customer = Customer.objects.get(external_id="race")
    balance_adjust(customer=customer, currency="USD", amount=D("20.00"), description="goodwill")
    prepaid_credit_grant(customer=customer, currency="USD", amount=D("30.00"), reason="pack")
    for n in (1, 2):
        world.subscription(f"r{n}", customer="race", plan="pro", start_date=date(2026, 1, 1))
        world.events("calls", [_jan(10 + n)], subscription=f"r{n}")
    world.run(date(2026, 2, 1), finalize=False)
    drafts = list(Invoice.objects.filter(customer=customer).order_by("pk"))

    raced = race(*[lambda inv=inv: invoice_finalize(invoice=inv) for inv in (drafts[0], drafts[0], drafts[1], drafts[1])],
                 join_timeout=60)
    results = raced.returned
    errors = [e.code if isinstance(e, ConflictError) else e for e in raced.errors]
    assert sorted(errors) == ["invalid_state", "invalid_state"] and len(results) == 2
    invoices = list(Invoice.objects.filter(customer=customer))
    assert sum((i.credit_balance_applied for i in invoices), D(0)) == D("20.00")
    assert sum((i.prepaid_applied for i in invoices), D(0)) == D("30.00")
    assert sorted(i.amount_due for i in invoices) == [D("99.99"), D("149.99")]
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")
    assert CreditGrant.objects.get(customer=customer).remaining == D("0.00")
    assert CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.APPLIED_TO_INVOICE).count() == 1
    assert sorted(i.number for i in invoices) == ["INV-2026-000001", "INV-2026-000002"]


def test_void_returns_credit_balance_and_prepaid_once(world, billing_api):
    """149.99 invoice (no tax): 20.00 from the balance, 30.00 prepaid, 99.99 due. Voiding gives both back."""
    _plan(world)
    world.customer("acme", country="US")
    customer = Customer.objects.get(external_id="acme")
    balance_adjust(customer=customer, currency="USD", amount=D("20.00"), description="goodwill")
    grant = prepaid_credit_grant(customer=customer, currency="USD", amount=D("30.00"), reason="prepaid pack")
    world.subscription("sub-acme", customer="acme", plan="pro", start_date=date(2026, 1, 1))
    world.events("calls", [_jan(10)], subscription="sub-acme")
    world.run(date(2026, 2, 1))
    (invoice,) = world.invoices(subscription="sub-acme")
    assert (invoice["status"], invoice["credit_balance_applied"], invoice["prepaid_applied"], invoice["amount_due"]) == (
        "finalized", "20.00", "30.00", "99.99")
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")

    voided = billing_api.post(f"/api/v1/invoices/{invoice['id']}/void/", {"reason": "wrong plan"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    assert customer_credit_balance(customer=customer, currency="USD") == D("20.00")
    grant.refresh_from_db()
    assert grant.remaining == D("30.00")
    assert CreditGrantUsage.objects.get().returned_at is not None
    assert billing_api.post(f"/api/v1/invoices/{invoice['id']}/void/", {}, format="json").status_code == 409
    assert customer_credit_balance(customer=customer, currency="USD") == D("20.00")  # returned once
    assert AuditEvent.objects.get(action="invoice_credits.returned").inputs["prepaid"] == "30.00"
