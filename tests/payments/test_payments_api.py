"""End to end through the API against the local Stripe sandbox (issue 13 "Done when")."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import stripe

from common.models import AuditEvent
from invoicing.models import Invoice
from payments.models import Payment, PaymentAttempt, Refund, WebhookEvent
from tests.payments.conftest import WEBHOOK_SECRET
from tests.payments.factories import customer, draft_invoice

pytestmark = pytest.mark.django_db


def _attach(api, cust, pm="pm_card_visa", **extra):
    response = api.post(f"/api/v1/customers/{cust.external_id}/payment_methods/",
                        {"stripe_payment_method": pm, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _finalize(api, invoice, capture):
    with capture(execute=True):
        response = api.post(f"/api/v1/invoices/{invoice.pk}/finalize/")
    assert response.status_code == 200, response.content
    return api.get(f"/api/v1/invoices/{invoice.pk}/").json()


def _signed(payload: dict | bytes, secret: str = WEBHOOK_SECRET, ts: int | None = None) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ts = ts or int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{ts}.{body.decode()}", secret)
    return body, f"t={ts},v1={sig}"


def _post_webhook(client, body: bytes, signature: str):
    return client.post("/api/v1/stripe/webhook/", data=body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=signature)


def test_visa_finalize_pays_the_invoice(billing_api, django_capture_on_commit_callbacks):
    cust = customer()
    method = _attach(billing_api, cust)
    assert (method["brand"], method["last4"], method["exp_month"], method["exp_year"], method["default"]) == (
        "visa", "4242", 12, 2034, True)
    listed = billing_api.get(f"/api/v1/customers/{cust.external_id}/payment_methods/").json()
    assert [m["last4"] for m in listed] == ["4242"]

    invoice = _finalize(billing_api, draft_invoice(cust, "100.00", "20.50"), django_capture_on_commit_callbacks)
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_due"]) == ("paid", "120.50", "0.00")
    (payment,) = billing_api.get(f"/api/v1/payments/?invoice={invoice['id']}").json()["results"]
    assert (payment["status"], payment["method"], payment["amount"], payment["currency"]) == (
        "succeeded", "card", "120.50", "USD")
    assert payment["stripe_payment_intent"].startswith("pi_") and payment["attempt_number"] == 1
    assert billing_api.get(f"/api/v1/payments/{payment['id']}/").json()["id"] == payment["id"]
    actions = set(AuditEvent.objects.filter(object_id__in=[invoice["id"], payment["id"]]).values_list("action", flat=True))
    assert {"payment.succeeded", "invoice.paid", "invoice.payment_recorded"} <= actions
    # The sandbox got exactly one PaymentIntent, for 12050 cents, keyed by our attempt row.
    intent = stripe.StripeClient("sk_test_x", base_addresses={"api": _base()}).v1.payment_intents.retrieve(
        payment["stripe_payment_intent"])
    assert (intent["amount"], intent["status"]) == (12050, "succeeded")
    assert intent["metadata"]["payment_attempt"] == str(PaymentAttempt.objects.get().pk)


def _base():
    from django.conf import settings

    return settings.STRIPE_API_BASE


@pytest.mark.parametrize("pm, decline, advice", [
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "try_again_later"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "confirm_card_data"),
    ("pm_card_chargeDeclinedLostCard", "lost_card", "do_not_try_again"),
    ("pm_card_chargeDeclinedStolenCard", "stolen_card", "do_not_try_again"),
    ("pm_card_chargeDeclinedProcessingError", "processing_error", "try_again_later"),
    ("pm_card_chargeDeclinedFraudulent", "fraudulent", "do_not_try_again"),
    ("pm_card_chargeDeclinedDoNotHonor", "do_not_honor", "try_again_later"),
    ("pm_card_authenticationRequired", "authentication_required", "try_again_later"),
])
def test_declining_card_leaves_the_invoice_open_with_the_decline(billing_api, django_capture_on_commit_callbacks,
                                                                  pm, decline, advice):
    cust = customer()
    _attach(billing_api, cust, pm)
    invoice = _finalize(billing_api, draft_invoice(cust, "50.00"), django_capture_on_commit_callbacks)
    assert (invoice["status"], invoice["amount_due"]) == ("finalized", "50.00")
    attempt = PaymentAttempt.objects.get(invoice_id=invoice["id"])
    assert (attempt.status, attempt.decline_code, attempt.advice_code, attempt.attempt_number) == (
        "failed", decline, advice, 1)
    (payment,) = billing_api.get(f"/api/v1/payments/?invoice={invoice['id']}&status=failed").json()["results"]
    assert (payment["decline_code"], payment["status"]) == (decline, "failed")
    event = AuditEvent.objects.get(action="payment.failed")
    assert event.object_id == str(attempt.pk)
    assert {k: event.inputs[k] for k in ("invoice", "customer", "decline_code", "advice_code", "attempt_number")} == {
        "invoice": invoice["id"], "customer": cust.pk, "decline_code": decline, "advice_code": advice,
        "attempt_number": 1}

    # "Retry now" is attempt 2 with its own idempotency key; it declines again.
    retry = billing_api.post(f"/api/v1/invoices/{invoice['id']}/pay/", {}, format="json")
    assert retry.status_code == 201, retry.content
    assert (retry.json()["status"], retry.json()["decline_code"], retry.json()["attempt_number"]) == (
        "failed", decline, 2)


def test_retry_with_a_new_card_pays_and_nothing_due_is_409(billing_api, django_capture_on_commit_callbacks):
    cust = customer()
    _attach(billing_api, cust, "pm_card_chargeDeclinedInsufficientFunds")
    invoice = _finalize(billing_api, draft_invoice(cust, "75.25"), django_capture_on_commit_callbacks)
    _attach(billing_api, cust, "pm_card_mastercard")
    paid = billing_api.post(f"/api/v1/invoices/{invoice['id']}/pay/", {}, format="json")
    assert paid.status_code == 201 and paid.json()["status"] == "succeeded"
    assert Invoice.objects.get(pk=invoice["id"]).status == "paid"
    again = billing_api.post(f"/api/v1/invoices/{invoice['id']}/pay/", {}, format="json")
    assert again.status_code == 409 and "invoice" in again.json()["error"]["fields"]


def test_pay_without_a_method_is_409_and_send_invoice_waits(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "10.00"), django_capture_on_commit_callbacks)
    assert invoice["status"] == "finalized" and not PaymentAttempt.objects.exists()
    response = billing_api.post(f"/api/v1/invoices/{invoice['id']}/pay/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_payment_method"
    assert "payment_method" in response.json()["error"]["fields"]


def test_charge_automatically_without_a_method_records_a_failed_attempt(billing_api, django_capture_on_commit_callbacks):
    cust = customer()
    invoice = _finalize(billing_api, draft_invoice(cust, "10.00"), django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(invoice_id=invoice["id"])
    assert (attempt.status, attempt.failure_code) == ("failed", "no_payment_method")
    assert AuditEvent.objects.filter(action="payment.failed", object_id=str(attempt.pk)).exists()


def test_manual_payments_partial_then_full_and_bad_input(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "100.00"), django_capture_on_commit_callbacks)
    url = f"/api/v1/invoices/{invoice['id']}/payments/"

    def bad(body, field, status=400):
        response = billing_api.post(url, body, format="json")
        assert response.status_code == status, response.content
        assert field in response.json()["error"]["fields"], response.json()
    bad({"amount": "0", "date": "2026-03-05"}, "amount")
    bad({"amount": "-5", "date": "2026-03-05"}, "amount")
    bad({"amount": "100.01", "date": "2026-03-05"}, "amount")
    bad({"amount": "10.001", "date": "2026-03-05"}, "amount")
    bad({"amount": "10", "date": "2026-03-05", "currency": "EUR"}, "currency")
    bad({"amount": "10", "date": "2026-03-05", "method": "card"}, "method")
    bad({"amount": "10"}, "date")

    part = billing_api.post(url, {"amount": "40.00", "date": "2026-03-05", "reference": "wire 1"}, format="json")
    assert part.status_code == 201, part.content
    assert (part.json()["status"], part.json()["method"], part.json()["amount"]) == ("succeeded", "bank_transfer", "40.00")
    assert billing_api.get(f"/api/v1/invoices/{invoice['id']}/").json()["amount_due"] == "60.00"
    rest = billing_api.post(url, {"amount": "60", "date": "2026-03-09", "method": "check"}, format="json")
    assert rest.status_code == 201
    body = billing_api.get(f"/api/v1/invoices/{invoice['id']}/").json()
    assert (body["status"], body["amount_paid"], body["amount_due"]) == ("paid", "100.00", "0.00")
    bad({"amount": "1", "date": "2026-03-10"}, "invoice", status=409)
    listed = billing_api.get(f"/api/v1/payments/?customer={cust.external_id}&status=succeeded").json()["results"]
    assert sorted(p["amount"] for p in listed) == ["40.00", "60.00"]
    assert billing_api.get("/api/v1/payments/?status=nope").status_code == 400
    assert billing_api.get("/api/v1/payments/?invoice=nope").status_code == 400


def test_void_invoice_refuses_payments_naming_the_invoice(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "10.00"), django_capture_on_commit_callbacks)
    assert billing_api.post(f"/api/v1/invoices/{invoice['id']}/void/", {}, format="json").status_code == 200
    response = billing_api.post(f"/api/v1/invoices/{invoice['id']}/payments/", {"amount": "1", "date": "2026-03-05"},
                                format="json")
    assert response.status_code == 409 and "invoice" in response.json()["error"]["fields"]


def test_unknown_payment_method_is_400_naming_the_field(billing_api):
    cust = customer()
    for pm in ("pm_does_not_exist", "card_123", ""):
        response = billing_api.post(f"/api/v1/customers/{cust.external_id}/payment_methods/",
                                    {"stripe_payment_method": pm}, format="json")
        assert response.status_code == 400, (pm, response.content)
        assert "stripe_payment_method" in response.json()["error"]["fields"]
    assert billing_api.post("/api/v1/customers/nobody/payment_methods/", {"stripe_payment_method": "pm_card_visa"},
                            format="json").status_code == 404


def test_legacy_mark_paid_writes_a_payment_record(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "30.00"), django_capture_on_commit_callbacks)
    response = billing_api.post(f"/api/v1/invoices/{invoice['id']}/mark_paid/", {"amount": "30.00",
                                                                              "reference": "wire"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "paid"
    payment = Payment.objects.get(invoice_id=invoice["id"])
    assert (payment.method, payment.amount, payment.reference, payment.status) == (
        "bank_transfer", Decimal("30.0000"), "wire", "succeeded")


def test_mark_uncollectible(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "30.00"), django_capture_on_commit_callbacks)
    ok = billing_api.post(f"/api/v1/invoices/{invoice['id']}/mark_uncollectible/", {}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "uncollectible"
    assert billing_api.post(f"/api/v1/invoices/{invoice['id']}/mark_uncollectible/", {}, format="json").status_code == 409
    paid = _finalize(billing_api, draft_invoice(cust, "0"), django_capture_on_commit_callbacks)
    assert paid["status"] == "paid"
    assert billing_api.post(f"/api/v1/invoices/{paid['id']}/mark_uncollectible/", {}, format="json").status_code == 409


def test_jpy_and_kwd_minor_units(billing_api, django_capture_on_commit_callbacks):
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": _base()})
    for currency, amount, minor in (("JPY", "1500", 1500), ("KWD", "12.345", 12345)):
        cust = customer(currency=currency)
        _attach(billing_api, cust)
        invoice = _finalize(billing_api, draft_invoice(cust, amount), django_capture_on_commit_callbacks)
        assert invoice["status"] == "paid" and invoice["amount_paid"] == amount
        payment = Payment.objects.get(invoice_id=invoice["id"])
        intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent)
        assert (intent["amount"], intent["currency"]) == (minor, currency.lower())


def test_forged_webhook_is_400_and_replay_changes_nothing(client, billing_api, stripe_sandbox,
                                                          django_capture_on_commit_callbacks):
    body, _ = _signed({"id": "evt_forged", "type": "payment_intent.succeeded", "data": {"object": {}}})
    _, forged_sig = _signed(body, secret="whsec_wrong")
    response = _post_webhook(client, body, forged_sig)
    assert response.status_code == 400 and "Stripe-Signature" in response.json()["error"]["fields"]
    assert _post_webhook(client, body, "").status_code == 400
    assert not WebhookEvent.objects.exists()

    # A real signed webhook from the sandbox: a dispute on a paid invoice reopens it once.
    cust = customer()
    _attach(billing_api, cust, "pm_card_createDispute")
    invoice = _finalize(billing_api, draft_invoice(cust, "80.00"), django_capture_on_commit_callbacks)
    assert invoice["status"] == "paid"
    payment = Payment.objects.get(invoice_id=invoice["id"])
    sent = stripe_sandbox.wait_for("charge.dispute.created",
                                   match=lambda obj: obj["payment_intent"] == payment.stripe_payment_intent)
    first = _post_webhook(client, sent["body"], sent["signature"])
    assert first.status_code == 200 and first.json()["replay"] is False, first.content
    reopened = Invoice.objects.get(pk=invoice["id"])
    assert (reopened.status, reopened.amount_due, reopened.amount_paid, reopened.needs_review) == (
        "finalized", Decimal("80.0000"), Decimal("0.0000"), True)
    assert AuditEvent.objects.filter(action="invoice.disputed", object_id=invoice["id"]).count() == 1
    replay = _post_webhook(client, sent["body"], sent["signature"])
    assert replay.status_code == 200 and replay.json()["replay"] is True
    assert Invoice.objects.get(pk=invoice["id"]).amount_due == Decimal("80.0000")
    assert AuditEvent.objects.filter(action="invoice.disputed").count() == 1
    assert WebhookEvent.objects.get().deliveries == 2


def test_webhook_success_and_out_of_order_failure_are_harmless(client, billing_api, stripe_sandbox,
                                                                django_capture_on_commit_callbacks):
    cust = customer()
    _attach(billing_api, cust)
    invoice = _finalize(billing_api, draft_invoice(cust, "15.00"), django_capture_on_commit_callbacks)
    payment = Payment.objects.get(invoice_id=invoice["id"])
    sent = stripe_sandbox.wait_for("payment_intent.succeeded", match=lambda o: o["id"] == payment.stripe_payment_intent)
    assert _post_webhook(client, sent["body"], sent["signature"]).status_code == 200
    # A late "failed" for the same intent, and an unknown event type: no effect.
    late = {"id": "evt_late_fail", "type": "payment_intent.payment_failed",
            "data": {"object": {"id": payment.stripe_payment_intent, "metadata": {"payment_attempt": str(payment.attempt_id)},
                                "last_payment_error": {"code": "card_declined", "decline_code": "do_not_honor"}}}}
    assert _post_webhook(client, *_signed(late)).status_code == 200
    unknown = {"id": "evt_unknown", "type": "customer.updated", "data": {"object": {"id": "cus_x"}}}
    assert _post_webhook(client, *_signed(unknown)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded" and Invoice.objects.get(pk=invoice["id"]).status == "paid"
    assert Payment.objects.filter(invoice_id=invoice["id"]).count() == 1
    assert AuditEvent.objects.filter(action="payment.succeeded").count() == 1
    assert not AuditEvent.objects.filter(action="payment.failed").exists()


def test_refund_credit_note_refunds_through_stripe(billing_api, stripe_sandbox, client,
                                                    django_capture_on_commit_callbacks):
    cust = customer()
    _attach(billing_api, cust)
    invoice = _finalize(billing_api, draft_invoice(cust, "200.00"), django_capture_on_commit_callbacks)
    payment = Payment.objects.get(invoice_id=invoice["id"])
    with django_capture_on_commit_callbacks(execute=True):
        note = billing_api.post(f"/api/v1/invoices/{invoice['id']}/credit_notes/",
                                {"amount": "50.00", "reason": "service outage", "outcome": "refund"}, format="json")
    assert note.status_code == 201, note.content
    body = billing_api.get(f"/api/v1/payments/{payment.pk}/").json()
    assert (body["status"], body["amount_refunded"]) == ("partially_refunded", "50.00")
    (refund,) = body["refunds"]
    assert (refund["amount"], refund["status"], refund["credit_note"]) == ("50.00", "succeeded", note.json()["id"])
    listing = stripe.StripeClient("sk_test_x", base_addresses={"api": _base()}).v1.refunds.list(
        params={"payment_intent": payment.stripe_payment_intent})
    assert [r["amount"] for r in listing["data"]] == [5000]
    # Stripe's charge.refunded for our own refund changes nothing.
    sent = stripe_sandbox.wait_for("charge.refunded", match=lambda o: o["payment_intent"] == payment.stripe_payment_intent)
    assert _post_webhook(client, sent["body"], sent["signature"]).status_code == 200
    assert Refund.objects.filter(payment=payment).count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        rest = billing_api.post(f"/api/v1/invoices/{invoice['id']}/credit_notes/",
                                {"amount": "150.00", "reason": "goodwill", "refund": True}, format="json")
    assert rest.status_code == 201, rest.content
    assert rest.json()["outcome"] == "refund"
    body = billing_api.get(f"/api/v1/payments/{payment.pk}/").json()
    assert (body["status"], body["amount_refunded"]) == ("refunded", "200.00")
    assert AuditEvent.objects.filter(action="refund.created").count() == 2


def test_refund_flag_contradicting_outcome_is_400(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "40.00"), django_capture_on_commit_callbacks)
    response = billing_api.post(f"/api/v1/invoices/{invoice['id']}/credit_notes/",
                                {"amount": "5.00", "reason": "x", "refund": True, "outcome": "credit_balance"},
                                format="json")
    assert response.status_code == 400 and "refund" in response.json()["error"]["fields"]


def test_manual_payment_refund_is_recorded_as_paid_out(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "40.00"), django_capture_on_commit_callbacks)
    billing_api.post(f"/api/v1/invoices/{invoice['id']}/payments/", {"amount": "40", "date": "2026-03-03"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        note = billing_api.post(f"/api/v1/invoices/{invoice['id']}/credit_notes/",
                                {"amount": "10.00", "reason": "discount", "outcome": "refund"}, format="json")
    assert note.status_code == 201, note.content
    refund = Refund.objects.get()
    assert (refund.status, refund.amount, refund.stripe_refund, refund.payment.status) == (
        "succeeded", Decimal("10.0000"), "", "partially_refunded")


def test_finance_viewer_scope_cannot_pay(reader_api, billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = _finalize(billing_api, draft_invoice(cust, "40.00"), django_capture_on_commit_callbacks)
    assert reader_api.post(f"/api/v1/invoices/{invoice['id']}/payments/", {"amount": "40", "date": "2026-03-03"},
                           format="json").status_code == 403
    assert reader_api.post(f"/api/v1/customers/{cust.external_id}/payment_methods/",
                           {"stripe_payment_method": "pm_card_visa"}, format="json").status_code == 403
    assert reader_api.get("/api/v1/payments/").status_code == 200

