"""The sandbox behaves like Stripe where collections depend on it; the gateway maps it to our types."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
import stripe
from django.conf import settings

from common.models import AuditEvent
from invoicing.models import Invoice
from invoicing.services import invoices_auto_finalize
from payments import gateway
from payments.models import Payment, Refund
from payments.services import payment_method_attach
from payments.webhooks import webhook_receive
from tests.payments.factories import customer, draft_invoice

pytestmark = pytest.mark.django_db


def _client():
    return stripe.StripeClient("sk_test_x", base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0)


def test_idempotency_key_replays_and_refuses_other_parameters():
    client = _client()
    cus = client.v1.customers.create(params={"name": "idem"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus["id"]})
    params = {"amount": 1234, "currency": "usd", "customer": cus["id"], "payment_method": pm["id"], "confirm": True,
              "off_session": True}
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "payment_attempt:test-1"})
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": "payment_attempt:test-1"})
    assert first["id"] == again["id"] and again.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(params={**params, "amount": 999}, options={"idempotency_key": "payment_attempt:test-1"})
    other = client.v1.payment_intents.create(params=params, options={"idempotency_key": "payment_attempt:test-2"})
    assert other["id"] != first["id"]


def test_decline_cards_attach_then_decline_every_charge_and_unknown_reasons_do_not_exist():
    client = _client()
    cus = client.v1.customers.create(params={"name": "declines"})
    card = gateway.payment_method_attach(stripe_customer=cus["id"], payment_method="pm_card_chargeDeclinedLostCard")
    for key in ("a", "b"):
        result = gateway.charge_off_session(stripe_customer=cus["id"], payment_method=card.stripe_id,
                                            amount=Decimal("5.00"), currency="EUR", idempotency_key=f"decl-{key}")
        assert (result.status, result.failure_code, result.decline_code, result.advice_code,
                result.network_advice_code) == ("failed", "card_declined", "lost_card", "do_not_try_again", "03")
        assert result.payment_intent.startswith("pi_")
    with pytest.raises(gateway.GatewayError):
        gateway.payment_method_attach(stripe_customer=cus["id"], payment_method="pm_card_chargeDeclinedBadLuck")
    assert {c.last4 for c in gateway.payment_methods_list(stripe_customer=cus["id"])} == {"9987"}


def test_refund_made_in_stripe_is_recorded_from_charge_refunded(stripe_sandbox, django_capture_on_commit_callbacks):
    cust = customer()
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_visa")
    draft = draft_invoice(cust, "60.00")
    with django_capture_on_commit_callbacks(execute=True):
        invoices_auto_finalize(today=date(2026, 3, 1))
    payment = Payment.objects.get(invoice=draft)
    assert payment.status == "succeeded"
    _client().v1.refunds.create(params={"payment_intent": payment.stripe_payment_intent, "amount": 1500})
    sent = stripe_sandbox.wait_for("charge.refunded", match=lambda o: o["payment_intent"] == payment.stripe_payment_intent)
    assert json.loads(sent["body"])["data"]["object"]["amount_refunded"] == 1500
    outcome = webhook_receive(payload=sent["body"], signature=sent["signature"])
    assert outcome.replay is False
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", Decimal("15.0000"))
    refund = Refund.objects.get()
    assert (refund.status, refund.rule) == ("succeeded", "stripe_charge_refunded")
    assert webhook_receive(payload=sent["body"], signature=sent["signature"]).replay is True
    assert Refund.objects.count() == 1


def test_batch_finalize_charges_only_charge_automatically_customers(django_capture_on_commit_callbacks):
    auto, manual = customer(), customer(collection_method="send_invoice")
    payment_method_attach(customer=auto, stripe_payment_method="pm_card_mastercard")
    payment_method_attach(customer=manual, stripe_payment_method="pm_card_visa")
    first, second = draft_invoice(auto, "11.00"), draft_invoice(manual, "22.00")
    with django_capture_on_commit_callbacks(execute=True):
        assert invoices_auto_finalize(today=date(2026, 3, 1)).finalized == 2
    assert Invoice.objects.get(pk=first.pk).status == "paid"
    assert Invoice.objects.get(pk=second.pk).status == "finalized"
    assert list(Payment.objects.values_list("invoice_id", "status")) == [(first.pk, "succeeded")]
    assert AuditEvent.objects.filter(action="payment.succeeded").count() == 1
