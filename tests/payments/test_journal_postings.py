"""Cash in the revenue journal (revrec, DESIGN.md §8: payment Dr cash / Cr AR), driven through the
payments services against the local Stripe sandbox. Every payment posts exactly once, whichever
path wrote it (card, manual, legacy invoice_mark_paid); refunds without a credit note and
disputes post their cash out. Figures by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.utils import timezone

from invoicing.models import Invoice
from invoicing.services import invoice_mark_paid
from payments.models import Payment, Refund
from payments.services import (payment_attempt_create, payment_attempt_execute, payment_record_manual,
                               refund_execute)
from revrec.models import Account, JournalEntry, JournalLine
from revrec.postings import revrec_sync
from revrec.reports import reconciliation, trial_balance
from revrec.schedules import month_start
from tests.payments.factories import customer, draft_invoice
from tests.payments.test_payments_api import _attach, _finalize, _post_webhook

pytestmark = pytest.mark.django_db


def _account(account, **filters):
    rows = JournalLine.objects.filter(account=account, **filters)
    return sum((r.debit - r.credit for r in rows), D(0))


def _check_books():
    today = timezone.localdate()
    assert D(trial_balance(currency="USD", through=today)["total"]) == 0
    return reconciliation(month=month_start(today), currency="USD")  # asserts the kinds sum exactly


def test_card_and_manual_payments_post_once(billing_api, django_capture_on_commit_callbacks):
    card_customer = customer()
    _attach(billing_api, card_customer)
    paid = _finalize(billing_api, draft_invoice(card_customer, "100.00", "20.50"), django_capture_on_commit_callbacks)
    assert paid["status"] == "paid"

    manual_customer = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(manual_customer, "100.00"), django_capture_on_commit_callbacks)
    payment_record_manual(invoice=Invoice.objects.get(pk=invoice["id"]), amount=D("60.00"), method="check")
    invoice_mark_paid(invoice=Invoice.objects.get(pk=invoice["id"]))  # the legacy path: 40.00 more
    assert Payment.objects.filter(invoice_id=invoice["id"]).count() == 2

    first = revrec_sync()
    assert first.payments == 3 and revrec_sync().payments == 0
    received = JournalEntry.objects.filter(source_type="payment", kind="received")
    assert sorted(e.source_id for e in received) == sorted(str(p.pk) for p in Payment.objects.all())
    assert _account(Account.CASH, invoice_id=paid["id"]) == D("120.50")
    assert _account(Account.ACCOUNTS_RECEIVABLE, invoice_id=paid["id"]) == 0
    assert _account(Account.CASH, invoice_id=invoice["id"]) == D("100.00")
    assert _account(Account.ACCOUNTS_RECEIVABLE, invoice_id=invoice["id"]) == 0
    rec = _check_books()
    assert (D(rec["billed"]), D(rec["collected"])) == (D("220.50"), D("220.50"))


def test_duplicate_card_payment_is_refunded_through_customer_credit(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    _attach(billing_api, cust)
    invoice = _finalize(billing_api, draft_invoice(cust, "80.00"), django_capture_on_commit_callbacks)
    # A card charge in flight when finance records a bank transfer for the invoice: the card money
    # arrives after the invoice is settled and is refunded automatically (rule refund_overpayment).
    attempt = payment_attempt_create(invoice=Invoice.objects.get(pk=invoice["id"]))
    payment_record_manual(invoice=Invoice.objects.get(pk=invoice["id"]), amount=D("80.00"))
    assert Invoice.objects.get(pk=invoice["id"]).status == "paid"
    with django_capture_on_commit_callbacks(execute=False):
        payment_attempt_execute(attempt_id=attempt.pk)
    duplicate = Payment.objects.get(attempt=attempt)
    assert (duplicate.amount, duplicate.amount_applied) == (D("80.00"), D("0.00"))
    (refund,) = Refund.objects.filter(payment=duplicate)
    refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.credit_note_id is None

    result = revrec_sync()
    assert (result.payments, result.refunds) == (2, 1)
    lines = sorted((ln.account, ln.debit, ln.credit, ln.invoice_id is None) for ln in
                   JournalLine.objects.filter(entry__source_type="payment", entry__source_id=str(duplicate.pk)))
    assert lines == [(Account.CASH, D("80.00"), D(0), True), (Account.CUSTOMER_CREDIT, D(0), D("80.00"), True)]
    out = sorted((ln.account, ln.debit, ln.credit) for ln in
                 JournalLine.objects.filter(entry__source_type="refund", entry__source_id=str(refund.pk)))
    assert out == [(Account.CASH, D(0), D("80.00")), (Account.CUSTOMER_CREDIT, D("80.00"), D(0))]
    assert _account(Account.CUSTOMER_CREDIT) == 0 and _account(Account.CASH) == D("80.00")
    assert _account(Account.ACCOUNTS_RECEIVABLE) == 0
    rec = _check_books()
    assert (D(rec["billed"]), D(rec["collected"])) == (D("80.00"), D("80.00"))
    assert revrec_sync().refunds == 0


def test_dispute_reopens_receivable_against_cash(client, billing_api, stripe_sandbox,
                                                 django_capture_on_commit_callbacks):
    cust = customer()
    _attach(billing_api, cust, "pm_card_createDispute")
    invoice = _finalize(billing_api, draft_invoice(cust, "80.00"), django_capture_on_commit_callbacks)
    payment = Payment.objects.get(invoice_id=invoice["id"])
    sent = stripe_sandbox.wait_for("charge.dispute.created",
                                   match=lambda obj: obj["payment_intent"] == payment.stripe_payment_intent)
    assert _post_webhook(client, sent["body"], sent["signature"]).status_code == 200
    result = revrec_sync()
    assert (result.payments, result.reversals) == (1, 1)
    reversed_ = JournalEntry.objects.get(source_type="payment", kind="reversed")
    assert sorted((ln.account, ln.debit, ln.credit) for ln in JournalLine.objects.filter(entry=reversed_)) == [
        (Account.ACCOUNTS_RECEIVABLE, D("80.00"), D(0)), (Account.CASH, D(0), D("80.00"))]
    assert _account(Account.ACCOUNTS_RECEIVABLE, invoice_id=invoice["id"]) == D("80.00")
    assert _account(Account.CASH) == 0
    rec = _check_books()
    assert (D(rec["billed"]), D(rec["collected"])) == (D("80.00"), D("0.00"))
    assert {k["kind"]: D(k["amount"]) for k in rec["billed_vs_collected"]}["outstanding"] == D("80.00")
    assert revrec_sync().reversals == 0


def test_payments_posted_by_the_first_version_are_not_posted_again(billing_api, django_capture_on_commit_callbacks):
    """The first version posted `invoice.payment_recorded` audit rows; the sweep now posts Payment
    rows. A payment already posted under its audit row is recognized and skipped."""
    from common.models import AuditEvent
    from revrec.cash import post_payment

    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "100.00"), django_capture_on_commit_callbacks)
    payment_record_manual(invoice=Invoice.objects.get(pk=invoice["id"]), amount=D("30.00"))
    invoice_mark_paid(invoice=Invoice.objects.get(pk=invoice["id"]))  # 70.00, legacy path
    for event in AuditEvent.objects.filter(action="invoice.payment_recorded", object_id=invoice["id"]):
        post_payment(source_id=str(event.pk), invoice_id=invoice["id"], customer_id=cust.pk,
                     amount=D(event.inputs["amount"]), currency="USD", on=timezone.localdate())
    assert revrec_sync().payments == 0
    assert _account(Account.CASH) == D("100.00") and _account(Account.ACCOUNTS_RECEIVABLE, invoice_id=invoice["id"]) == 0
