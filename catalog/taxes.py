"""Tax engine (pure): per-rate tax on the taxable amount, and the reverse-charge / exemption rules.

Rules (DESIGN.md §2, §3):
- Tax is computed **per tax rate** on the taxable amount of the invoice (the sum of the taxable
  lines after coupons), each rate rounded half up to the currency's minor unit on its own, with
  `common.money.quantize_money`. The tax total is the sum of the rounded per-rate amounts, so two
  rates (state + county) can differ by a cent from one combined rate — that is the rule, and what
  the invoice shows per rate.
- A negative taxable amount (an invoice that is a net credit, e.g. proration credits) gets negative
  tax the same way: the credit gives back the tax that was charged. Half up is symmetric (away
  from zero), so `compute_tax(-x) == -compute_tax(x)`.
- A tax-exempt customer gets no rates and the note `EXEMPT_NOTE`.
- Reverse charge: a B2B customer in the EU (country in `EU_COUNTRIES`, tax id present) whose
  country differs from the seller's gets no tax and the note `REVERSE_CHARGE_NOTE`.

Nothing here touches the database: callers pass rate rows (or any object with `name` and `rate`
in percent, optionally `pk`/`id`) chosen by `catalog.selectors.tax_determination_for_customer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from common.money import quantize_money
from customers.countries import EU_COUNTRIES

REVERSE_CHARGE_NOTE = "VAT reverse charge: the customer accounts for VAT (Art. 196 Directive 2006/112/EC)"
EXEMPT_NOTE = "Tax exempt: no tax charged"
HUNDRED = Decimal(100)


class TaxRateLike(Protocol):
    name: str
    rate: Decimal  # percent, e.g. Decimal("8.25")


class TaxError(ValueError):
    """Inputs the tax engine cannot use (floats, a rate outside 0–100)."""


@dataclass(frozen=True)
class TaxLine:
    tax_rate_id: int | None
    name: str
    rate: Decimal  # percent
    taxable_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class TaxResult:
    lines: tuple[TaxLine, ...]
    total: Decimal
    note: str = ""  # e.g. the reverse-charge or exemption note printed on the invoice


def _rate_id(rate: object) -> int | None:
    value = getattr(rate, "pk", None)
    if value is None:
        value = getattr(rate, "id", None)
    return value


def tax_at_rate(taxable_amount: Decimal, percent: Decimal, currency: str) -> Decimal:
    """The tax of one rate on one amount: `quantize_money(taxable_amount × percent / 100)` (half up)."""
    return quantize_money(taxable_amount * percent / HUNDRED, currency)


def compute_tax(*, taxable_amount: Decimal, rates: Sequence[TaxRateLike], currency: str, note: str = "") -> TaxResult:
    """One TaxLine per rate: `quantize_money(taxable_amount × rate / 100)`; total = sum of lines.

    No rates → no lines, total 0 (exempt, reverse charge, or no rate for the customer's country)."""
    if not isinstance(taxable_amount, Decimal):
        raise TaxError(f"taxable_amount must be Decimal, got {type(taxable_amount).__name__}")
    lines = []
    for rate in rates:
        percent = rate.rate
        if not isinstance(percent, Decimal):
            raise TaxError(f"tax rate '{rate.name}' must be a Decimal percent, got {type(percent).__name__}")
        if percent < 0 or percent > HUNDRED:
            raise TaxError(f"tax rate '{rate.name}' is {percent}%, outside 0–100.")
        amount = tax_at_rate(taxable_amount, percent, currency)
        lines.append(TaxLine(tax_rate_id=_rate_id(rate), name=rate.name, rate=percent,
                             taxable_amount=taxable_amount, amount=amount))
    total = quantize_money(sum((line.amount for line in lines), Decimal(0)), currency)
    return TaxResult(lines=tuple(lines), total=total, note=note)


def reverse_charge_applies(*, customer_country: str, customer_tax_id: str, seller_country: str) -> bool:
    """B2B (tax id present) customer in an EU country other than the seller's."""
    country = (customer_country or "").upper()
    return bool((customer_tax_id or "").strip()) and country in EU_COUNTRIES and country != (seller_country or "").upper()


@dataclass(frozen=True)
class TaxDetermination:
    """Which rates apply to a customer and the note the invoice carries."""

    rates: tuple
    note: str = ""
    reason: str = "rates"  # "rates" | "exempt" | "reverse_charge" | "no_rate"
