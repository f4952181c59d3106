"""The Django admin shows money formatted per currency (the shared babel formatter), never the raw
"30.0000" of the database column, on the list and record pages of invoices (with their lines),
credit notes and payments."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client

from invoicing.models import CreditNote, Invoice
from payments.models import Payment


@pytest.fixture
def superuser_client(db, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(user)
    return client


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def _no_raw_money(text: str) -> None:
    assert not re.search(r"\b\d+\.\d{4}\b", text), re.search(r".{60}\b\d+\.\d{4}\b.{20}", text, re.S).group(0)


def test_admin_money_is_formatted(books, admin_client_bo, superuser_client):
    acme, globex = books["acme-main"], books["globex-main"]
    admin_client_bo.post(f"/invoices/{acme}/pay/", {"amount": "12.50", "reference": "wire 7"})
    admin_client_bo.post(f"/invoices/{acme}/credit/", {"amount": "5.00", "reason": "goodwill"})
    listing = _page(superuser_client, "/admin/invoicing/invoice/")
    assert "$30.00" in listing and "¥1,500" in listing and "$12.50" in listing  # totals; Acme's amount due
    _no_raw_money(listing)
    detail = _page(superuser_client, f"/admin/invoicing/invoice/{acme}/change/")
    assert "$30.00" in detail and "$20.00" in detail and "$10.00" in detail and "$12.50" in detail
    _no_raw_money(detail)
    _no_raw_money(_page(superuser_client, f"/admin/invoicing/invoice/{globex}/change/"))
    note = CreditNote.objects.get()
    for url in ("/admin/invoicing/creditnote/", f"/admin/invoicing/creditnote/{note.pk}/change/"):
        text = _page(superuser_client, url)
        assert "$5.00" in text
        _no_raw_money(text)
    payment = Payment.objects.get()
    for url in ("/admin/payments/payment/", f"/admin/payments/payment/{payment.pk}/change/"):
        text = _page(superuser_client, url)
        assert "$12.50" in text
        _no_raw_money(text)
    # The add form still takes a plain amount.
    add = _page(superuser_client, "/admin/payments/payment/add/")
    assert 'name="amount"' in add
    assert Invoice.objects.get(pk=acme).amount_due == Decimal("12.50")  # 30.00 − 12.50 paid − 5.00 credited
