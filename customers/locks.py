"""The customer row lock: every credit write, every totals computation that consumes credit and every
payment-method change for one customer runs under it, so balance checks are serialized."""

from __future__ import annotations

from common.locks import row_lock
from customers.models import Customer


def customer_lock(pk) -> Customer:
    """Lock the customer row (FOR UPDATE OF self) and return it."""
    return row_lock(Customer, pk)
