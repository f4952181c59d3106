"""Payments in the admin: finance records a bank transfer through the service; pages read-only."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from common.groups import FINANCE_VIEWER, sync_finance_groups
from invoicing.services import invoice_finalize
from payments.models import Payment
from payments.services import payment_method_attach
from tests.payments.factories import customer, draft_invoice

pytestmark = pytest.mark.django_db


def test_record_a_bank_transfer_and_browse(admin_client):
    cust = customer(collection_method="send_invoice")
    invoice = invoice_finalize(invoice=draft_invoice(cust, "70.00"))
    url = reverse("admin:payments_payment_add")
    over = admin_client.post(url, {"invoice": invoice.pk, "amount": "70.01", "paid_on": "2026-03-04",
                                   "method": "bank_transfer", "reference": "x"})
    assert over.status_code == 200 and "More than the amount due" in over.content.decode()
    response = admin_client.post(url, {"invoice": invoice.pk, "amount": "70.00", "paid_on": "2026-03-04",
                                       "method": "bank_transfer", "reference": "wire 9"})
    assert response.status_code == 302, response.content[:2000]
    payment = Payment.objects.get()
    assert (payment.amount, payment.method, payment.status, payment.reference) == (
        Decimal("70.0000"), "bank_transfer", "succeeded", "wire 9")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    for name in ("payment", "paymentattempt", "refund", "paymentmethod", "webhookevent"):
        assert admin_client.get(reverse(f"admin:payments_{name}_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).status_code == 200
    page = admin_client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200 and "wire 9" in page.content.decode()


def test_viewer_cannot_record_or_charge(client):
    sync_finance_groups()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name=FINANCE_VIEWER))
    client.force_login(viewer)
    cust = customer(collection_method="send_invoice")
    payment_method_attach(customer=cust, stripe_payment_method="pm_card_visa")
    invoice = invoice_finalize(invoice=draft_invoice(cust, "70.00"))
    assert client.get(reverse("admin:payments_payment_changelist")).status_code == 200
    assert client.get(reverse("admin:payments_payment_add")).status_code == 403
    denied = client.post(reverse("admin:payments_payment_add"), {"invoice": invoice.pk, "amount": "70.00",
                                                                 "paid_on": "2026-03-04", "method": "bank_transfer"})
    assert denied.status_code == 403 and not Payment.objects.exists()


def test_legacy_manual_payments_are_copied_once():
    import importlib

    from django.apps import apps

    from invoicing.models import Payment as LegacyPayment

    copy = importlib.import_module("payments.migrations.0002_copy_legacy_manual_payments").copy_legacy
    cust = customer(collection_method="send_invoice")
    invoice = invoice_finalize(invoice=draft_invoice(cust, "70.00"))
    LegacyPayment.objects.create(invoice=invoice, amount=Decimal("25.00"), currency="USD", paid_on="2026-03-02",
                                 reference="old wire", method="manual", recorded_by="api")
    copy(apps, None)
    copy(apps, None)
    (payment,) = Payment.objects.all()
    assert (payment.amount, payment.method, payment.reference, payment.status, payment.customer_id) == (
        Decimal("25.0000"), "bank_transfer", "old wire", "succeeded", cust.pk)
