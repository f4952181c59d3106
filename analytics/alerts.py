"""Usage threshold alerts (DESIGN.md §12, API.md "Usage intelligence").

An alert watches one metric of one subscription's open period, in units (the metric's aggregated
quantity) or in amount (that metric's charges rated on the subscription's plan). A sweep runs every
minute (Celery beat `analytics.evaluate_usage_alerts`), so an alert fires at most a minute after
the crossing usage is ingested and ingestion never waits on it. Each alert fires once per period:
a `UsageAlertTrigger` row unique on (alert, period start), written with a `usage.threshold_crossed`
audit event (a domain event the outbound webhooks deliver). Sweeps are serialized by an advisory
lock, so two at once fire nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import UsageAlert, UsageAlertTrigger
from catalog.models import BillableMetric
from catalog.rating import needs_event_values, rate_charge
from common.audit import actor_label, audit_bulk_create, audit_record
from common.errors import ApplicationError
from common.models import AuditEvent
from common.timeutil import local_date, local_date_bounds_utc
from subscriptions.selectors import subscription_current_period
from usage.live import period_usage_days
from usage.selectors import ZERO, UsageWindow, usage_aggregate, usage_event_values

_LOCK_KEY = 0x17A0_0A12


def usage_alert_create(*, subscription, billable_metric_code: str, threshold_units: Decimal | None = None,
                       threshold_amount: Decimal | None = None, actor=None) -> UsageAlert:
    if (threshold_units is None) == (threshold_amount is None):
        raise ApplicationError("Give exactly one of threshold_units and threshold_amount.",
                               fields={"threshold_units": ["exactly one of threshold_units, threshold_amount"]})
    for name, value in (("threshold_units", threshold_units), ("threshold_amount", threshold_amount)):
        if value is not None and value <= 0:
            raise ApplicationError(f"'{name}' must be positive.", fields={name: ["must be positive"]})
    metric = BillableMetric.objects.filter(code=billable_metric_code).first()
    if metric is None:
        raise ApplicationError(f"Unknown billable metric {billable_metric_code!r}.",
                               fields={"billable_metric": ["unknown billable metric"]})
    if not subscription.plan_version.charges.filter(billable_metric=metric).exists():
        raise ApplicationError(f"The subscription's plan does not charge {metric.code!r}.",
                               fields={"billable_metric": ["not charged by the subscription's plan"]})
    with transaction.atomic():
        alert = UsageAlert.objects.create(subscription=subscription, billable_metric=metric,
                                          threshold_units=threshold_units, threshold_amount=threshold_amount,
                                          created_by=actor_label(actor) if actor is not None else "system")
        audit_record(action="usage_alert.created", obj=alert, actor=alert.created_by, rule="api",
                     inputs={"subscription": subscription.external_id, "billable_metric": metric.code,
                             "threshold_units": None if threshold_units is None else str(threshold_units),
                             "threshold_amount": None if threshold_amount is None else str(threshold_amount)})
    return alert


def _open_window(sub, now: datetime):
    """The open period and its billable window in UTC (what subscription_usage_current measures)."""
    tz = sub.customer.timezone
    period = subscription_current_period(subscription=sub, today=local_date(now, tz))
    first, last = period_usage_days(subscription=sub, period=period)
    start, end = local_date_bounds_utc(first, last, tz)
    return period, start, end


def _measure(alerts: list[UsageAlert], now: datetime) -> dict[int, tuple]:
    """alert id → (period_start, units, amount) for the open period of its subscription. One usage query."""
    subs = {a.subscription_id: a.subscription for a in alerts}
    windows = {pk: _open_window(sub, now) for pk, sub in subs.items()}
    usage = usage_aggregate(windows=[UsageWindow(pk, start, end) for pk, (_, start, end) in windows.items()],
                            metric_ids=sorted({a.billable_metric_id for a in alerts}))
    charges = defaultdict(list)
    for sub in subs.values():
        for charge in sub.plan_version.charges.all():
            charges[(sub.pk, charge.billable_metric_id)].append(charge)
    out = {}
    for a in alerts:
        period, start, end = windows[a.subscription_id]
        agg = usage.get((a.subscription_id, a.billable_metric_id), ZERO)
        amount = Decimal(0)
        for charge in charges[(a.subscription_id, a.billable_metric_id)]:
            values = None
            if needs_event_values(model=charge.model, properties=charge.properties):
                values = usage_event_values(subscription_id=a.subscription_id, metric_id=a.billable_metric_id,
                                            start=start, end=end)
            amount += rate_charge(charge=charge, quantity=agg.quantity, currency=a.subscription.plan_version.plan.currency,
                                  event_count=agg.event_count, event_values=values).amount
        out[a.pk] = (period.start, agg.quantity, amount)
    return out


def _live_alerts(subscription_ids=None):
    qs = UsageAlert.objects.select_related("subscription__customer", "subscription__plan_version__plan",
                                           "billable_metric").prefetch_related("subscription__plan_version__charges")
    qs = qs.exclude(subscription__status__in=["canceled", "ended", "incomplete_expired"])
    if subscription_ids is not None:
        qs = qs.filter(subscription_id__in=list(subscription_ids))
    return list(qs)


def usage_alerts_evaluate(*, now: datetime | None = None, subscription_ids=None) -> int:
    """Fire every alert whose threshold the open period has reached and that has not fired in this
    period. Returns how many fired."""
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        alerts = _live_alerts(subscription_ids)
        if not alerts:
            return 0
        measured = _measure(alerts, now)
        fired = set(UsageAlertTrigger.objects.filter(alert__in=alerts, period_start__in={m[0] for m in measured.values()})
                    .values_list("alert_id", "period_start"))
        new = []
        for a in alerts:
            period_start, units, amount = measured[a.pk]
            if (a.pk, period_start) in fired:
                continue
            reached = units >= a.threshold_units if a.threshold_units is not None else amount >= a.threshold_amount
            if reached:
                new.append((a, UsageAlertTrigger(alert=a, period_start=period_start, triggered_at=now, units=units,
                                                 amount=amount)))
        if not new:
            return 0
        UsageAlertTrigger.objects.bulk_create([t for _, t in new])
        audit_bulk_create([
            AuditEvent(action="usage.threshold_crossed", object_type=UsageAlert._meta.label_lower, object_id=str(a.pk),
                       actor="system", rule="usage_alert_sweep",
                       inputs={"subscription": a.subscription.external_id, "customer": a.subscription.customer.external_id,
                               "billable_metric": a.billable_metric.code, "period_start": t.period_start.isoformat(),
                               "threshold_units": None if a.threshold_units is None else f"{a.threshold_units.normalize():f}",
                               "threshold_amount": None if a.threshold_amount is None else str(a.threshold_amount),
                               "units": f"{t.units.normalize():f}" if t.units else "0", "amount": str(t.amount)})
            for a, t in new])
        return len(new)


def usage_alerts_for_subscription(*, subscription, now: datetime | None = None) -> list[dict]:
    """The subscription's alerts with `triggered_at` in the open period (null if not yet)."""
    now = now or timezone.now()
    alerts = list(UsageAlert.objects.filter(subscription=subscription).select_related("subscription", "billable_metric"))
    if not alerts:
        return []
    period, _, _ = _open_window(subscription, now)
    triggers = {t.alert_id: t for t in UsageAlertTrigger.objects.filter(alert__in=alerts, period_start=period.start)}
    return [usage_alert_as_dict(a, triggers.get(a.pk), period.start) for a in alerts]


def usage_alert_as_dict(a: UsageAlert, trigger: UsageAlertTrigger | None, period_start) -> dict:
    return {
        "id": a.pk, "subscription": a.subscription.external_id, "billable_metric": a.billable_metric.code,
        "threshold_units": None if a.threshold_units is None else f"{a.threshold_units.normalize():f}",
        "threshold_amount": None if a.threshold_amount is None else f"{a.threshold_amount.quantize(Decimal('0.01')):f}",
        "period_start": period_start.isoformat() if period_start else None,
        "triggered_at": trigger.triggered_at.isoformat() if trigger else None,
        "created_at": a.created_at.isoformat(),
    }
