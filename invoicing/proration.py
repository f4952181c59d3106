"""Proration items on invoices: the pending items of a chunk's subscriptions, and the credit for
unused time net of what was actually charged (DESIGN.md §5)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Q

from common.money import quantize_money
from invoicing.models import InvoiceLine, InvoiceStatus, LineKind
from invoicing.totals import line_discountable
from subscriptions.models import ProrationItem, Subscription
from subscriptions.periods import full_period_days, period_containing

ZERO = Decimal(0)


def pending_prorations(ids) -> dict[int, list[ProrationItem]]:
    out: dict[int, list[ProrationItem]] = defaultdict(list)
    for item in ProrationItem.objects.filter(subscription_id__in=ids, invoiced_at__isnull=True).order_by(
            "subscription_id", "period_start", "pk"):
        out[item.subscription_id].append(item)
    return out


def unused_time_credit(sub: Subscription, item: ProrationItem, *, currency: str, interval: str) -> tuple[Decimal, dict]:
    """A credit for unused time returns the unused share of what was actually charged for that fee:
    after its discount, before tax (DESIGN.md §5). The fee is what the subscription's non-void
    invoices charged for this plan version over the day the credit starts: the in-advance base fee
    line and any proration charges (an upgrade's remaining time, added seats), each net of its
    invoice's discount shared in proportion to line amounts. The nominal unused share
    (amount × seats × unused days / days in period) is scaled by charged-net / charged-gross and
    rounded once. A fee not invoiced yet (an upgrade before the run billed the period) is credited
    at its nominal amount: the run bills it in full later."""
    period = period_containing(start_date=sub.start_date, interval=interval, billing_time=sub.billing_time,
                               on=item.period_start)
    full = full_period_days(period, interval=interval)
    nominal = item.unit_amount * item.quantity * Decimal((item.period_end - item.period_start).days) / Decimal(full)
    charged = list(
        InvoiceLine.objects.filter(
            invoice__subscription_id=sub.pk, plan_version_id=item.plan_version_id, period_start__lte=item.period_start,
            period_end__gt=item.period_start, amount__gt=0,
        ).filter(Q(kind=LineKind.SUBSCRIPTION, metadata__in_advance=True) | Q(kind=LineKind.PRORATION))
        .exclude(invoice__status=InvoiceStatus.VOID)
        .values_list("amount", "invoice_id", "invoice__discount")
    )
    # The invoice's discount is shared over the lines coupons apply to (line_discountable).
    base: dict = defaultdict(lambda: ZERO)
    for invoice_id, amount, kind in InvoiceLine.objects.filter(invoice_id__in={c[1] for c in charged}).values_list(
            "invoice_id", "amount", "kind"):
        if line_discountable(kind, amount):
            base[invoice_id] += amount
    gross = sum((amount for amount, _, _ in charged), ZERO)
    net = sum((amount - (amount * discount / base[invoice_id] if discount and base[invoice_id] > 0 else ZERO)
               for amount, invoice_id, discount in charged), ZERO)
    fraction = net / gross if gross > 0 else Decimal(1)
    credit = -quantize_money(nominal * fraction, currency)
    info = {"charged_gross": str(quantize_money(gross, currency)), "charged_net": str(quantize_money(net, currency)),
            "nominal_credit": str(-quantize_money(nominal, currency))} if gross > 0 else {}
    return credit, info
