"""Credit engine (pure): how much of the credit balance and of prepaid credits an invoice uses.

Order (DESIGN.md §3): lines → coupons → tax → **credit balance → prepaid credits**. Both reduce
the amount due after tax, never the taxable amount:
1. the credit balance (credit notes, adjustments, net-credit invoices) pays first, up to the total;
2. prepaid credits pay what is left, up to the total;
3. `amount_due` is the rest, never negative.
A total of zero or less consumes nothing (a net-credit invoice is credited to the balance by the
invoicing phase instead). A negative credit balance counts as zero here (it never raises what is due).
All amounts are in `currency`: callers pass only the customer's credit in the invoice currency —
credit in another currency is never applied (amounts of different currencies are never added).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.money import quantize_money

ZERO = Decimal(0)


class CreditError(ValueError):
    """Inputs the credit engine cannot use (floats)."""


@dataclass(frozen=True)
class CreditApplication:
    credit_balance_applied: Decimal
    prepaid_applied: Decimal
    amount_due: Decimal


def apply_credits(*, total_after_tax: Decimal, credit_balance: Decimal, prepaid_available: Decimal,
                  currency: str) -> CreditApplication:
    for name, value in (("total_after_tax", total_after_tax), ("credit_balance", credit_balance),
                        ("prepaid_available", prepaid_available)):
        if not isinstance(value, Decimal):
            raise CreditError(f"{name} must be Decimal, got {type(value).__name__}")
    total = quantize_money(total_after_tax, currency)
    zero = quantize_money(ZERO, currency)
    if total <= 0:
        return CreditApplication(credit_balance_applied=zero, prepaid_applied=zero, amount_due=zero)
    from_balance = min(max(quantize_money(credit_balance, currency), zero), total)
    from_prepaid = min(max(quantize_money(prepaid_available, currency), zero), total - from_balance)
    return CreditApplication(credit_balance_applied=from_balance, prepaid_applied=from_prepaid,
                             amount_due=total - from_balance - from_prepaid)
