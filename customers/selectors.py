from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import F, Q, Sum
from django.utils import timezone

from common.errors import NotFoundError
from common.money import quantize_money
from customers.models import CreditGrant, Customer, CustomerBalanceTransaction


def customer_get(*, external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFoundError(f"Customer '{external_id}' not found.", fields={"customer": ["not found"]})
    return customer


# --- credits -------------------------------------------------------------------------------------

def _as_datetime(on):
    """A date counts as its first instant (00:00 UTC); None is now."""
    if on is None:
        return timezone.now()
    if isinstance(on, dt.datetime):
        return on
    return dt.datetime.combine(on, dt.time.min, tzinfo=dt.timezone.utc)


def customer_credit_balance(*, customer, currency: str):
    """The customer's credit balance in `currency` (sum of its ledger rows in that currency only)."""
    total = CustomerBalanceTransaction.objects.filter(customer=customer, currency=currency).aggregate(
        s=Sum("amount"))["s"]
    return quantize_money(total or Decimal(0), currency)


def prepaid_credit_available(*, customer, currency: str, on=None):
    """Prepaid credit in `currency` still usable at `on` (datetime, or a date = its 00:00 UTC):
    the remaining amount of grants that have not expired (`expires_at` after `on`)."""
    total = credit_grants_usable(customer=customer, currency=currency, on=on).aggregate(s=Sum("remaining"))["s"]
    return quantize_money(total or Decimal(0), currency)


def credit_grants_usable(*, customer, currency: str, on=None):
    """Grants that can still pay an invoice, in consumption order: earliest expiry first
    (no expiry last), then oldest."""
    moment = _as_datetime(on)
    return (CreditGrant.objects.filter(customer=customer, currency=currency, remaining__gt=0)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=moment))
            .order_by(F("expires_at").asc(nulls_last=True), "created_at", "pk"))


def customer_balance_summary(*, customer, currency: str | None = None) -> dict:
    """The credit balance, usable prepaid credit and the balance ledger in one currency (API.md
    GET /customers/{id}/balance/). Amounts are Decimals; the API formats them."""
    currency = (currency or customer.currency).upper()
    ledger = CustomerBalanceTransaction.objects.filter(customer=customer, currency=currency).order_by("created_at", "pk")
    return {
        "currency": currency,
        "credit_balance": customer_credit_balance(customer=customer, currency=currency),
        "prepaid_credit_available": prepaid_credit_available(customer=customer, currency=currency),
        "ledger": [{"date": row.created_at.date(), "kind": row.kind, "amount": row.amount,
                    "invoice": row.invoice_id, "credit_note": row.credit_note_id, "description": row.description}
                   for row in ledger],
    }
