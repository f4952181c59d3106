"""Payments pages and actions against the local Stripe sandbox (tests/payments/conftest.py). The
`books` fixture's Acme invoice is $30.00 due; the charges below go through the payments service."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from invoicing.models import Invoice
from payments.models import Payment, PaymentAttempt, PaymentMethod
from tests.payments.conftest import WEBHOOK_SECRET, stripe_sandbox  # noqa: F401 (session fixture)


@pytest.fixture
def stripe_on(stripe_sandbox, settings):  # noqa: F811
    settings.STRIPE_API_BASE = stripe_sandbox.base
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_KEY = "sk_test_ledgerline_local"


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _attach(api, customer: str, pm: str) -> int:
    response = api.post(f"/api/v1/customers/{customer}/payment_methods/", {"stripe_payment_method": pm}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_retry_charge_declined_then_paid_and_the_pages_show_it(books, stripe_on, billing_api, admin_client_bo,
                                                              viewer_client):
    acme = books["acme-main"]
    no_card = _text(admin_client_bo.post(f"/invoices/{acme}/charge/", {}, follow=True))
    assert "msg error" in no_card and not PaymentAttempt.objects.exists()
    _attach(billing_api, "acme", "pm_card_chargeDeclinedInsufficientFunds")
    page = _text(admin_client_bo.get(f"/invoices/{acme}/"))
    assert 'id="retry-charge"' in page and "Charge $30.00 now" in page
    # A viewer is refused and nothing is charged.
    assert viewer_client.post(f"/invoices/{acme}/charge/", {}).status_code == 403
    assert "Charge $30.00 now" not in _text(viewer_client.get(f"/invoices/{acme}/"))
    assert not PaymentAttempt.objects.exists()

    declined = _text(admin_client_bo.post(f"/invoices/{acme}/charge/", {}, follow=True))
    assert "The charge of $30.00 on" in declined and "was declined (attempt 1: card_declined, insufficient_funds" in declined
    failed = Payment.objects.get(status="failed")
    assert (failed.amount, failed.decline_code, failed.invoice_id) == (Decimal("30.00"), "insufficient_funds", Invoice.objects.get(pk=acme).pk)
    dashboard = admin_client_bo.get("/")
    assert (dashboard.context["counts"].failed_payments, dashboard.context["counts"].failed_payment_invoices) == (1, 1)
    assert 'data-count="failed_payments"' in _text(dashboard)
    listed = viewer_client.get("/payments/?status=failed")
    assert [p.pk for p in listed.context["rows"]] == [failed.pk] and "insufficient_funds" in _text(listed)
    detail = _text(viewer_client.get(f"/payments/{failed.pk}/"))
    assert "insufficient_funds" in detail and "$30.00" in detail and "INV-2026-000001" in detail

    visa = _attach(billing_api, "acme", "pm_card_visa")
    paid = _text(admin_client_bo.post(f"/invoices/{acme}/charge/", {"payment_method": visa}, follow=True))
    assert "Charged $30.00 to visa •••• 4242 (attempt 2): INV-2026-000001 is paid." in paid
    invoice = Invoice.objects.get(pk=acme)
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("paid", Decimal("0.00"), Decimal("30.00"))
    assert admin_client_bo.get("/").context["counts"].failed_payments == 0  # its invoice is paid now
    ok = Payment.objects.get(status="succeeded")
    assert (ok.amount, ok.amount_applied, ok.paid_on, ok.method) == (Decimal("30.00"), Decimal("30.00"), timezone.localdate(), "card")
    # Nothing due any more: the service's 409 is shown, nothing is charged.
    again = _text(admin_client_bo.post(f"/invoices/{acme}/charge/", {"payment_method": visa}, follow=True))
    assert "msg error" in again and PaymentAttempt.objects.count() == 2
    # An unknown card is refused naming the field.
    assert "payment_method" in _text(admin_client_bo.post(f"/invoices/{acme}/charge/", {"payment_method": 999999}, follow=True))

    # Customer 360: payments and the cards on file.
    c360 = _text(viewer_client.get("/customers/acme/"))
    assert "Visa •••• 4242" in c360 and "default" in c360 and "insufficient_funds" in c360
    assert PaymentMethod.objects.filter(customer__external_id="acme", is_default=True).count() == 1
    # Global search by the Stripe payment intent.
    hits = viewer_client.get("/search/", {"q": ok.stripe_payment_intent}).context["hits"]
    assert [(h.kind, h.url) for h in hits] == [("Payment", f"/payments/{ok.pk}/")]
    # CSV follows the filters.
    rows = list(csv.DictReader(io.StringIO(viewer_client.get("/payments/export.csv?status=succeeded").content.decode())))
    assert [(r["invoice"], r["status"], r["method"], r["amount"], r["customer"]) for r in rows] == \
        [("INV-2026-000001", "succeeded", "card", "30.00", "acme")]


def test_payments_list_filters_and_csv(books, admin_client_bo, viewer_client):
    acme, globex = books["acme-main"], books["globex-main"]
    admin_client_bo.post(f"/invoices/{acme}/pay/", {"amount": "12.50", "paid_on": "2026-02-10", "reference": "wire 7"})
    admin_client_bo.post(f"/invoices/{globex}/pay/", {"amount": "1500", "method": "check", "reference": "chq 55"})
    everything = viewer_client.get("/payments/")
    assert everything.context["rows"].paginator.count == 2
    text = _text(everything)
    assert "$12.50" in text and "¥1,500" in text and "12.5000" not in text
    assert [p.reference for p in viewer_client.get("/payments/?currency=jpy").context["rows"]] == ["chq 55"]
    assert [p.reference for p in viewer_client.get("/payments/?method=check").context["rows"]] == ["chq 55"]
    assert [p.reference for p in viewer_client.get("/payments/?customer=acme").context["rows"]] == ["wire 7"]
    assert [p.reference for p in viewer_client.get("/payments/?q=INV-2026-000002").context["rows"]] == ["chq 55"]
    assert [p.reference for p in viewer_client.get("/payments/?from=2026-02-10&to=2026-02-11").context["rows"]] == ["wire 7"]
    bad = viewer_client.get("/payments/?from=soon")
    assert "from: not a date" in _text(bad) and bad.context["rows"].paginator.count == 2
    body = viewer_client.get("/payments/export.csv?customer=acme")
    assert body["Content-Type"].startswith("text/csv")
    (row,) = csv.DictReader(io.StringIO(body.content.decode()))
    assert (row["amount"], row["paid_on"], row["reference"], row["method"], row["recorded_by"]) == \
        ("12.50", "2026-02-10", "wire 7", "bank_transfer", "user:fin-admin")
    assert Invoice.objects.get(pk=globex).status == "paid"
    assert Client().get("/payments/").status_code == 302 and Client().get("/payments/export.csv").status_code == 302
    jpy = Payment.objects.get(currency="JPY")
    assert "¥1,500" in _text(viewer_client.get(f"/payments/{jpy.pk}/"))
    assert viewer_client.get("/payments/00000000-0000-0000-0000-000000000000/").status_code == 404
