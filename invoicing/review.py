"""Review checks: how a higher app holds a fresh draft in the review queue without invoicing
importing it (DESIGN.md §1, §12).

The billing run builds each chunk's drafts in memory, runs its own rule (zero usage after usage),
then hands the drafts to every registered check before inserting them, inside the chunk's
transaction. A check returns, per draft, the reasons it should wait for review; each reason is a
dict with at least `rule` (e.g. `anomaly.spike`) and is stored in `review_reasons` and written as an
`invoice.flagged` audit event like the built-in rules. Analytics registers its anomaly check in
`AppConfig.ready()`:

    review.register_check(anomaly_review_check)

A check is called with a list of `DraftForReview` and returns `{invoice_pk: [reason, ...]}`. It runs
inside the billing transaction (it may write its own rows there), must be set-based (one or a few
queries per chunk) and only raise for a real invariant (raising fails the chunk's subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from django.db.models import Exists, OuterRef, Subquery

from invoicing.models import Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind

RULE_ZERO_USAGE = "zero_usage_after_usage"
USAGE_KINDS = (LineKind.USAGE, LineKind.LATE_USAGE)

_checks: list[Callable] = []


@dataclass(frozen=True)
class DraftForReview:
    invoice: object  # the unsaved Invoice (pk assigned)
    subscription: object
    lines: list  # its unsaved InvoiceLines
    usage_total: Decimal  # sum of its usage and late-usage lines


def register_check(check: Callable) -> None:
    if check not in _checks:
        _checks.append(check)


def unregister_check(check: Callable) -> None:
    if check in _checks:
        _checks.remove(check)


def run_checks(drafts: list[DraftForReview]) -> dict:
    """Every registered check over the drafts → {invoice_pk: [reason, ...]} (checks in registration order)."""
    out: dict = {}
    if not drafts:
        return out
    for check in list(_checks):
        for pk, reasons in (check(drafts) or {}).items():
            out.setdefault(pk, []).extend(reasons)
    return out


# --- the built-in rule's yardstick (zero usage after usage; the billing run applies it) ---------

@dataclass(frozen=True, slots=True)
class PreviousInvoice:
    """The yardstick for the zero-usage review rule: the subscription's latest cycle invoice."""
    total: Decimal
    had_usage: bool
    invoice_id: object
    days: int


def lines_span_days(lines) -> int:
    """Days from the earliest line's service start to the latest line's service end."""
    dated = [ln for ln in lines if ln.period_start and ln.period_end]
    if not dated:
        return 0
    return (max(ln.period_end for ln in dated) - min(ln.period_start for ln in dated)).days


def previous_invoices(ids) -> dict[int, PreviousInvoice]:
    """The latest non-void cycle invoice of each subscription: total, had usage, id, days its lines
    span. One query.
    Mid-period invoices (plan changes) are not a fair yardstick for a period's total."""
    had_usage = InvoiceLine.objects.filter(invoice=OuterRef("pk"), kind__in=USAGE_KINDS, quantity__gt=0)
    dated = InvoiceLine.objects.filter(invoice=OuterRef("pk"), period_start__isnull=False, period_end__isnull=False)
    first_day = dated.order_by("period_start").values("period_start")[:1]
    last_day = dated.order_by("-period_end").values("period_end")[:1]
    rows = (
        Invoice.objects.filter(subscription_id__in=ids, reason=InvoiceReason.SUBSCRIPTION_CYCLE)
        .exclude(status=InvoiceStatus.VOID)
        .annotate(had_usage=Exists(had_usage), first_day=Subquery(first_day), last_day=Subquery(last_day))
        .order_by("subscription_id", "-billing_date", "-created_at")
        .distinct("subscription_id")
        .values_list("subscription_id", "total", "had_usage", "pk", "first_day", "last_day")
    )
    return {sub_id: PreviousInvoice(total, had, pk, (end - start).days if start and end else 0)
            for sub_id, total, had, pk, start, end in rows}
