"""Builders for payments tests: a draft invoice with plain (untaxed) lines, finalized through the API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoicing.models import Invoice, InvoiceLine, InvoiceReason
from tests.customers.factories import CustomerFactory


def customer(**kwargs):
    kwargs.setdefault("collection_method", "charge_automatically")
    return CustomerFactory(**kwargs)


def draft_invoice(cust, *amounts: str, currency: str | None = None) -> Invoice:
    invoice = Invoice.objects.create(customer=cust, currency=currency or cust.currency, reason=InvoiceReason.MANUAL,
                                     billing_date=date(2026, 3, 1), issue_date=date(2026, 3, 1))
    for position, amount in enumerate(amounts):
        InvoiceLine.objects.create(invoice=invoice, position=position, kind="adjustment", description=f"item {position}",
                                   amount=Decimal(amount), taxable=False)
    return invoice
