"""Usage consumed in a month and not invoiced at its close (DESIGN.md §8, first posting):
Dr unbilled receivable / Cr revenue, dated the month's last day; released by the invoice that
bills it (its usage lines credit unbilled receivable for what was accrued, revenue for the
difference: the true-up of the estimate).

Which usage: for every subscription whose plan has usage charges, each billing period that
overlaps the month and has not been invoiced at the close (no finalized, unvoided invoice with a
usage line over it): the period's usage from its first billable day through the month end is
rated with the plan's charges through the same code path as the live usage endpoint
(`usage.live.period_usage_days` + `rated_usage_amounts`: one aggregate query for all
subscriptions, then `catalog.rating.rate_charge`). Cumulative: what earlier closes accrued for the
same period is subtracted, so tiered prices (not additive by month) come out right and a period
spanning two closes accrues each month's increment. Late events are billed separately and are
not accrued.

Not accrued (decided, docs/decisions.md): minimum-commitment true-ups (not certain until the
period ends — usage later in the period can cover the minimum; they are recognized when invoiced),
coupons/discounts and tax (the invoice's amounts settle the estimate). One journal entry per
(subscription, period, month), source_type `recognition`, kind `usage_accrual`, so the
reconciliation reports it under `unbilled` like the schedule accruals.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q

from catalog.models import Charge
from common.money import quantize_money
from common.timeutil import local_date_bounds_utc
from invoicing.models import InvoiceLine
from revrec.models import Account, UsageAccrual
from revrec.postings import Draft, write_entries
from revrec.schedules import month_end, month_start
from subscriptions.models import Subscription
from subscriptions.selectors import subscription_period_containing
from usage.live import period_usage_days, rated_usage_amounts

ZERO = Decimal(0)
BATCH = 2000


def _candidates(month: date):
    last = month_end(month)

    has_charges = Charge.objects.filter(plan_version_id=OuterRef("plan_version_id"))
    return (Subscription.objects.filter(Exists(has_charges), start_date__lte=last)
            .filter(Q(end_date__isnull=True) | Q(end_date__gt=month))
            .select_related("customer", "plan_version__plan").prefetch_related("plan_version__charges")
            .order_by("pk"))


def _periods(subscription, month: date) -> list:
    """The billing periods of `subscription` overlapping `month` (half-open, customer-local)."""
    out, on, stop = [], max(month, subscription.start_date), month_end(month)
    while on <= stop:
        if subscription.end_date is not None and on >= subscription.end_date:
            break
        period = subscription_period_containing(subscription=subscription, on=on)
        out.append(period)
        on = max(period.end, on + timedelta(days=1))
    return out


def accrue_usage(month: date) -> int:
    """Write `month`'s usage accruals (the caller holds the journal lock, inside a transaction).
    Rerun-safe: a (subscription, period) accrued for `month` already is skipped."""
    month = month_start(month)
    through_limit = month_end(month) + timedelta(days=1)
    ids = list(_candidates(month).values_list("pk", flat=True))
    written = 0
    for start in range(0, len(ids), BATCH):
        written += _accrue_batch(list(_candidates(month).filter(pk__in=ids[start:start + BATCH])), month, through_limit)
    return written


def _accrue_batch(subscriptions: list, month: date, through_limit: date) -> int:
    sub_ids = [s.pk for s in subscriptions]
    done = set(UsageAccrual.objects.filter(subscription_id__in=sub_ids, month=month)
               .values_list("subscription_id", "period_start"))
    prior: dict = defaultdict(lambda: ZERO)
    released = set()
    for sub_id, period_start, amount, invoice_id in UsageAccrual.objects.filter(
            subscription_id__in=sub_ids, month__lt=month).values_list("subscription_id", "period_start", "amount",
                                                                      "released_invoice_id"):
        prior[(sub_id, period_start)] += amount
        if invoice_id is not None:
            released.add((sub_id, period_start))
    invoiced_lines: dict = defaultdict(list)
    for sub_id, line_start, line_end in InvoiceLine.objects.filter(
            invoice__subscription_id__in=sub_ids, invoice__finalized_at__isnull=False, invoice__voided_at__isnull=True,
            kind="usage", period_start__isnull=False, period_end__isnull=False) \
            .values_list("invoice__subscription_id", "period_start", "period_end"):
        invoiced_lines[sub_id].append((line_start, line_end))

    # The k-th open period of each subscription in one rating call (one window per subscription).
    rounds: dict = defaultdict(list)
    for sub in subscriptions:
        for k, period in enumerate(_periods(sub, month)):
            if (sub.pk, period.start) in done or (sub.pk, period.start) in released:
                continue
            first, last = period_usage_days(subscription=sub, period=period)
            through = min(last, through_limit)
            if through <= first:
                continue
            if any(s < through and e > first for s, e in invoiced_lines[sub.pk]):
                continue  # invoiced already: its invoice carries the usage
            rounds[k].append((sub, period, first, through))
    rows, drafts = [], []
    bounds: dict = {}  # (day, tz) → UTC instant: most subscriptions share a few days and zones
    for batch in rounds.values():
        tz_items = []
        for sub, period, first, through in batch:
            tz = sub.customer.timezone
            for day in (first, through):
                if (day, tz) not in bounds:
                    bounds[(day, tz)] = local_date_bounds_utc(day, day, tz)[0]
            start, end = bounds[(first, tz)], bounds[(through, tz)]
            tz_items.append((sub, start, end))
        rated = rated_usage_amounts(items=tz_items)
        for sub, period, first, through in batch:
            currency = sub.plan_version.plan.currency
            cumulative = quantize_money(rated.get(sub.pk, ZERO), currency)
            amount = cumulative - prior[(sub.pk, period.start)]
            if not amount:
                continue
            draft = Draft(date=month_end(month), currency=currency,
                          memo=f"Usage accrued {month:%Y-%m}, subscription {sub.external_id} "
                               f"(period {period.start.isoformat()} to {period.end.isoformat()}), not yet invoiced",
                          source_type="recognition", source_id=f"usage:{sub.pk}:{period.start.isoformat()}:{month:%Y-%m}",
                          kind="usage_accrual", document_date=month_end(month), customer_id=sub.customer_id,
                          note=f"usage rated {first.isoformat()} to {(through - timedelta(days=1)).isoformat()}")
            draft.add(Account.UNBILLED_RECEIVABLE, amount)
            draft.add(Account.REVENUE, -amount)
            drafts.append(draft)
            rows.append(UsageAccrual(subscription_id=sub.pk, customer_id=sub.customer_id, currency=currency,
                                     period_start=period.start, period_end=period.end, month=month,
                                     rated_through=through, amount=amount, cumulative=cumulative))
    entries = write_entries(drafts)
    for row, entry in zip(rows, entries):
        row.entry = entry
    UsageAccrual.objects.bulk_create(rows, batch_size=1000)
    return len(entries)


def unreleased_by_subscription(subscription_ids) -> dict:
    """{subscription_id: [(period_start, period_end, amount, rated_through, [accrual ids])]} of
    accruals no invoice released yet, one item per billing period."""
    groups: dict = {}
    for pk, sub_id, p_start, p_end, amount, through in UsageAccrual.objects.filter(
            subscription_id__in=list(subscription_ids), released_invoice__isnull=True) \
            .order_by("subscription_id", "period_start", "month") \
            .values_list("pk", "subscription_id", "period_start", "period_end", "amount", "rated_through"):
        key = (sub_id, p_start)
        if key not in groups:
            groups[key] = [p_start, p_end, ZERO, through, []]
        group = groups[key]
        group[2] += amount
        group[3] = max(group[3], through)
        group[4].append(pk)
    out: dict = defaultdict(list)
    for (sub_id, _), (p_start, p_end, amount, through, pks) in groups.items():
        out[sub_id].append((p_start, p_end, amount, through, pks))
    return out
