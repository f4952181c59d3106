"""Races with real, separate database connections (one per thread) against the sandbox."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import stripe
from django.conf import settings

from common.errors import ApplicationError
from invoicing.models import Invoice
from invoicing.services import invoice_finalize
from payments import gateway
from payments.models import Payment, PaymentAttempt, Refund
from payments.services import (payment_attempt_create, payment_attempt_execute, payment_charge_invoice,
                               payment_method_attach, payment_record_manual)
from payments.webhooks import webhook_receive
from tests.payments.conftest import WEBHOOK_SECRET
from tests.payments.factories import customer, draft_invoice
from tests.race import race

pytestmark = pytest.mark.django_db(transaction=True)


def _intents_for(stripe_customer: str) -> list:
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": settings.STRIPE_API_BASE})
    return [pi for pi in client.v1.payment_intents.list(params={"limit": 100})["data"] if pi["customer"] == stripe_customer]


def _signed_success(intent_id: str, attempt_id: int) -> tuple[bytes, str]:
    body = json.dumps({"id": f"evt_{intent_id}", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": intent_id, "metadata": {"payment_attempt": str(attempt_id)}}}}).encode()
    ts = int(time.time())
    return body, f"t={ts},v1={stripe.WebhookSignature._compute_signature(f'{ts}.{body.decode()}', WEBHOOK_SECRET)}"


@pytest.mark.parametrize("round_", range(3))
def test_webhook_and_manual_payment_racing_never_pay_twice(round_):
    cust = customer()
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_visa")
    cust.collection_method = "send_invoice"  # finalize without charging; the charge below is ours
    cust.save(update_fields=["collection_method"])
    invoice = invoice_finalize(invoice=draft_invoice(cust, "90.00"))
    # The card was charged in Stripe but our synchronous answer was lost: only the webhook will tell.
    attempt = payment_attempt_create(invoice=invoice)
    cust.refresh_from_db()
    result = gateway.charge_off_session(stripe_customer=cust.stripe_customer_id,
                                        payment_method=attempt.payment_method.stripe_payment_method,
                                        amount=attempt.amount, currency="USD", idempotency_key=attempt.idempotency_key,
                                        metadata={"payment_attempt": attempt.pk})
    assert result.succeeded
    body, signature = _signed_success(result.payment_intent, attempt.pk)

    def manual():
        return payment_record_manual(invoice=invoice, amount=Decimal("90.00"), method="bank_transfer")

    def webhook():
        return webhook_receive(payload=body, signature=signature)

    errors = race(*([webhook, manual] if round_ % 2 else [manual, webhook]), join_timeout=60).errors
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", Decimal("90.0000"), Decimal("0.0000"))
    card = Payment.objects.get(attempt=attempt)
    manual_rows = Payment.objects.filter(invoice=invoice, method="bank_transfer")
    assert card.status in ("succeeded", "refunded")
    if manual_rows.exists():  # the bank transfer won: the card money goes back, in full
        assert errors == []
        assert (card.amount_applied, card.status, card.amount_refunded) == (Decimal("0"), "refunded", Decimal("90.0000"))
        assert Refund.objects.get(payment=card).amount == Decimal("90.0000")
    else:  # the card won: the transfer was refused as more than is due / nothing due
        assert len(errors) == 1 and isinstance(errors[0], ApplicationError)
        assert card.amount_applied == Decimal("90.0000") and not Refund.objects.exists()


def test_two_finalize_calls_never_charge_twice():
    cust = customer()
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_visa")
    draft = draft_invoice(cust, "33.00")
    errors = race(lambda: invoice_finalize(invoice=draft), lambda: invoice_finalize(invoice=draft), join_timeout=60).errors
    assert len(errors) == 1 and getattr(errors[0], "status_code", None) == 409
    invoice = Invoice.objects.get(pk=draft.pk)
    assert (invoice.status, invoice.amount_paid) == ("paid", Decimal("33.0000"))
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
    cust.refresh_from_db()
    assert [pi["amount"] for pi in _intents_for(cust.stripe_customer_id)] == [3300]


def test_two_pay_now_calls_and_a_duplicated_task_charge_once():
    cust = customer(collection_method="send_invoice")
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_visa")
    invoice = invoice_finalize(invoice=draft_invoice(cust, "21.00"))
    errors = race(lambda: payment_charge_invoice(invoice=invoice),
                  lambda: payment_charge_invoice(invoice=invoice), join_timeout=60).errors
    assert len(errors) == 1 and errors[0].status_code == 409
    assert errors[0].code in ("charge_in_progress", "nothing_due")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", Decimal("21.0000"))
    cust.refresh_from_db()
    assert [pi["amount"] for pi in _intents_for(cust.stripe_customer_id)] == [2100]

    # One attempt executed twice at once (a redelivered Celery task): one PaymentIntent, applied once.
    other = invoice_finalize(invoice=draft_invoice(cust, "5.00"))
    attempt = payment_attempt_create(invoice=other)
    errors = race(lambda: payment_attempt_execute(attempt_id=attempt.pk),
                  lambda: payment_attempt_execute(attempt_id=attempt.pk), join_timeout=60).errors
    assert errors == []
    other.refresh_from_db()
    assert (other.status, other.amount_paid) == ("paid", Decimal("5.0000"))
    assert sorted(pi["amount"] for pi in _intents_for(cust.stripe_customer_id)) == [500, 2100]
    assert Payment.objects.filter(invoice=other, status="succeeded").count() == 1
