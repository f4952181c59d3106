"""Live usage of the open period (GET /api/v1/subscriptions/{external_id}/usage/): usage so far,
its amount by the real rating engine, the weekday-aware forecast and the days the next tier and the
minimum commitment will be crossed; plus the per-day reads revenue accruals and alerts share
(`period_usage_days`, `rated_usage_amounts`). Reads come from usage.selectors (the rollups)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Sequence

from django.utils import timezone as dj_timezone

from catalog.models import Aggregation
from catalog.rating import rate_charge, rate_projected
from common.money import format_money
from common.timeutil import local_date, local_date_bounds_utc, local_midnight_utc
from subscriptions.fees import subscription_first_billable_day
from subscriptions.selectors import subscription_current_period
from usage import forecast as fc
from usage.selectors import ZERO, UsageWindow, _clean, usage_aggregate, usage_daily, usage_event_values

_RUN_RATE_AGGREGATIONS = {Aggregation.COUNT, Aggregation.SUM}
_FORECAST_PLACES = Decimal("0.000001")
_MICROSECOND = timedelta(microseconds=1)


def _plain(value: Decimal) -> str:
    return f"{_clean(value):f}"


def _forecast_units(aggregation: str, units: Decimal, fraction: Decimal) -> Decimal:
    """Linear run-rate for additive metrics (count, sum): units / elapsed fraction of the period.
    max, latest and unique_count are not additive: the forecast is the value so far."""
    if aggregation not in _RUN_RATE_AGGREGATIONS or fraction <= 0:
        return units
    projected = units / fraction
    if aggregation == Aggregation.COUNT:
        return projected.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return projected.quantize(_FORECAST_PLACES, rounding=ROUND_HALF_UP)


def period_usage_days(*, subscription, period):
    """The customer-local days [first, last) of `period` whose usage the period bills (as invoicing
    does): not the trial, not the part an immediate change already invoiced (before
    usage_billed_through), nothing after the end date. Shared by the live usage endpoint and the
    revenue accrual of uninvoiced usage at month close (revrec.accruals)."""
    last = period.end if subscription.end_date is None else min(period.end, subscription.end_date)
    first = max(subscription_first_billable_day(subscription=subscription, period=period),
                subscription.usage_billed_through or period.start)
    return min(first, last), last


def rated_usage_amounts(*, items: Sequence[tuple]) -> dict[int, Decimal]:
    """Usage rated with the plan's charges, per subscription, for many windows at once:
    `items` are (subscription, start, end) with UTC instants, one per subscription. One aggregate
    query for all of them (usage_aggregate), then catalog.rating.rate_charge per charge, exactly as
    the live usage endpoint rates the open period. Late events are excluded (billed separately).
    Subscriptions need `plan_version` with its charges prefetched (`plan_version__charges`)."""
    if not items:
        return {}
    charges_by = {sub.id: sorted(sub.plan_version.charges.all(), key=lambda c: (c.position, c.pk)) for sub, _, _ in items}
    metric_ids = sorted({c.billable_metric_id for charges in charges_by.values() for c in charges})
    usage = usage_aggregate(windows=[UsageWindow(sub.id, start, end) for sub, start, end in items]) if metric_ids else {}
    out: dict[int, Decimal] = {}
    for sub, start, end in items:
        currency = sub.plan_version.plan.currency
        total = Decimal(0)
        for charge in charges_by[sub.id]:
            aggregate = usage.get((sub.id, charge.billable_metric_id), ZERO)
            values = None
            if charge.model == "percentage":
                values = usage_event_values(subscription_id=sub.id, metric_id=charge.billable_metric_id,
                                            start=start, end=end)
            total += rate_charge(charge=charge, quantity=aggregate.quantity, currency=currency,
                                 event_count=aggregate.event_count, event_values=values).amount
        out[sub.id] = total
    return out


def subscription_usage_current(*, subscription, now: datetime | None = None) -> dict:
    """The open period's usage per charge (units, amount, tier breakdown), its total, and a forecast
    of end-of-period units and amount (linear run-rate by elapsed time, see _forecast_units).
    Late events are excluded (they belong to already-invoiced periods), and so are days the period
    will not bill: the trial and a part already invoiced by an immediate change."""
    now = now or dj_timezone.now()
    tz = subscription.customer.timezone
    currency = subscription.plan_version.plan.currency
    period = subscription_current_period(subscription=subscription, today=local_date(now, tz))
    first, last = period_usage_days(subscription=subscription, period=period)
    start, end = local_date_bounds_utc(first, last, tz)
    span = end - start
    elapsed = min(max(now, start), end) - start
    fraction = Decimal(elapsed // _MICROSECOND) / Decimal(span // _MICROSECOND) if span else Decimal(0)

    charges = list(subscription.plan_version.charges.select_related("billable_metric").order_by("position", "pk"))
    metric_ids = sorted({c.billable_metric_id for c in charges})
    usage = usage_aggregate(windows=[UsageWindow(subscription.id, start, end)], metric_ids=metric_ids) if charges else {}
    # The forecast path day by day (usage/forecast.py): weekday-aware once 28 days of history exist.
    today = max(local_date(now, tz), min(first, last))
    midnight = local_midnight_utc(today, tz)
    day_span = local_midnight_utc(today + timedelta(days=1), tz) - midnight
    today_left = Decimal(1) - (Decimal(min(max(now - midnight, timedelta(0)), day_span) // _MICROSECOND)
                               / Decimal(day_span // _MICROSECOND))
    history_days = (today - subscription.start_date).days
    history = None
    if history_days >= fc.WEEKDAY_HISTORY_DAYS and charges:
        history = {}
        for _, metric_id, day, quantity in usage_daily(start=today - timedelta(days=fc.WEEKDAY_HISTORY_DAYS), end=today,
                                                       subscription_ids=[subscription.id]):
            history.setdefault(metric_id, {})[day] = quantity
    elapsed_days = Decimal(elapsed // _MICROSECOND) / Decimal(timedelta(days=1) // _MICROSECOND)
    lines, forecast_lines, paths = [], [], []
    total = forecast_total = Decimal(0)
    for charge in charges:
        metric = charge.billable_metric
        aggregate = usage.get((subscription.id, metric.id), ZERO)
        values = None
        if charge.model == "percentage":
            values = usage_event_values(subscription_id=subscription.id, metric_id=metric.id, start=start, end=end)
        rated = rate_charge(charge=charge, quantity=aggregate.quantity, currency=currency,
                            event_count=aggregate.event_count, event_values=values)
        total += rated.amount
        lines.append({
            "charge_id": charge.pk,
            "billable_metric": metric.code,
            "aggregation": metric.aggregation,
            "model": charge.model,
            "description": rated.description,
            "units": _plain(aggregate.quantity),
            "event_count": aggregate.event_count,
            "unit_amount": None if rated.unit_amount is None else _plain(rated.unit_amount),
            "amount": format_money(rated.amount, currency),
            "tiers": [t.as_dict() for t in rated.tiers],
        })
        path = fc.day_path(units=aggregate.quantity, today=today, today_left=today_left, last_day=last - timedelta(days=1),
                           additive=metric.aggregation in _RUN_RATE_AGGREGATIONS,
                           history=None if history is None else history.get(metric.id, {}),
                           history_days=(today - min(history[metric.id])).days if history and history.get(metric.id) else 0,
                           elapsed_days=elapsed_days)
        if path.method == "weekday_run_rate":
            units = fc.round_units(path.final, metric.aggregation)
        else:
            units = _forecast_units(metric.aggregation, aggregate.quantity, fraction)
        count = aggregate.event_count
        if path.method == "weekday_run_rate" and aggregate.quantity > 0:
            count = int((Decimal(count) * units / aggregate.quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        elif metric.aggregation in _RUN_RATE_AGGREGATIONS and fraction > 0:
            count = int((Decimal(count) / fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        # Per-event values of the future are unknown: a charge priced per event (free events,
        # per-event min/max) keeps the events so far and adds the projected ones at their mean value.
        extra = max(count - aggregate.event_count, 0)
        mean = (sum(values, Decimal(0)) / len(values)) if values else Decimal(0)
        projected = rate_projected(model=charge.model, properties=charge.properties, quantity=units,
                                   currency=currency, event_count=count, event_values=values,
                                   extra_events=extra, extra_value=mean)
        forecast_total += projected
        bound = fc.next_tier_bound(model=charge.model, properties=charge.properties, units=aggregate.quantity)
        next_tier = None
        if bound is not None:
            next_tier = {"up_to": _plain(bound),
                         **fc.crossing_day(path.days, path.cumulative, bound, aggregate.quantity, strict=True)}
        paths.append((charge, path, aggregate))
        forecast_lines.append({"charge_id": charge.pk, "billable_metric": metric.code, "units": _plain(units),
                               "amount": format_money(projected, currency), "method": path.method,
                               "next_tier": next_tier})
    minimum = _minimum_commitment_forecast(subscription=subscription, paths=paths, currency=currency,
                                           total_now=total, forecast_total=forecast_total)
    return {
        "subscription": subscription.external_id,
        "customer": subscription.customer.external_id,
        "currency": currency,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "as_of": now.isoformat(),
        "charges": lines,
        "total": format_money(total, currency),
        "forecast": {
            "method": "count and sum metrics: weekday-aware run-rate (mean of each weekday over the last 28 days) once "
                      "the subscription has 28 days of history, else linear run-rate by elapsed time; max, latest and "
                      "unique_count keep their value so far",
            "elapsed_fraction": f"{fraction.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f}",
            "charges": forecast_lines,
            "total": format_money(forecast_total, currency),
            "minimum_commitment": minimum,
        },
    }


def _minimum_commitment_forecast(*, subscription, paths, currency: str, total_now: Decimal,
                                 forecast_total: Decimal) -> dict | None:
    """When the period's subtotal (the full base fee plus the usage amounts along the forecast path)
    reaches the plan's minimum commitment."""
    version = subscription.plan_version
    if not version.minimum_commitment:
        return None
    base = version.amount * subscription.quantity
    days = paths[0][1].days if paths else []
    amounts = []
    for k in range(len(days)):
        amount = base
        for charge, path, aggregate in paths:
            units = fc.round_units(path.cumulative[k], charge.billable_metric.aggregation)
            amount += rate_charge(charge=charge, quantity=units, currency=currency,
                                  event_count=aggregate.event_count).amount
        amounts.append(amount)
    return {"amount": format_money(version.minimum_commitment, currency),
            "forecast_subtotal": format_money(base + forecast_total, currency),
            **fc.crossing_day(days, amounts, version.minimum_commitment, base + total_now)}


