"""Discount engine (pure): coupons taken off an invoice subtotal, before tax.

Order on every invoice (DESIGN.md §3): lines → **coupons** → tax → credit balance → prepaid credits.

Stacking rule: coupons apply **in application order** (the order they are passed: the order the
customer redeemed them), **each on what remains** after the ones before it:
- a percent coupon takes `quantize_money(remaining × percent_off / 100)` (half up, per coupon);
- a fixed coupon takes `min(amount_off, remaining)`;
so the discount never takes the subtotal below zero, and a fixed coupon larger than what remains
is capped (the unused part is lost, like Stripe; it is not carried forward).
A subtotal of zero or less (a net-credit invoice) gets no discount. Every coupon passed gets a
DiscountLine, even one worth 0 (the invoice shows it, and a `once` coupon is used up by it).

A fixed coupon's currency must equal the invoice's (amounts of different currencies are never
added): a mismatch raises DiscountError — the selectors never offer such a coupon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from catalog.models import CouponDuration
from common.money import format_money, quantize_money

HUNDRED = Decimal(100)
FIXED = "fixed"
PERCENT = "percent"


class CouponLike(Protocol):
    code: str
    name: str
    kind: str  # "fixed" | "percent"
    amount_off: Decimal | None
    currency: str
    percent_off: Decimal | None


class DiscountError(ValueError):
    """A coupon the engine cannot apply (wrong currency, unknown kind, floats)."""


@dataclass(frozen=True)
class DiscountLine:
    coupon_id: int | None
    description: str
    amount: Decimal  # positive amount taken off


def coupon_used_up(coupon, periods_applied: int) -> bool:
    """The one "coupon used up" rule: a `once` coupon after one use, a `repeating` one after
    `duration_periods` billing periods; `forever` never."""
    return (coupon.duration == CouponDuration.ONCE and periods_applied >= 1) or (
        coupon.duration == CouponDuration.REPEATING and periods_applied >= coupon.duration_periods)


def _coupon_id(coupon: object) -> int | None:
    value = getattr(coupon, "pk", None)
    if value is None:
        value = getattr(coupon, "id", None)
    return value


def describe_coupon(coupon: CouponLike, currency: str) -> str:
    label = getattr(coupon, "name", "") or getattr(coupon, "code", "") or "Coupon"
    if coupon.kind == PERCENT:
        return f"{label} ({coupon.percent_off.normalize():f}% off)"
    return f"{label} ({format_money(coupon.amount_off, currency)} {currency} off)"


def compute_discounts(*, subtotal: Decimal, coupons: Sequence[CouponLike], currency: str) -> tuple[DiscountLine, ...]:
    """One DiscountLine per coupon, in order; see the module docstring for the stacking rule."""
    if not isinstance(subtotal, Decimal):
        raise DiscountError(f"subtotal must be Decimal, got {type(subtotal).__name__}")
    remaining = max(subtotal, Decimal(0))
    lines = []
    for coupon in coupons:
        if coupon.kind == PERCENT:
            percent = coupon.percent_off
            if not isinstance(percent, Decimal) or percent < 0 or percent > HUNDRED:
                raise DiscountError(f"coupon '{coupon.code}': percent_off must be a Decimal in 0–100, got {percent!r}")
            amount = quantize_money(remaining * percent / HUNDRED, currency)
        elif coupon.kind == FIXED:
            amount_off = coupon.amount_off
            if (coupon.currency or "").upper() != currency:
                raise DiscountError(f"coupon '{coupon.code}' is in {coupon.currency}, the invoice in {currency}.")
            if not isinstance(amount_off, Decimal) or amount_off < 0:
                raise DiscountError(f"coupon '{coupon.code}': amount_off must be a non-negative Decimal, got {amount_off!r}")
            amount = min(quantize_money(amount_off, currency), remaining)
        else:
            raise DiscountError(f"coupon '{coupon.code}': unknown kind '{coupon.kind}'")
        amount = min(amount, remaining)
        remaining -= amount
        lines.append(DiscountLine(coupon_id=_coupon_id(coupon), description=describe_coupon(coupon, currency),
                                  amount=amount))
    return tuple(lines)
