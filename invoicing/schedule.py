"""What a subscription owes on which billing dates, from its cursors. Pure: no database.

Rules (DESIGN.md §5–6, decisions in docs of this module):
- Usage (and an in-arrears base fee) is billed when its period closes: on the period end, or on
  the subscription's `end_date` when it ends earlier (cancellation → final period).
- An in-advance base fee is billed on the first day it covers: the period start, the start date,
  or the trial end, for the rest of the period, on the plan version and seats in effect that day
  (`subscriptions.fees.advance_fee_for_period` contract; later changes inside the period are
  settled by ProrationItems). Calendar billing's first period is short; its fee is prorated by
  served days / `full_period_days`.
- Trials bill nothing: usage before `trial_end_date` is never billed and the in-advance fee of
  the period the trial ends in covers only the days from the trial end.
- Everything billed on the same date goes on one invoice: the new period's in-advance fee with
  the closed period's usage.
- Cursors are half-open: `usage_billed_through` / `advance_billed_through` are the first day not
  yet billed (None = start date). A rerun after the cursors moved finds nothing: the sweep is
  idempotent by construction (and the database unique constraint backs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from subscriptions.fees import first_billable_day
from subscriptions.periods import Period, full_period_days, period_containing



@dataclass(frozen=True)
class Span:
    """[start, end) inside `period` (a closed usage range or an advance fee range)."""

    period: Period
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass
class BillingDate:
    date: date
    closures: list[Span] = field(default_factory=list)
    advance: Span | None = None

    @property
    def period(self) -> tuple[date, date]:
        """The invoice's headline period: the closed usage range, else the advance range."""
        if self.closures:
            return self.closures[0].start, self.closures[-1].end
        assert self.advance is not None
        return self.advance.start, self.advance.end


@dataclass
class Schedule:
    bills: list[BillingDate]
    usage_billed_through: date | None
    advance_billed_through: date | None


def billing_schedule(*, start_date: date, trial_end_date: date | None, end_date: date | None,
                     usage_billed_through: date | None, advance_billed_through: date | None,
                     interval: str, billing_time: str, pay_in_advance: bool, as_of: date) -> Schedule:
    """Billing dates on or before `as_of` not yet billed per the cursors, and the cursors after them."""
    kw = dict(start_date=start_date, interval=interval, billing_time=billing_time)
    first = first_billable_day(start_date=start_date, trial_end_date=trial_end_date)
    bills: dict[date, BillingDate] = {}

    usage_cursor = max(usage_billed_through or start_date, first)
    new_usage = usage_billed_through
    # Every closed period, however many (a catch-up run bills them all, DESIGN.md §6): each step
    # moves the cursor to a later period end, so the loop ends at `as_of` or the end date.
    while True:
        if usage_cursor >= as_of or (end_date is not None and usage_cursor >= end_date):
            break
        period = period_containing(on=usage_cursor, **kw)
        close = period.end if end_date is None else min(period.end, end_date)
        if close > as_of:
            break
        bills.setdefault(close, BillingDate(close)).closures.append(Span(period, usage_cursor, close))
        usage_cursor = new_usage = close

    new_advance = advance_billed_through
    if pay_in_advance:
        cursor = max(advance_billed_through or start_date, first)
        while True:
            if cursor > as_of or (end_date is not None and cursor >= end_date):
                break
            period = period_containing(on=cursor, **kw)
            # The rest of the period, up to the end date when one falls inside it: a fee not yet
            # billed when the subscription ended is charged for the days used only (an immediate
            # cancellation credits only a fee that was billed, DESIGN.md §5).
            end = period.end if end_date is None else min(period.end, end_date)
            bills.setdefault(cursor, BillingDate(cursor)).advance = Span(period, cursor, end)
            cursor = new_advance = end

    return Schedule(bills=[bills[d] for d in sorted(bills)], usage_billed_through=new_usage,
                    advance_billed_through=new_advance)


def closures_until(*, start_date: date, trial_end_date: date | None, end_date: date | None,
                   usage_billed_through: date | None, interval: str, billing_time: str, on: date) -> list[Span]:
    """The unbilled usage ranges up to `on` (exclusive), split at period boundaries: what an
    immediate plan change or cancellation on `on` closes early."""
    kw = dict(start_date=start_date, interval=interval, billing_time=billing_time)
    cursor = max(usage_billed_through or start_date, first_billable_day(start_date=start_date, trial_end_date=trial_end_date))
    stop = on if end_date is None else min(on, end_date)
    spans: list[Span] = []
    while True:
        if cursor >= stop:
            break
        period = period_containing(on=cursor, **kw)
        end = min(period.end, stop)
        spans.append(Span(period, cursor, end))
        cursor = end
    return spans


def full_days(span: Span, *, interval: str) -> int:
    return full_period_days(span.period, interval=interval)
