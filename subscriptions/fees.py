"""Base fees and the first billable day: one owner for the billing code (invoicing), the selectors,
the admin timeline and live usage. Subscriptions sits below invoicing (DESIGN.md §1), so the rules
both need live here and invoicing imports them.

- `first_billable_day`: a subscription bills from its start date, or from its trial end when that
  is later; within a period, that day clipped to the period.
- `base_fee_amount`: the plan fee × seats over [start, end), prorated by whole days over the full
  period (`amount × days_used / days_in_period`, DESIGN.md §2), rounded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from catalog.models import PlanVersion
from subscriptions.periods import Period, full_period_days, prorate
from subscriptions.selectors import plan_segments


def first_billable_day(*, start_date: date, trial_end_date: date | None, period: Period | None = None) -> date:
    """The first day that is billed: `start_date`, or `trial_end_date` when later. With `period`,
    the first billed day of that period: clipped to [period.start, period.end] (period.end when a
    trial covers the whole period)."""
    first = max(start_date, trial_end_date) if trial_end_date else start_date
    if period is None:
        return first
    return min(max(first, period.start), period.end)


def base_fee_amount(*, version: PlanVersion, quantity: int, start: date, end: date, full_days: int,
                    currency: str) -> Decimal:
    """The base fee of `version` × `quantity` seats over [start, end), prorated over `full_days`."""
    return prorate(amount=version.amount * quantity, days_used=(end - start).days, days_in_period=full_days,
                   currency=currency)


@dataclass(frozen=True)
class BaseFee:
    """A base-fee amount for one plan version and seat count over [start, end) of `period`."""

    start: date
    end: date
    plan_version: PlanVersion
    quantity: int
    unit_amount: Decimal
    amount: Decimal
    currency: str
    days: int
    full_days: int


def _base_fee(subscription, period: Period, start: date, end: date, version: PlanVersion, quantity: int) -> BaseFee:
    full = full_period_days(period, interval=version.interval)
    currency = subscription.customer.currency
    amount = base_fee_amount(version=version, quantity=quantity, start=start, end=end, full_days=full,
                             currency=currency)
    return BaseFee(start=start, end=end, plan_version=version, quantity=quantity, unit_amount=version.amount,
                   amount=amount, currency=currency, days=(end - start).days, full_days=full)


def subscription_first_billable_day(*, subscription, period: Period) -> date:
    return first_billable_day(start_date=subscription.start_date, trial_end_date=subscription.trial_end_date,
                              period=period)


def advance_fee_for_period(*, subscription, period: Period) -> BaseFee | None:
    """The in-advance base fee of `period`, billed once at its (billable) start: the plan version and
    seats in effect on the first billable day B, for [B, period end), prorated over the full period
    (so a short first calendar period or a trial ending mid-period pays only its days). Later changes
    inside the period are settled by ProrationItems, never by re-billing. None when nothing is due
    (trial covers the period, ended before B, or the version bills in arrears)."""
    start = subscription_first_billable_day(subscription=subscription, period=period)
    if start >= period.end or (subscription.end_date is not None and start >= subscription.end_date):
        return None
    segments = plan_segments(subscription=subscription, start=start, end=start + timedelta(days=1))
    if not segments:
        return None
    _, _, version, quantity = segments[0]
    if not version.pay_in_advance:
        return None
    return _base_fee(subscription, period, start, period.end, version, quantity)


def arrears_fee_segments(*, subscription, period: Period, start: date | None = None) -> list[BaseFee]:
    """In-arrears base fees of `period` (billed when it closes), one per plan/seat segment over
    [max(start, billable start), min(period end, end_date)), each prorated over the full period.
    In-advance segments are left out (advance fee + proration items cover them)."""
    lo = max(start or period.start, subscription_first_billable_day(subscription=subscription, period=period))
    out = []
    for seg_start, seg_end, version, quantity in plan_segments(subscription=subscription, start=lo, end=period.end):
        if version.pay_in_advance:
            continue
        out.append(_base_fee(subscription, period, seg_start, seg_end, version, quantity))
    return out
