"""The whole loop over HTTP: the sandbox signs and posts its webhooks to the running app."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import json
import urllib.request
from django.conf import settings

from invoicing.services import invoice_finalize
from payments.models import Payment, WebhookEvent
from payments.services import payment_method_attach
from tests.payments.conftest import WEBHOOK_SECRET
from tests.payments.factories import customer, draft_invoice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox_posts_to_app(live_server):
    url = f"{settings.STRIPE_API_BASE}/_config/webhooks/live_app"
    body = json.dumps({"url": f"{live_server.url}/api/v1/stripe/webhook/", "secret": WEBHOOK_SECRET}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json",
                                                              "Authorization": "Bearer sk_test_x"}, method="POST")
    assert urllib.request.urlopen(request, timeout=5).status == 200
    yield
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sandbox_dispute_webhook_reopens_the_invoice_over_http(sandbox_posts_to_app):
    cust = customer()
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_createDispute")
    invoice = invoice_finalize(invoice=draft_invoice(cust, "44.00"))  # charged on commit (eager task)
    payment = Payment.objects.get(invoice=invoice)
    # Paid by the charge (the dispute follows about a second later, so it may already be reopened).
    assert (payment.status, payment.amount_applied) == ("succeeded", Decimal("44.0000"))
    assert _wait(lambda: Payment.objects.get(pk=payment.pk).disputed_at is not None), \
        list(WebhookEvent.objects.values_list("type", "status", "result"))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("finalized", Decimal("44.0000"))
    assert _wait(lambda: WebhookEvent.objects.filter(type="payment_intent.succeeded", status="processed").exists())
    assert set(WebhookEvent.objects.values_list("type", flat=True)) >= {"payment_intent.succeeded",
                                                                        "charge.dispute.created"}
