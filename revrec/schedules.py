"""Revenue schedules: the pure engine (DESIGN.md §8). No database access.

Cumulative rounding: through month k,
    recognized_k = round_half_up(amount × days_served_through_k / days_in_period)
and month k books recognized_k − recognized_(k−1). The last month's cumulative figure is the
amount itself, so a schedule always sums to its line exactly and never leaks a cent
(100.00 over Jan–Mar 2025: 31/90 → 34.44, 59/90 → 65.56 (31.12), 90/90 → 100.00 (34.44)).

The same cumulative rounding shares an invoice discount among its lines in proportion to their
amounts (relative selling price) and shrinks what is left of a schedule after a credit note."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from common.money import currency_exponent, quantize_money

ZERO = Decimal(0)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_end(day: date) -> date:
    """Last day of the month of `day`."""
    return next_month(day) - timedelta(days=1)


def months_between(start: date, end: date) -> list[tuple[date, int]]:
    """[(first day of month, days of [start, end) in it)] for a half-open period, in order."""
    if end <= start:
        return [(month_start(start), 0)]
    out = []
    cursor = start
    while cursor < end:
        boundary = min(next_month(cursor), end)
        out.append((month_start(cursor), (boundary - cursor).days))
        cursor = boundary
    return out


def _round_fraction(value: Fraction, currency: str) -> Decimal:
    """Round an exact rational half up to the currency's minor unit (no intermediate rounding)."""
    scale = 10 ** currency_exponent(currency)
    scaled = value * scale
    sign = -1 if scaled < 0 else 1
    magnitude = abs(scaled)
    whole = magnitude.numerator // magnitude.denominator
    if (magnitude - whole) * 2 >= 1:
        whole += 1
    return quantize_money(Decimal(sign * whole) / Decimal(scale), currency)


def cumulative_split(amount: Decimal, weights: list[int | Fraction | Decimal], currency: str) -> list[Decimal]:
    """Split `amount` over `weights` with cumulative rounding: part k = round(amount × W_k / W) −
    round(amount × W_(k−1) / W), W_k the running sum. Parts sum to `amount` exactly."""
    total = sum((Fraction(w) for w in weights), Fraction(0))
    if not weights:
        return []
    if total == 0:
        return [amount] + [ZERO] * (len(weights) - 1)
    parts, running, previous = [], Fraction(0), ZERO
    exact_amount = Fraction(amount)
    for weight in weights:
        running += Fraction(weight)
        cumulative = _round_fraction(exact_amount * running / total, currency)
        parts.append(cumulative - previous)
        previous = cumulative
    return parts


def ratable_schedule(amount: Decimal, start: date, end: date, currency: str) -> list[tuple[date, Decimal]]:
    """[(month, amount)] recognizing `amount` by day over [start, end)."""
    months = months_between(start, end)
    return list(zip([m for m, _ in months], cumulative_split(amount, [d for _, d in months], currency)))


def allocate_discount(discount: Decimal, line_amounts: list[Decimal], currency: str) -> list[Decimal]:
    """Each line's share of an invoice discount, in proportion to the (positive) line amounts
    (relative selling price); credit lines (negative) get none. Shares sum to `discount` exactly."""
    weights = [a if a > 0 else ZERO for a in line_amounts]
    if not discount or sum(weights, ZERO) == 0:
        return [ZERO] * len(line_amounts)
    return cumulative_split(discount, weights, currency)


def shrink(entries: list[Decimal], reduction: Decimal, currency: str) -> list[Decimal]:
    """Lower the remaining entries of a schedule by `reduction` in proportion to their amounts,
    with cumulative rounding: the result sums to sum(entries) − reduction exactly."""
    total = sum(entries, ZERO)
    if not entries:
        return []
    target = total - reduction
    if total == 0:
        return [target] + [ZERO] * (len(entries) - 1)
    return cumulative_split(target, entries, currency)
