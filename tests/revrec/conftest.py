"""Revrec test helpers: finalized invoices built directly (hand-computed figures), plus the
invoicing services for the transitions (void, uncollectible, credit notes, payments)."""

from __future__ import annotations

from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal as D
from itertools import count

import pytest

from customers.models import Customer
from invoicing.models import Invoice, InvoiceLine, InvoiceStatus

_numbers = count(1)


class Books:
    def customer(self, external_id="acme", currency="USD"):
        return Customer.objects.get_or_create(external_id=external_id,
                                              defaults={"name": external_id.title(), "currency": currency})[0]

    def invoice(self, *, issue: date, lines: list[tuple], discount="0", tax="0", customer=None, currency="USD",
                credit_balance_applied="0"):
        """lines: (kind, amount, period_start, period_end). Finalized, numbered, totals as invoicing computes them."""
        customer = customer or self.customer(currency=currency)
        subtotal = sum((D(a) for _, a, _, _ in lines), D(0))
        total = subtotal - D(discount) + D(tax)
        due = total - D(credit_balance_applied)
        invoice = Invoice.objects.create(
            number=f"INV-T-{next(_numbers):06d}", status=InvoiceStatus.FINALIZED if due > 0 else InvoiceStatus.PAID,
            customer=customer, currency=currency, billing_date=issue, issue_date=issue, due_date=issue,
            subtotal=subtotal, discount=D(discount), tax=D(tax), total=total, amount_due=max(due, D(0)),
            credit_balance_applied=D(credit_balance_applied),
            finalized_at=datetime(issue.year, issue.month, issue.day, 12, tzinfo=dt_timezone.utc),
            tax_lines=[{"tax_rate_id": None, "name": "Tax", "rate": "10", "taxable_amount": str(subtotal - D(discount)),
                        "amount": tax}] if D(tax) else [])
        for position, (kind, amount, start, end) in enumerate(lines):
            InvoiceLine.objects.create(invoice=invoice, position=position, kind=kind, description=kind,
                                       amount=D(amount), period_start=start, period_end=end)
        return invoice


@pytest.fixture
def books(db):
    return Books()
