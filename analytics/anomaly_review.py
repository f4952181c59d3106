"""The billing run's review check for usage anomalies (registered in AnalyticsConfig.ready, DESIGN.md
§12): a draft whose subscription has an open spike in its period waits in the review queue with the
anomaly as its reason, and an `invoice_spike` is raised when usage (at the previous invoice's prices,
like for like) lifts the total past `ANOMALY_INVOICE_FACTOR` × the recent invoices' median. The daily
scoring engine and the scan are in analytics/anomalies.py."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import DecimalField, Exists, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from analytics.anomalies import (INVOICE_METHOD, MAX_LOOKBACK_DAYS, RECENT_INVOICES, anomalies_detect, anomalies_insert,
                                 dismissal_matching, dismissals_by_key, invoice_factor, review_kinds)
from analytics.models import Anomaly, AnomalyKind, AnomalyStatus
from catalog.models import Charge
from catalog.rating import needs_event_values, rate_charge
from invoicing.models import Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind


def anomaly_review_check(drafts) -> dict:
    """Score the drafts' closed usage periods (so detection also runs at every billing run), raise
    `invoice_spike` on cycle drafts far above their recent invoices, and hold every draft whose
    period has an open anomaly (of `review_kinds()`), unless the draft is billed at its minimum
    commitment (the spike changed nothing billed): {invoice_pk: [reason, ...]}."""
    drafts = [d for d in drafts if d.subscription is not None and d.invoice.period_start and d.invoice.period_end]
    if not drafts:
        return {}
    by_end: dict[date, list] = defaultdict(list)
    for d in drafts:
        by_end[d.invoice.period_end].append(d)
    for end, group in by_end.items():
        last = end - timedelta(days=1)
        first = max(min(d.invoice.period_start for d in group), last - timedelta(days=MAX_LOOKBACK_DAYS - 1))
        anomalies_detect(as_of=last, days=[first + timedelta(days=k) for k in range((last - first).days + 1)],
                         subscription_ids=[d.subscription.pk for d in group], record_scan=False)
    spikes = _invoice_spikes(drafts)
    sub_ids = {d.subscription.pk for d in drafts}
    lo = min(d.invoice.period_start for d in drafts)
    open_rows = list(Anomaly.objects.filter(subscription_id__in=sub_ids, status=AnomalyStatus.OPEN, date__gte=lo,
                                            billable_metric__isnull=False, kind__in=review_kinds())
                     .select_related("billable_metric"))
    out: dict = defaultdict(list)
    for d in drafts:
        inv = d.invoice
        if not _billed_at_minimum(d):
            for a in open_rows:
                if a.subscription_id == d.subscription.pk and inv.period_start <= a.date < inv.period_end:
                    out[inv.pk].append(_reason(a))
        if inv.pk in spikes:
            out[inv.pk].append(_reason(spikes[inv.pk]))
    return dict(out)


def _billed_at_minimum(draft) -> bool:
    """The draft tops its usage up to the minimum commitment: fees and usage, spike included, stayed
    under it, so the spike changes nothing billed. The anomaly stays open in the list; the draft
    does not wait for it."""
    return any(ln.kind == LineKind.MINIMUM_COMMITMENT and ln.amount > 0 for ln in draft.lines)


def _reason(a: Anomaly) -> dict:
    if a.kind == AnomalyKind.INVOICE_SPIKE:  # money evidence, as the review queue shows it
        inputs = a.inputs or {}
        extra = {"total": inputs.get("total", str(a.observed)),
                 "recent_invoices_median": inputs.get("recent_invoices_median", str(a.expected)),
                 "usage": str(a.observed), "recent_usage_median": str(a.expected)}
    else:
        extra = {}
    return {**_reason_base(a), **extra}


def _reason_base(a: Anomaly) -> dict:
    return {"rule": f"anomaly.{a.kind}", "anomaly": a.pk, "kind": a.kind,
            "billable_metric": a.billable_metric.code if a.billable_metric_id else None, "date": a.date.isoformat(),
            "observed": f"{a.observed.normalize():f}", "expected": f"{a.expected.normalize():f}", "score": str(a.score),
            "method": a.method}


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _usage_at_previous_prices(lines, previous_charges: dict, currency: str) -> Decimal:
    """The draft's usage amount with each usage line rated on the charge the previous invoice used for
    that metric (a plan change moves prices, which the plan change explains; only volume is compared).
    A line whose metric the previous invoice did not charge, or whose charge needs each event's value,
    keeps its own amount; late usage keeps its amount."""
    total = Decimal(0)
    for ln in lines:
        if ln.kind == LineKind.LATE_USAGE:
            total += ln.amount
        elif ln.kind == LineKind.USAGE:
            prev = previous_charges.get(ln.billable_metric_id)
            if (prev is None or prev.pk == ln.charge_id
                    or needs_event_values(model=prev.model, properties=prev.properties)):
                total += ln.amount
            else:
                count = int((ln.metadata or {}).get("event_count", 0))
                total += rate_charge(charge=prev, quantity=ln.quantity, currency=currency, event_count=count).amount
    return total


@dataclass(frozen=True)
class _CycleInvoice:
    """One cycle invoice that billed a usage period, as an `invoice_spike` yardstick."""

    billing_date: date
    pk: str
    total: Decimal
    usage: Decimal
    days: int  # the days its dated lines span


@dataclass(frozen=True)
class _SpikeCandidate:
    draft: object  # review.DraftForReview
    days: int
    recent: list[_CycleInvoice]


def _cycle_history(subscription_ids, exclude_pks) -> dict[int, list[_CycleInvoice]]:
    """The subscriptions' non-void cycle invoices that billed a usage period. Only those are a yardstick
    (a first in-advance invoice bills none: against it, the first usage ever billed would always look
    like a spike). Spans are the days an invoice's lines cover (as invoicing measures them: an
    in-advance fee reaches into the next period, so a first full invoice covers the closed short
    period and a whole one). One query."""
    dated = InvoiceLine.objects.filter(invoice=OuterRef("pk"), period_start__isnull=False, period_end__isnull=False)
    usage_lines = InvoiceLine.objects.filter(invoice=OuterRef("pk"), kind__in=(LineKind.USAGE, LineKind.LATE_USAGE))
    usage_sum = usage_lines.order_by().values("invoice").annotate(s=Sum("amount")).values("s")
    rows = (Invoice.objects.filter(subscription_id__in=subscription_ids, reason=InvoiceReason.SUBSCRIPTION_CYCLE)
            .exclude(status=InvoiceStatus.VOID).exclude(pk__in=exclude_pks)
            .annotate(first_day=Subquery(dated.order_by("period_start").values("period_start")[:1]),
                      last_day=Subquery(dated.order_by("-period_end").values("period_end")[:1]),
                      usage=Coalesce(Subquery(usage_sum), Value(Decimal(0)), output_field=DecimalField()))
            .filter(Exists(usage_lines))
            .values("subscription_id", "billing_date", "pk", "total", "usage", "first_day", "last_day"))
    history: dict[int, list[_CycleInvoice]] = defaultdict(list)
    for r in rows:
        days = (r["last_day"] - r["first_day"]).days if r["first_day"] and r["last_day"] else 0
        history[r["subscription_id"]].append(_CycleInvoice(r["billing_date"], str(r["pk"]), r["total"], r["usage"], days))
    return history


def _previous_charges(candidates: list[_SpikeCandidate], drafts) -> dict[str, dict]:
    """invoice pk → {metric id: the Charge its usage line used}, for each candidate's latest recent
    invoice (a draft of the same chunk, in a catch-up run, from its in-memory lines). Two queries."""
    charge_ids: dict[str, dict] = defaultdict(dict)
    for d in drafts:
        charge_ids[str(d.invoice.pk)] = {ln.billable_metric_id: ln.charge_id for ln in d.lines
                                         if ln.kind == LineKind.USAGE and ln.charge_id}
    stored = {c.recent[-1].pk for c in candidates} - set(charge_ids)
    for invoice_id, metric_id, charge_id in (InvoiceLine.objects.filter(invoice_id__in=stored, kind=LineKind.USAGE,
                                                                        charge__isnull=False)
                                             .values_list("invoice_id", "billable_metric_id", "charge_id")):
        charge_ids[str(invoice_id)][metric_id] = charge_id
    charges = Charge.objects.in_bulk({c for by_metric in charge_ids.values() for c in by_metric.values()})
    return {pk: {m: charges[c] for m, c in by_metric.items() if c in charges} for pk, by_metric in charge_ids.items()}


def _invoice_spikes(drafts) -> dict:
    """`invoice_spike`, like for like: only a rise in usage volume can make one. A draft is flagged when
    the recent invoices' median total, moved by the change of usage alone (the draft's usage at the
    previous invoice's prices minus the recent invoices' median usage), is over `ANOMALY_INVOICE_FACTOR`
    × that median total. The recent invoices are the last three that billed a usage period (none: no
    yardstick, no invoice spike; the daily scores still apply). A plan upgrade, added seats, an ended
    coupon, a minimum-commitment true-up or a tax change raises the total for a reason the
    explanation names: they are not anomalies. For a usage-only plan the rule is "usage over 3 × the
    recent median". Recent invoices shorter than the draft (a prorated first period) are scaled to
    the draft's span, total and usage alike."""
    cycle = [d for d in drafts if d.invoice.reason == InvoiceReason.SUBSCRIPTION_CYCLE and d.invoice.total > 0]
    if not cycle:
        return {}
    history = _cycle_history({d.subscription.pk for d in cycle}, [d.invoice.pk for d in cycle])
    candidates = []
    for d in sorted(cycle, key=lambda d: (d.subscription.pk, d.invoice.billing_date)):
        inv = d.invoice
        dated = [ln for ln in d.lines if ln.period_start and ln.period_end]
        days = (max(ln.period_end for ln in dated) - min(ln.period_start for ln in dated)).days if dated else 0
        recent = sorted((h for h in history[d.subscription.pk] if h.billing_date < inv.billing_date),
                        key=lambda h: (h.billing_date, h.pk))[-RECENT_INVOICES:]
        if any(ln.kind in (LineKind.USAGE, LineKind.LATE_USAGE) for ln in d.lines):  # a catch-up run's next draft
            history[d.subscription.pk].append(_CycleInvoice(inv.billing_date, str(inv.pk), inv.total, d.usage_total, days))
        if recent:
            candidates.append(_SpikeCandidate(d, days, recent))
    if not candidates:
        return {}
    previous_charges = _previous_charges(candidates, cycle)
    dismissed = dismissals_by_key({d.subscription.pk for d in cycle})
    now = timezone.now()
    new = [a for c in candidates
           if (a := _invoice_spike(c, previous_charges.get(c.recent[-1].pk, {}), now=now)) is not None
           and not dismissal_matching(AnomalyKind.INVOICE_SPIKE, float(a.observed), a.date,
                               dismissed.get((a.subscription_id, None), []))]
    return {a.invoice_id: a for a in anomalies_insert(new, actor=None)}


def _invoice_spike(c: _SpikeCandidate, previous_charges: dict, *, now) -> Anomaly | None:
    """The unsaved `invoice_spike` of one draft, or None when its like-for-like total is within the factor."""
    inv, factor, q = c.draft.invoice, invoice_factor(), Decimal("0.0001")
    scale = [Decimal(c.days) / Decimal(h.days) if h.days and c.days > h.days else Decimal(1) for h in c.recent]
    totals = [h.total * k for h, k in zip(c.recent, scale)]
    usages = [h.usage * k for h, k in zip(c.recent, scale)]
    baseline, usage_baseline = _median(totals), _median(usages)
    usage_now = _usage_at_previous_prices(c.draft.lines, previous_charges, inv.currency)
    like_for_like = baseline + usage_now - usage_baseline
    if baseline <= 0 or like_for_like <= factor * baseline:
        return None
    return Anomaly(customer_id=inv.customer_id, subscription_id=c.draft.subscription.pk, invoice_id=inv.pk,
                   date=inv.billing_date, kind=AnomalyKind.INVOICE_SPIKE, observed=usage_now,
                   expected=usage_baseline.quantize(q), score=(like_for_like / baseline).quantize(q),
                   method=INVOICE_METHOD, detected_at=now,
                   inputs={"total": str(inv.total), "usage": str(c.draft.usage_total),
                           "usage_at_previous_prices": str(usage_now), "factor": str(factor),
                           "recent_invoices_median": str(baseline.quantize(q)),
                           "recent_usage_median": str(usage_baseline.quantize(q)),
                           "like_for_like_total": str(like_for_like.quantize(q)),
                           "recent_invoices": [{"invoice": h.pk, "total": str(h.total), "usage": str(h.usage),
                                                "days": h.days, "scaled_total": str(t), "scaled_usage": str(u)}
                                               for h, t, u in zip(c.recent, totals, usages)],
                           "days": c.days})
