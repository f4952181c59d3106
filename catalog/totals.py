"""Invoice totals (pure): the one place the invoice money order is applied.

    lines → coupons → tax → credit balance → prepaid credits          (DESIGN.md §3)

    subtotal  = Σ line amounts (each already rounded once, per DESIGN.md §2; credit lines negative)
    discount  = Σ coupon discounts (catalog.discounts: application order, each on what remains,
                never below zero) on the subtotal less credits for unused time (already net of
                the discount they were charged with)
    taxable   = subtotal − discount
    tax       = per rate on `taxable`, each rate rounded half up (catalog.taxes)
    total     = taxable + tax
    credits   = credit balance, then prepaid credits, up to `total` (customers.credits)
    amount_due = total − credits ≥ 0

Negative totals (like Stripe): when credit lines (e.g. proration credits) outweigh the charges, the
subtotal, taxable and total are negative, no coupon, credit balance or prepaid credit is used,
`amount_due` is 0 and `balance_credit` (= −total) is what the invoicing phase credits to the
customer's balance (`customers.services.credit_balance_credit_from_invoice`).

Line amounts must already be at the currency's minor unit: a line with more decimals raises
TotalsError rather than being silently rounded a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from catalog.discounts import CouponLike, DiscountLine, compute_discounts
from catalog.taxes import TaxRateLike, TaxResult, compute_tax
from common.money import quantize_money
from customers.credits import apply_credits


class TotalsError(ValueError):
    pass


@dataclass(frozen=True)
class InvoiceTotals:
    currency: str
    subtotal: Decimal
    discounts: tuple[DiscountLine, ...]
    discount: Decimal
    taxable: Decimal
    tax: TaxResult
    total: Decimal
    credit_balance_applied: Decimal
    prepaid_applied: Decimal
    amount_due: Decimal

    @property
    def balance_credit(self) -> Decimal:
        """What a net-credit invoice gives the customer's credit balance (0 unless total < 0)."""
        return -self.total if self.total < 0 else quantize_money(Decimal(0), self.currency)


def compute_invoice_totals(*, line_amounts: Sequence[Decimal], currency: str, coupons: Sequence[CouponLike] = (),
                           tax_rates: Sequence[TaxRateLike] = (), tax_note: str = "",
                           credit_balance: Decimal = Decimal(0),
                           prepaid_available: Decimal = Decimal(0),
                           undiscounted: Decimal = Decimal(0)) -> InvoiceTotals:
    """`undiscounted`: the part of the subtotal coupons do not apply to — credits for unused time,
    which already return only what was charged after its discount (DESIGN.md §5); coupons take
    their share of the other lines (`subtotal − undiscounted`), then tax applies to what remains."""
    amounts = list(line_amounts)
    for index, amount in enumerate(amounts):
        if not isinstance(amount, Decimal):
            raise TotalsError(f"line {index}: amount must be Decimal, got {type(amount).__name__}")
        if quantize_money(amount, currency) != amount:
            raise TotalsError(f"line {index}: {amount} is not rounded to the {currency} minor unit.")
    subtotal = quantize_money(sum(amounts, Decimal(0)), currency)
    discounts = compute_discounts(subtotal=subtotal - quantize_money(undiscounted, currency), coupons=coupons,
                                  currency=currency)
    discount = quantize_money(sum((d.amount for d in discounts), Decimal(0)), currency)
    taxable = subtotal - discount
    tax = compute_tax(taxable_amount=taxable, rates=tax_rates, currency=currency, note=tax_note)
    total = taxable + tax.total
    credits = apply_credits(total_after_tax=total, credit_balance=credit_balance,
                            prepaid_available=prepaid_available, currency=currency)
    return InvoiceTotals(currency=currency, subtotal=subtotal, discounts=discounts, discount=discount,
                         taxable=taxable, tax=tax, total=total,
                         credit_balance_applied=credits.credit_balance_applied,
                         prepaid_applied=credits.prepaid_applied, amount_due=credits.amount_due)
