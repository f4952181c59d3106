"""The demo data set's payments part, against the sandbox (and idempotent on reload)."""

from datetime import date

import pytest

from demo.data import seed_demo
from payments.models import Payment, PaymentAttempt, Refund

pytestmark = pytest.mark.django_db


def test_seed_demo_payments(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = seed_demo(today=date(2026, 10, 15))
    assert first["payments: card payments"] > 0 and first["payments: declined attempts"] > 0
    assert (first["payments: refunds"], first["payments: disputes"]) == (1, 1)
    assert first["payments: bank transfers"] > 0
    declined = PaymentAttempt.objects.filter(customer__external_id="initech")
    assert declined.exists() and set(declined.values_list("decline_code", flat=True)) == {"insufficient_funds"}
    assert Payment.objects.filter(customer__external_id="globex", method="bank_transfer").exists()
    refund = Refund.objects.get()
    assert refund.status == "succeeded" and refund.stripe_refund.startswith("re_")
    assert Payment.objects.filter(customer__external_id="hooli", disputed_at__isnull=False).count() == 1
    counts = (Payment.objects.count(), Refund.objects.count(), PaymentAttempt.objects.count())
    again = seed_demo(today=date(2026, 10, 15))
    assert again["payments: card payments"] == 0 and again["payments: bank transfers"] == 0
    assert (Payment.objects.count(), Refund.objects.count(), PaymentAttempt.objects.count()) == counts
