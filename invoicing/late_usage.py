"""Late usage: events that arrived after their period was invoiced → `late_usage` lines on the
subscription's next invoice, and the events marked billed on it (DESIGN.md §3–4).

Events are grouped by window: (subscription, the plan-version run of the period the event falls
in, clipped to where billing started and to the end date). Each charge of that window is priced
incrementally: rate(every event of the window) − rate(the events billed so far: on time and
earlier late batches), for every aggregation and model, per-event values included, so tiers
continue where the invoices left off and a second late batch never re-bills the first; the line's
quantity is the true increment. Late usage counts toward the window's (prorated) minimum
commitment: the window's late lines add up to
max(min, base + usage_all) − max(min, base + usage_billed_so_far)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from catalog.models import PlanVersion
from catalog.rating import minimum_commitment_true_up, needs_event_values, rate_charge
from common.money import format_price, format_quantity, quantize_money
from common.timeutil import local_date, local_date_bounds_utc
from invoicing.schedule import Span, full_days
from invoicing.segments import ChargesByVersion, Segment, merge_by_version, needs_segments, segments
from subscriptions.fees import base_fee_amount, first_billable_day
from subscriptions.periods import Period, period_containing, prorate
from usage.selectors import (BILLED, ZERO as NO_USAGE, late_events_unbilled, usage_aggregate_windows,
                             usage_event_values)
from usage.services.late import late_events_mark_billed

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LateLine:
    """The fields of one `late_usage` invoice line and the late events it bills."""
    fields: dict
    event_ids: list[int]


@dataclass(frozen=True, slots=True)
class LateMark:
    """Late events billed on an (unsaved, pk assigned) invoice."""
    event_ids: list[int]
    invoice: object


@dataclass(frozen=True, slots=True)
class _WindowKey:
    subscription_id: int
    start: date
    end: date
    version_id: int | None  # None: trial (or pre-start) usage, settled at zero


@dataclass(frozen=True, slots=True)
class _Window:
    period: Period
    version: PlanVersion
    segments: list[Segment]  # the window's segments (seat counts) on `version`


def late_usage_lines(plans: dict, changes, charges: ChargesByVersion, errors: list | None) -> dict[int, list[LateLine]]:
    """Late events of the planned subscriptions (`plans`: {subscription_id: plan with `.sub`}, rows
    locked) → their late lines per subscription. A window that fails to rate is logged in `errors`
    and left unbilled (the next invoice retries it)."""
    events = late_events_unbilled(subscription_ids=list(plans))
    if not events:
        return {}
    out: dict[int, list[LateLine]] = defaultdict(list)
    windows: dict[_WindowKey, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    window_info: dict[_WindowKey, _Window] = {}
    segment_cache: dict[tuple, tuple[list[Segment], list]] = {}
    for event in events:
        sub = plans[event.subscription_id].sub
        interval = sub.plan_version.plan.interval
        day = local_date(event.timestamp, sub.customer.timezone)
        first = first_billable_day(start_date=sub.start_date, trial_end_date=sub.trial_end_date)
        if day < first:
            # Trial (or pre-start) usage is never billed, late or not: settle it at zero.
            windows[_WindowKey(sub.pk, sub.start_date, first, None)][event.metric_id].append(event)
            continue
        period = period_containing(start_date=sub.start_date, interval=interval, billing_time=sub.billing_time, on=day)
        # The window starts where billing started and ends where the subscription ended, as the
        # period's own invoices did.
        window_start = max(period.start, first)
        window_end = period.end if sub.end_date is None else max(min(period.end, sub.end_date), window_start)
        cache_key = (sub.pk, period)
        if cache_key not in segment_cache:
            split = needs_segments(sub, changes.get(sub.pk, ()), since=window_start)
            segs = (segments(sub, window_start, window_end, split=split)
                    or segments(sub, window_start, window_end, split=False))
            segment_cache[cache_key] = (segs, merge_by_version(segs))
        segs, merged = segment_cache[cache_key]
        run = next((m for m in merged if m.start <= day < m.end), merged[-1])
        key = _WindowKey(sub.pk, run.start, run.end, run.version.pk)
        windows[key][event.metric_id].append(event)
        window_info[key] = _Window(period, run.version,
                                   [s for s in segs if s.version.pk == run.version.pk and run.start <= s.start < run.end])
    for key, by_metric in windows.items():
        sub = plans[key.subscription_id].sub
        if key.version_id is None:
            for metric_id, group in by_metric.items():
                out[key.subscription_id].append(LateLine(
                    dict(description="Late usage during the trial, not billed", billable_metric_id=metric_id,
                         quantity=Decimal(len(group)), amount=ZERO, period_start=key.start, period_end=key.end,
                         metadata={"events": len(group), "trial": True}),
                    [e.event_id for e in group]))
            continue
        try:
            lines = _late_window(sub, key, window_info[key], by_metric, charges)
        except Exception as exc:  # noqa: BLE001 — the events stay unbilled; the next invoice retries them
            logger.exception("late usage of subscription %s, window %s–%s failed", sub.pk, key.start, key.end)
            if errors is not None:
                errors.append({"subscription": sub.external_id,
                               "late_usage_window": [key.start.isoformat(), key.end.isoformat()], "error": repr(exc)})
            continue
        out[key.subscription_id].extend(lines)
    return out


def mark_late_billed(marks: list[LateMark]) -> None:
    """Every event must still be unbilled (the caller holds the subscription row locks)."""
    for mark in marks:
        marked = late_events_mark_billed(event_ids=mark.event_ids, invoice_id=mark.invoice.pk)
        if marked != len(mark.event_ids):
            raise RuntimeError(f"late events billed twice? marked {marked} of {len(mark.event_ids)} "
                               f"for invoice {mark.invoice.pk}")


def _late_window(sub, key: _WindowKey, info: _Window, by_metric: dict[int, list],
                 charges: ChargesByVersion) -> list[LateLine]:
    """The late lines of one window (see the module docstring)."""
    start, end = key.start, key.end
    version = info.version
    currency = sub.plan_version.plan.currency
    interval = version.plan.interval
    window_charges = charges.get(key.version_id)
    lines: list[LateLine] = []
    for metric_id, group in by_metric.items():
        if not any(c.billable_metric_id == metric_id for c in window_charges):
            # The plan in force did not charge this metric: nothing to bill, but the events are
            # settled on this invoice so they are not examined forever.
            lines.append(LateLine(dict(description="Late usage not charged on the plan in force",
                                       billable_metric_id=metric_id, quantity=Decimal(len(group)), amount=ZERO,
                                       period_start=start, period_end=end, metadata={"events": len(group)}),
                                  [e.event_id for e in group]))
    charged = [c for c in window_charges if c.billable_metric_id in by_metric]
    if not charged:
        return lines
    minimum_total = version.minimum_commitment
    rated_set = window_charges if minimum_total else charged
    metric_ids = sorted({c.billable_metric_id for c in rated_set})
    b0, b1 = local_date_bounds_utc(start, end, sub.customer.timezone)
    window = [("w", sub.pk, b0, b1)]
    everything = usage_aggregate_windows(window, metric_ids=metric_ids, late=None)["w"]
    billed = usage_aggregate_windows(window, metric_ids=metric_ids, late=BILLED)["w"]
    usage_all = usage_before = ZERO
    late_lines: list[LateLine] = []
    for charge in rated_set:
        metric_id = charge.billable_metric_id
        agg_all = everything.get(metric_id) or NO_USAGE
        agg_before = billed.get(metric_id) or NO_USAGE
        values_all = values_before = None
        if needs_event_values(model=charge.model, properties=charge.properties):
            values_all = usage_event_values(subscription_id=sub.pk, metric_id=metric_id, start=b0, end=b1, late=None)
            values_before = usage_event_values(subscription_id=sub.pk, metric_id=metric_id, start=b0, end=b1,
                                               late=BILLED)
        rated_all = rate_charge(charge=charge, quantity=agg_all.quantity, currency=currency,
                                event_count=agg_all.event_count, event_values=values_all)
        rated_before = rate_charge(charge=charge, quantity=agg_before.quantity, currency=currency,
                                   event_count=agg_before.event_count, event_values=values_before)
        usage_all += rated_all.amount
        usage_before += rated_before.amount
        if metric_id not in by_metric:
            continue
        group = by_metric[metric_id]
        q_all, q_before = agg_all.quantity, agg_before.quantity
        name = charge.invoice_display_name or charge.billable_metric.name
        late_lines.append(LateLine(dict(
            description=f"Late usage — {name}, {start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"[:500],
            billable_metric_id=metric_id, charge=charge, plan_version_id=key.version_id,
            quantity=q_all - q_before, unit_amount=rated_all.unit_amount,
            amount=rated_all.amount - rated_before.amount, period_start=start, period_end=end,
            tiers=_tier_difference(rated_all.tiers, rated_before.tiers),
            metadata={"events": len(group), "quantity_before": str(q_before), "quantity_after": str(q_all),
                      "amount_before": str(rated_before.amount), "amount_after": str(rated_all.amount)},
        ), [e.event_id for e in group]))
        # Events of this metric billed by another charge of the window are marked once only.
        by_metric = {**by_metric, metric_id: []}
    if minimum_total and late_lines:
        span = Span(info.period, start, end)
        full = full_days(span, interval=interval)
        days = (end - start).days
        minimum = (minimum_total if days == full else
                   prorate(amount=minimum_total, days_used=days, days_in_period=full, currency=currency))
        base = sum((base_fee_amount(version=version, quantity=seg.quantity, start=seg.start, end=seg.end,
                                    full_days=full, currency=currency) for seg in info.segments), ZERO)
        true_up_before = minimum_commitment_true_up(minimum=minimum, subtotal=base + usage_before, currency=currency)
        true_up_all = minimum_commitment_true_up(minimum=minimum, subtotal=base + usage_all, currency=currency)
        _absorb_minimum(late_lines, true_up_all - true_up_before, minimum=minimum, currency=currency)
    return lines + late_lines


def _absorb_minimum(late_lines: list[LateLine], adjustment: Decimal, *, minimum: Decimal, currency: str) -> None:
    """Spread a window's change of minimum-commitment true-up over its late lines, so they add up
    to max(min, base + usage_all) − max(min, base + usage_before): a shortfall already billed as
    true-up absorbs the late usage (taken from the positive lines in order); a true-up that grows
    (a `latest` value fell) is added to the first line."""
    if not adjustment:
        return
    if adjustment > 0:
        shares = [adjustment] + [ZERO] * (len(late_lines) - 1)
    else:
        remaining, shares = -adjustment, []
        for line in late_lines:
            take = min(remaining, max(line.fields["amount"], ZERO))
            shares.append(-take)
            remaining -= take
        if remaining:
            shares[0] -= remaining
    for line, share in zip(late_lines, shares):
        if not share:
            continue
        fields = line.fields
        fields["metadata"]["usage_amount"] = str(fields["amount"])
        fields["metadata"]["minimum_commitment_adjustment"] = str(share)
        fields["metadata"]["minimum"] = str(minimum)
        fields["amount"] = quantize_money(fields["amount"] + share, currency)
        text = (f" (less {format_price(-share, currency)} already billed as minimum commitment true-up)" if share < 0
                else f" (plus {format_price(share, currency)} minimum commitment true-up)")
        fields["description"] = (fields["description"] + text)[:500]


def _tier_difference(after, before) -> list[dict]:
    """Tier rows of rate(after) − rate(before): what the late units added, tier by tier."""
    rows = []
    previous = {(t.from_unit, t.to_unit, t.unit_amount): t for t in before}
    for tier in after:
        old = previous.get((tier.from_unit, tier.to_unit, tier.unit_amount))
        units = tier.units - (old.units if old else ZERO)
        amount = tier.amount - (old.amount if old else ZERO)
        if units or amount:
            row = tier.as_dict()
            row["units"] = format_quantity(units)
            row["amount"] = format_quantity(amount)
            if old is not None:
                row["flat_amount"] = format_quantity(tier.flat_amount - old.flat_amount)
            rows.append(row)
    return rows
