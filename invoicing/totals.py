"""The one place invoice totals are computed (DESIGN.md §3 order):

    lines → coupons → tax → credit balance → prepaid credits

Line amounts arrive already quantized (once per line, `common.money.quantize_money`); the
subtotal is their exact sum. Coupons, tax, credit balances and prepaid credits are issue 7: the
steps exist here so they slot in without touching the billing run or the lifecycle services."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from common.money import quantize_money

ZERO = Decimal(0)


@dataclass(frozen=True)
class InvoiceTotals:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    credits_applied: Decimal
    amount_paid: Decimal
    amount_due: Decimal

    def as_fields(self) -> dict[str, Decimal]:
        return {"subtotal": self.subtotal, "discount": self.discount, "tax": self.tax, "total": self.total,
                "amount_paid": self.amount_paid, "amount_due": self.amount_due}


def _coupon_discount(*, subtotal: Decimal, currency: str) -> Decimal:
    return ZERO  # issue 7: coupons (fixed / percent; once, N periods, forever) reduce the taxable amount


def _tax(*, taxable: Decimal, currency: str) -> Decimal:
    return ZERO  # issue 7: per tax rate on the sum of the taxable lines, rounded half up


def _credit_balance(*, total: Decimal, currency: str) -> Decimal:
    return ZERO  # issue 7: credit balance and prepaid credits reduce the amount due after tax


def invoice_totals(*, currency: str, line_amounts: Iterable[Decimal], amount_paid: Decimal = ZERO) -> InvoiceTotals:
    subtotal = quantize_money(sum((Decimal(a) for a in line_amounts), ZERO), currency)
    discount = _coupon_discount(subtotal=subtotal, currency=currency)
    taxable = subtotal - discount
    tax = _tax(taxable=taxable, currency=currency)
    total = taxable + tax
    credits = _credit_balance(total=total, currency=currency)
    # A negative total (credits exceed charges) is owed to the customer; nothing is due.
    amount_due = max(total - credits - amount_paid, ZERO)
    return InvoiceTotals(subtotal=subtotal, discount=discount, tax=tax, total=total, credits_applied=credits,
                         amount_paid=amount_paid, amount_due=quantize_money(amount_due, currency))
