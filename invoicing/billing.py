"""The billing run: close every period that ends on or before `as_of`, bill in-advance fees of
periods that start on or before it, and create one invoice per subscription per billing date.

Set-based (DESIGN.md §6): subscriptions are scanned as plain values, the due ones processed in
chunks; each chunk locks its subscription rows (SELECT … FOR UPDATE, pk order), aggregates the
usage of every window in the chunk with one grouped query (`usage.selectors.usage_aggregate`),
rates in memory, and inserts invoices and lines with bulk_create, advancing the billing cursors in
the same transaction. Idempotent and concurrency-safe:

- the cursors are re-read under the row lock, so a second run (or a second process) waiting on the
  lock finds them advanced and does nothing;
- the partial unique constraint on (subscription, billing_date) for cycle invoices backs it in the
  database;
- each chunk commits alone, so a crashed run leaves whole invoices or none and the next run
  resumes from the cursors.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from catalog.models import Charge, PlanVersion
from catalog.rating import format_price, format_quantity, minimum_commitment_true_up, needs_event_values, rate_charge
from common.audit import actor_label, audit_bulk_create
from common.models import AuditEvent
from common.money import quantize_money
from common.timeutil import local_date, local_date_bounds_utc
from invoicing import review, usage_source
from invoicing.models import (
    BillingRun,
    Invoice,
    InvoiceLine,
    InvoiceReason,
    InvoiceStatus,
    LineKind,
)
from invoicing.schedule import BillingDate, Span, billing_schedule, billing_start, closures_until, full_days
from invoicing.services import invoices_auto_finalize
from invoicing.totals import TotalsPreview, line_discountable
from subscriptions.models import ChangeKind, ProrationItem, ProrationKind, Subscription, SubscriptionChange
from subscriptions.periods import full_period_days, period_containing, prorate

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
ZERO = Decimal(0)
RULE_CYCLE = "billing_run.period_close"
RULE_CHANGE = "subscription_change.invoice_now"
RULE_ZERO_USAGE = "zero_usage_after_usage"
USAGE_KINDS = (LineKind.USAGE, LineKind.LATE_USAGE)


# --- public API ------------------------------------------------------------------------------------

@dataclass
class RunResult:
    subscriptions_examined: int = 0
    subscriptions_due: int = 0
    invoices_created: int = 0
    lines_created: int = 0
    invoices_flagged: int = 0
    invoice_ids: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def billing_run(**kwargs) -> BillingRun:
    """The synchronous billing run; the sweep (runs, chunks, heartbeat, takeover, fan-out) lives in
    `invoicing.billing_run`, this module builds the lines of one chunk."""
    from invoicing.billing_run import billing_run as run_billing

    return run_billing(**kwargs)


def subscriptions_due(*, as_of: date, now: datetime | None = None, subscription_ids=None) -> tuple[int, list[int]]:
    """(examined, ids due) — a read-only scan over plain values; no locks, no per-row queries.
    Late usage waiting to be billed makes a subscription due as well."""
    qs = Subscription.objects.filter(start_date__lte=as_of).filter(
        Q(end_date__isnull=True)
        | Q(usage_billed_through__isnull=True)
        | Q(usage_billed_through__lt=F("end_date"))
        | Q(plan_version__pay_in_advance=True, advance_billed_through__isnull=True)
        | Q(plan_version__pay_in_advance=True, advance_billed_through__lt=F("end_date"))
    )
    if subscription_ids is not None:
        qs = qs.filter(pk__in=list(subscription_ids))
    rows = qs.values_list(
        "pk", "start_date", "trial_end_date", "end_date", "usage_billed_through", "advance_billed_through",
        "billing_time", "plan_version__plan__interval", "plan_version__pay_in_advance", "customer__timezone",
    ).order_by("pk")
    examined, due = 0, []
    for pk, start, trial_end, end, usage_bt, advance_bt, billing_time, interval, in_advance, tz in rows.iterator(chunk_size=5000):
        examined += 1
        schedule = billing_schedule(
            start_date=start, trial_end_date=trial_end, end_date=end, usage_billed_through=usage_bt,
            advance_billed_through=advance_bt, interval=interval, billing_time=billing_time,
            pay_in_advance=in_advance, as_of=_effective_as_of(as_of, now, tz))
        if schedule.bills:
            due.append(pk)
    late = set(usage_source.subscriptions_with_unbilled_late_usage(subscription_ids=subscription_ids))
    if late:
        due = sorted(set(due) | late)
    return examined, due


def invoice_subscription_now(*, subscription: Subscription, on_date: date, reason: str = "", actor=None,
                             auto_finalize: bool = True) -> Invoice | None:
    """Invoice right away what an immediate plan/seat change or cancellation on `on_date` closes:
    the usage up to `on_date` (split by plan segments, so the closed part is rated on the old plan),
    an in-arrears base fee for those days, the pending proration items and late usage, on one
    invoice; `usage_billed_through` moves to `on_date`. Returns None when there is nothing to bill."""
    with transaction.atomic():
        sub = _lock_subscriptions([subscription.pk])[0]
        interval = sub.plan_version.plan.interval
        spans = closures_until(start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                               usage_billed_through=sub.usage_billed_through, interval=interval,
                               billing_time=sub.billing_time, on=on_date)
        bill = BillingDate(on_date, closures=spans)
        advance_through = None
        if sub.plan_version.pay_in_advance and sub.end_date is not None and sub.end_date <= on_date:
            # Ended before a billing run billed the period's in-advance fee: nothing is credited
            # (subscriptions) and the final invoice charges the days used (DESIGN.md §5).
            schedule = billing_schedule(
                start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                usage_billed_through=sub.usage_billed_through, advance_billed_through=sub.advance_billed_through,
                interval=interval, billing_time=sub.billing_time, pay_in_advance=True, as_of=on_date)
            advances = [b.advance for b in schedule.bills if b.advance is not None]
            if len(advances) == 1:  # several periods unbilled: the billing run bills them, one per period
                advance = advances[0]
                if ProrationItem.objects.filter(subscription=sub, period_end=advance.period.end).exists():
                    # A change inside the period settled it with proration items (credits of the
                    # unused time included): the fee covers the whole period, as that contract says.
                    advance = Span(advance.period, advance.start, advance.period.end)
                bill.advance = advance
                advance_through = advance.end
        builder = _ChunkBuilder(subs=[sub], as_of=on_date, reason=InvoiceReason.SUBSCRIPTION_CHANGE, run=None,
                                rule=RULE_CHANGE, actor=actor_label(actor), extra_inputs={"reason": reason})
        plans = {sub.pk: _Plan(sub=sub, bills=[bill], usage_billed_through=spans[-1].end if spans else None,
                               advance_billed_through=advance_through)}
        invoices = builder.build(plans)
        if not invoices:
            return None
        builder.insert()
        invoice = invoices[0]
    if auto_finalize:
        invoices_auto_finalize(today=on_date, invoice_ids=[invoice.pk])
        invoice.refresh_from_db()
    return invoice


# --- internals -----------------------------------------------------------------------------------

def _effective_as_of(as_of: date, now: datetime | None, tz: str) -> date:
    """With `now`, a period closes only once its end (local midnight) has passed in `tz`."""
    return as_of if now is None else min(as_of, local_date(now, tz))


def _lock_subscriptions(ids) -> list[Subscription]:
    """Lock in pk order WITHOUT joins, then read the rows with their relations. A FOR UPDATE joined to
    plan_version silently drops a row whose plan changed concurrently (PostgreSQL rechecks the join
    against the old joined row), which would skip a subscription."""
    locked = list(Subscription.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk").values_list("pk", flat=True))
    return list(Subscription.objects.select_related("customer", "plan_version__plan").filter(pk__in=locked).order_by("pk"))


@dataclass
class _Plan:
    sub: Subscription
    bills: list[BillingDate]
    usage_billed_through: date | None
    advance_billed_through: date | None
    reason: str | None = None


def _finished(sub: Subscription) -> bool:
    return sub.end_date is not None and (sub.usage_billed_through or sub.start_date) >= sub.end_date


def _bill_chunk(ids: list[int], *, as_of: date, now, run: BillingRun, result: RunResult) -> None:
    with transaction.atomic():
        subs = _lock_subscriptions(ids)
        _apply_pending_changes(subs, as_of=as_of, now=now)
        plans: dict[int, _Plan] = {}
        for sub in subs:
            schedule = billing_schedule(
                start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                usage_billed_through=sub.usage_billed_through, advance_billed_through=sub.advance_billed_through,
                interval=sub.plan_version.plan.interval, billing_time=sub.billing_time,
                pay_in_advance=sub.plan_version.pay_in_advance,
                as_of=_effective_as_of(as_of, now, sub.customer.timezone))
            plans[sub.pk] = _Plan(sub=sub, bills=schedule.bills, usage_billed_through=schedule.usage_billed_through,
                                  advance_billed_through=schedule.advance_billed_through)
        # Late usage goes on the next invoice; a subscription that has ended gets none, so its late
        # usage is invoiced on its own.
        idle_finished = [p.sub.pk for p in plans.values() if not p.bills and _finished(p.sub)]
        if idle_finished:
            for pk in usage_source.subscriptions_with_unbilled_late_usage(subscription_ids=idle_finished):
                sub = plans[pk].sub
                plans[pk].bills = [BillingDate(_effective_as_of(as_of, now, sub.customer.timezone))]
                plans[pk].reason = InvoiceReason.LATE_USAGE
        builder = _ChunkBuilder(subs=subs, as_of=as_of, reason=InvoiceReason.SUBSCRIPTION_CYCLE, run=run,
                                rule=RULE_CYCLE, actor=run.triggered_by, extra_inputs={"billing_run": run.pk})
        invoices = builder.build(plans, errors=result.errors)
        builder.insert()
    result.invoices_created += len(invoices)
    result.lines_created += builder.lines_created
    result.invoices_flagged += builder.flagged
    result.invoice_ids.extend(i.pk for i in invoices)


def _apply_pending_changes(subs: list[Subscription], *, as_of: date, now) -> None:
    """A period-end downgrade (or other scheduled change) takes effect when its period closes."""
    pending = set(
        SubscriptionChange.objects.filter(subscription__in=subs, applied_at__isnull=True, superseded_at__isnull=True,
                                          effective_date__lte=as_of)
        .values_list("subscription_id", flat=True)
    )
    if not pending:
        return
    from subscriptions.services import subscription_apply_pending_changes

    for sub in subs:
        if sub.pk in pending:
            on = _effective_as_of(as_of, now, sub.customer.timezone)
            subscription_apply_pending_changes(subscription=sub, on=on)
            sub.refresh_from_db()


class _ChunkBuilder:
    """Builds the invoices of a chunk of locked subscriptions in memory, then inserts them in bulk."""

    def __init__(self, *, subs, as_of, reason, run, rule, actor, extra_inputs):
        self.subs = subs
        self.as_of = as_of
        self.reason = reason
        self.run = run
        self.rule = rule
        self.actor = actor
        self.extra_inputs = extra_inputs
        self.invoices: list[Invoice] = []
        self.lines: list[InvoiceLine] = []
        self.audits: list[AuditEvent] = []
        self.proration_items: list[tuple[ProrationItem, InvoiceLine]] = []
        self.late_marks: list[tuple[list[int], Invoice]] = []
        self.cursor_updates: list[Subscription] = []
        self.lines_created = 0
        self.flagged = 0

    # -- building ------------------------------------------------------------------------------

    def build(self, plans: dict[int, _Plan], *, errors: list | None = None) -> list[Invoice]:
        ids = list(plans)
        changes = _changes_by_subscription(ids)
        charges = _charges_by_version()
        # Segments: which plan version/seats applied when, per closure and advance.
        work: list[tuple[_Plan, BillingDate, list, tuple | None]] = []
        for plan in plans.values():
            sub = plan.sub
            slow = _needs_segments(sub, changes.get(sub.pk, ()))
            for bill in plan.bills:
                closure_segments = []
                for span in bill.closures:
                    segs = (_segments(sub, span.start, span.end) if slow
                            else [(span.start, span.end, sub.plan_version, sub.quantity)])
                    closure_segments.append((span, segs))
                advance_segment = None
                if bill.advance is not None:
                    segs = (_segments(sub, bill.advance.start, bill.advance.end) if slow
                            else [(bill.advance.start, bill.advance.end, sub.plan_version, sub.quantity)])
                    advance_segment = segs[0] if segs else None
                work.append((plan, bill, closure_segments, advance_segment))

        # Usage windows: one per (closure, run of one plan version); rated on that version.
        windows: dict[tuple, tuple] = {}
        for plan, bill, closure_segments, _ in work:
            for span, segs in closure_segments:
                for start, end, version in _merge_by_version(segs):
                    windows[(plan.sub.pk, start, end)] = (plan.sub, start, end, version)
        versions = {w[3].pk for w in windows.values()}
        charges.load(versions)
        metric_ids = {c.billable_metric_id for v in versions for c in charges.get(v)}
        usage = usage_source.aggregate_windows(
            [(key, sub.pk, *local_date_bounds_utc(start, end, sub.customer.timezone))
             for key, (sub, start, end, _) in windows.items()],
            metric_ids=metric_ids or None,
        ) if windows and metric_ids else {}

        prorations = _pending_prorations(ids)
        late = self._late_usage(plans, changes, charges, errors)
        previous = _previous_invoices(ids)

        failed: set[int] = set()
        for plan, bill, closure_segments, advance_segment in work:
            sub = plan.sub
            if sub.pk in failed:
                continue
            try:
                self._invoice_for(sub, bill, closure_segments, advance_segment, charges, usage, prorations, late,
                                  previous, reason=plan.reason or self.reason)
            except Exception as exc:  # noqa: BLE001 — one bad subscription does not stop the run
                if errors is None:
                    raise
                logger.exception("billing subscription %s on %s failed", sub.pk, bill.date)
                errors.append({"subscription": sub.external_id, "billing_date": bill.date.isoformat(), "error": repr(exc)})
                plan.usage_billed_through = plan.advance_billed_through = None
                self._drop(sub)
                failed.add(sub.pk)
        self._review()
        for plan in plans.values():
            sub = plan.sub
            if sub.pk in failed:
                continue
            changed = False
            if plan.usage_billed_through and plan.usage_billed_through != sub.usage_billed_through:
                sub.usage_billed_through = plan.usage_billed_through
                changed = True
            if plan.advance_billed_through and plan.advance_billed_through != sub.advance_billed_through:
                sub.advance_billed_through = plan.advance_billed_through
                changed = True
            if changed:
                sub.updated_at = timezone.now()
                self.cursor_updates.append(sub)
        return self.invoices

    def _review(self) -> None:
        """Hand the chunk's drafts to the registered review checks (invoicing/review.py)."""
        if not self.invoices:
            return
        by_invoice: dict = defaultdict(list)
        for line in self.lines:
            by_invoice[line.invoice.pk].append(line)
        subs = {s.pk: s for s in self.subs}
        drafts = [review.DraftForReview(invoice=inv, subscription=subs.get(inv.subscription_id), lines=by_invoice[inv.pk],
                                        usage_total=sum((ln.amount for ln in by_invoice[inv.pk] if ln.kind in USAGE_KINDS),
                                                        ZERO))
                  for inv in self.invoices]
        found = review.run_checks(drafts)
        for invoice in self.invoices:
            extra = found.get(invoice.pk)
            if not extra:
                continue
            if not invoice.needs_review:
                self.flagged += 1
            invoice.needs_review = True
            invoice.review_reasons = [*invoice.review_reasons, *extra]
            for reason in extra:
                self.audits.append(_audit("invoice.flagged", invoice, actor=self.actor, rule=reason["rule"], inputs=reason))

    def _drop(self, sub):
        dropped = {inv.pk for inv in self.invoices if inv.subscription_id == sub.pk}
        self.invoices = [i for i in self.invoices if i.pk not in dropped]
        self.lines = [ln for ln in self.lines if ln.invoice_id not in dropped]
        self.audits = [a for a in self.audits if a.object_id not in {str(d) for d in dropped}]
        self.proration_items = [(p, ln) for p, ln in self.proration_items if ln.invoice_id not in dropped]
        self.late_marks = [(e, inv) for e, inv in self.late_marks if inv.pk not in dropped]

    def _invoice_for(self, sub, bill: BillingDate, closure_segments, advance_segment, charges, usage, prorations,
                     late, previous, *, reason) -> Invoice | None:
        currency = sub.plan_version.plan.currency
        interval = sub.plan_version.plan.interval
        invoice = Invoice(
            customer_id=sub.customer_id, subscription_id=sub.pk, currency=currency, billing_date=bill.date,
            # Issued when finalized (DESIGN.md §6); a run's as_of is its "now", so a draft shows that
            # day until a later finalization moves it.
            issue_date=max(bill.date, self.as_of),
            due_date=max(bill.date, self.as_of) + timedelta(days=sub.customer.net_terms_days),
            reason=reason, billing_run=self.run, status=InvoiceStatus.DRAFT,
        )
        lines: list[InvoiceLine] = []

        def add(**kwargs) -> InvoiceLine:
            line = InvoiceLine(invoice=invoice, position=len(lines), **kwargs)
            lines.append(line)
            return line

        # 1. In-advance base fee of the period that starts on this date.
        if bill.advance is not None and advance_segment is not None:
            _, _, version, quantity = advance_segment
            if version.amount and version.pay_in_advance:
                self._base_fee_line(add, bill.advance, version, quantity, bill.advance.start, bill.advance.end,
                                    currency, interval, advance=True)

        # 2. The closed period(s): arrears base fee, usage per charge, minimum commitment.
        has_usage_lines = False
        for span, segs in closure_segments:
            base_nominal: dict[int, Decimal] = defaultdict(lambda: ZERO)
            for start, end, version, quantity in segs:
                amount_fee = prorate(amount=version.amount * quantity, days_used=(end - start).days,
                                     days_in_period=full_days(span, interval=interval), currency=currency)
                base_nominal[version.pk] += amount_fee
                if not version.pay_in_advance and version.amount:
                    self._base_fee_line(add, span, version, quantity, start, end, currency, interval, advance=False)
            for start, end, version in _merge_by_version(segs):
                usage_total = ZERO
                for charge in charges.get(version.pk):
                    agg = usage.get((sub.pk, start, end), {}).get(charge.billable_metric_id)
                    quantity = agg.quantity if agg else ZERO
                    count = agg.event_count if agg else 0
                    values = None
                    if needs_event_values(model=charge.model, properties=charge.properties):
                        b0, b1 = local_date_bounds_utc(start, end, sub.customer.timezone)
                        values = usage_source.event_values(subscription_id=sub.pk, metric_id=charge.billable_metric_id,
                                                           start=b0, end=b1)
                    rated = rate_charge(charge=charge, quantity=quantity, currency=currency, event_count=count,
                                        event_values=values)
                    usage_total += rated.amount
                    has_usage_lines = True
                    add(kind=LineKind.USAGE, description=_charge_description(charge, rated), charge=charge,
                        billable_metric_id=charge.billable_metric_id, plan_version=version, quantity=quantity,
                        unit_amount=rated.unit_amount, amount=rated.amount, period_start=start, period_end=end,
                        tiers=[t.as_dict() for t in rated.tiers], metadata={"event_count": count, "model": charge.model})
                if version.minimum_commitment:
                    days = (end - start).days
                    full = full_days(span, interval=interval)
                    minimum = (version.minimum_commitment if days == full else
                               prorate(amount=version.minimum_commitment, days_used=days, days_in_period=full,
                                       currency=currency))
                    subtotal = base_nominal[version.pk] + usage_total
                    true_up = minimum_commitment_true_up(minimum=minimum, subtotal=subtotal, currency=currency)
                    if true_up > 0:
                        add(kind=LineKind.MINIMUM_COMMITMENT, plan_version=version, quantity=Decimal(1),
                            unit_amount=true_up, amount=true_up, period_start=start, period_end=end,
                            description=f"Minimum commitment true-up ({format_price(minimum, currency)} minimum, "
                                        f"{format_price(quantize_money(subtotal, currency), currency)} billed)",
                            metadata={"minimum": str(minimum), "subtotal": str(subtotal)})

        # 3. Pending proration items (plan/seat changes, immediate cancellations).
        for item in [p for p in prorations.get(sub.pk, []) if p.period_start <= bill.date]:
            amount, metadata = quantize_money(item.amount, currency), {"proration_item": item.pk,
                                                                        "proration_kind": item.kind}
            if item.kind == ProrationKind.CREDIT:
                amount, charged = _unused_time_credit(sub, item, currency=currency, interval=interval)
                metadata.update(charged)
            line = add(kind=LineKind.PRORATION, description=item.description, plan_version_id=item.plan_version_id,
                       quantity=Decimal(item.quantity), unit_amount=item.unit_amount,
                       amount=amount, period_start=item.period_start,
                       period_end=item.period_end, metadata=metadata)
            self.proration_items.append((item, line))
            prorations[sub.pk].remove(item)

        # 4. Late usage: events that arrived after their period was invoiced.
        for fields, event_ids in late.pop(sub.pk, []):
            add(kind=LineKind.LATE_USAGE, **fields)
            self.late_marks.append((event_ids, invoice))

        if not lines:
            return None  # nothing billable (a free plan): the cursors still move

        # Draft preview of coupons, tax and credits (finalize recomputes and consumes them under locks).
        if getattr(self, "totals_preview", None) is None:
            self.totals_preview = TotalsPreview({s.customer_id for s in self.subs})
        totals = self.totals_preview.totals(invoice=invoice, customer=sub.customer, subscription=sub,
                                            lines=[(ln.amount, ln.taxable, line_discountable(ln.kind, ln.amount))
                                                   for ln in lines])
        for name, value in totals.as_fields().items():
            setattr(invoice, name, value)
        if bill.closures or bill.advance:
            invoice.period_start, invoice.period_end = bill.period
        else:
            invoice.period_start = min((ln.period_start for ln in lines if ln.period_start), default=None)
            invoice.period_end = max((ln.period_end for ln in lines if ln.period_end), default=None)

        # Built-in review check against the subscription's previous invoice; the total-spike check
        # (invoice_spike) and usage anomalies come from the registered review checks (invoicing/review.py).
        usage_lines = [ln for ln in lines if ln.kind in USAGE_KINDS]
        has_usage = any(ln.quantity > 0 for ln in usage_lines)
        prev = previous.get(sub.pk)
        reasons = []
        if prev is not None:
            prev_total, prev_had_usage, prev_id, prev_days = prev
            if has_usage_lines and not has_usage and prev_had_usage:
                reasons.append({"rule": RULE_ZERO_USAGE, "usage_lines": len(usage_lines),
                                "previous_invoice": str(prev_id)})
        if reason == InvoiceReason.SUBSCRIPTION_CYCLE:
            previous[sub.pk] = (invoice.total, has_usage, invoice.pk, _lines_span_days(lines))
        invoice.needs_review = bool(reasons)
        invoice.review_reasons = reasons

        self.invoices.append(invoice)
        self.lines.extend(lines)
        inputs = {
            **self.extra_inputs, "as_of": self.as_of.isoformat(), "billing_date": bill.date.isoformat(),
            "subscription": sub.external_id, "plan_version": sub.plan_version_id,
            "closed": [[s.start.isoformat(), s.end.isoformat()] for s in bill.closures],
            "advance": [bill.advance.start.isoformat(), bill.advance.end.isoformat()] if bill.advance else None,
            "lines": len(lines), "total": str(invoice.total),
        }
        self.audits.append(_audit("invoice.generated", invoice, actor=self.actor, rule=self.rule, inputs=inputs))
        for reason in reasons:
            self.audits.append(_audit("invoice.flagged", invoice, actor=self.actor, rule=reason["rule"], inputs=reason))
        if reasons:
            self.flagged += 1
        return invoice

    def _late_usage(self, plans: dict[int, "_Plan"], changes, charges: "_Charges", errors) -> dict[int, list]:
        """Late events (arrived after their period was invoiced) → `late_usage` line fields per
        subscription, with the event ids to mark billed (DESIGN.md §3–4).

        Events are grouped by window: (subscription, the plan-version run of the period the event
        falls in, clipped to where billing started and to the end date). Each charge of that window
        is priced incrementally: rate(every event of the window) − rate(the events billed so far:
        on time and earlier late batches), for every aggregation and model, per-event values
        included, so tiers continue where the invoices left off and a second late batch never
        re-bills the first; the line's quantity is the true increment. Late usage counts toward
        the window's (prorated) minimum commitment: the window's late lines add up to
        max(min, base + usage_all) − max(min, base + usage_billed_so_far)."""
        events = usage_source.late_events(subscription_ids=list(plans))
        if not events:
            return {}
        out: dict[int, list] = defaultdict(list)
        windows: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        window_info: dict[tuple, tuple] = {}
        segment_cache: dict[tuple, list] = {}
        for event in events:
            sub = plans[event.subscription_id].sub
            interval = sub.plan_version.plan.interval
            day = local_date(event.timestamp, sub.customer.timezone)
            first = billing_start(start_date=sub.start_date, trial_end_date=sub.trial_end_date)
            if day < first:
                # Trial (or pre-start) usage is never billed, late or not: settle it at zero.
                key = (sub.pk, sub.start_date, first, None)
                windows[key][event.metric_id].append(event)
                continue
            period = period_containing(start_date=sub.start_date, interval=interval, billing_time=sub.billing_time,
                                       on=day)
            # The window starts where billing started and ends where the subscription ended, as the
            # period's own invoices did.
            window_start = max(period.start, first)
            window_end = period.end if sub.end_date is None else max(min(period.end, sub.end_date), window_start)
            cache_key = (sub.pk, period)
            if cache_key not in segment_cache:
                slow = _needs_segments(sub, changes.get(sub.pk, ()), since=window_start)
                segs = (_segments(sub, window_start, window_end) if slow
                        else [(window_start, window_end, sub.plan_version, sub.quantity)])
                segs = segs or [(window_start, window_end, sub.plan_version, sub.quantity)]
                segment_cache[cache_key] = (segs, _merge_by_version(segs))
            segs, merged = segment_cache[cache_key]
            seg = next((m for m in merged if m[0] <= day < m[1]), merged[-1])
            key = (sub.pk, seg[0], seg[1], seg[2].pk)
            windows[key][event.metric_id].append(event)
            window_info[key] = (period, seg[2], [s for s in segs if s[2].pk == seg[2].pk and seg[0] <= s[0] < seg[1]])
        for key, by_metric in windows.items():
            sub_id, start, end, version_id = key
            sub = plans[sub_id].sub
            if version_id is None:
                for metric_id, group in by_metric.items():
                    out[sub_id].append((dict(description="Late usage during the trial, not billed",
                                             billable_metric_id=metric_id, quantity=Decimal(len(group)), amount=ZERO,
                                             period_start=start, period_end=end,
                                             metadata={"events": len(group), "trial": True}),
                                        [e.event_id for e in group]))
                continue
            try:
                lines = self._late_window(sub, start, end, version_id, window_info[key], by_metric, charges)
            except Exception as exc:  # noqa: BLE001 — the events stay unbilled; the next invoice retries them
                logger.exception("late usage of subscription %s, window %s–%s failed", sub.pk, start, end)
                if errors is not None:
                    errors.append({"subscription": sub.external_id, "late_usage_window": [start.isoformat(),
                                                                                          end.isoformat()],
                                   "error": repr(exc)})
                continue
            out[sub_id].extend(lines)
        return out

    def _late_window(self, sub, start: date, end: date, version_id, info, by_metric: dict[int, list],
                     charges: "_Charges") -> list:
        """The late lines of one window (see _late_usage)."""
        period, version, segs = info
        currency = sub.plan_version.plan.currency
        interval = version.plan.interval
        window_charges = charges.get(version_id)
        lines: list[tuple[dict, list]] = []
        for metric_id, group in by_metric.items():
            if not any(c.billable_metric_id == metric_id for c in window_charges):
                # The plan in force did not charge this metric: nothing to bill, but the events are
                # settled on this invoice so they are not examined forever.
                lines.append((dict(description="Late usage not charged on the plan in force",
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
        everything = usage_source.aggregate_windows(window, metric_ids=metric_ids, late=None)["w"]
        billed = usage_source.aggregate_windows(window, metric_ids=metric_ids, late=usage_source.BILLED)["w"]
        usage_all = usage_before = ZERO
        late_lines: list[tuple[dict, list]] = []
        for charge in rated_set:
            metric_id = charge.billable_metric_id
            agg_all = everything.get(metric_id) or usage_source.ZERO
            agg_before = billed.get(metric_id) or usage_source.ZERO
            values_all = values_before = None
            if needs_event_values(model=charge.model, properties=charge.properties):
                values_all = usage_source.event_values(subscription_id=sub.pk, metric_id=metric_id, start=b0, end=b1,
                                                       late=None)
                values_before = usage_source.event_values(subscription_id=sub.pk, metric_id=metric_id, start=b0,
                                                          end=b1, late=usage_source.BILLED)
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
            late_lines.append((dict(
                description=f"Late usage — {name}, {start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"[:500],
                billable_metric_id=metric_id, charge=charge, plan_version_id=version_id,
                quantity=q_all - q_before, unit_amount=rated_all.unit_amount,
                amount=rated_all.amount - rated_before.amount, period_start=start, period_end=end,
                tiers=_tier_difference(rated_all.tiers, rated_before.tiers),
                metadata={"events": len(group), "quantity_before": str(q_before), "quantity_after": str(q_all),
                          "amount_before": str(rated_before.amount), "amount_after": str(rated_all.amount)},
            ), [e.event_id for e in group]))
            # Events of this metric billed by another charge of the window are marked once only.
            by_metric = {**by_metric, metric_id: []}
        if minimum_total and late_lines:
            span = Span(period, start, end)
            full = full_days(span, interval=interval)
            days = (end - start).days
            minimum = (minimum_total if days == full else
                       prorate(amount=minimum_total, days_used=days, days_in_period=full, currency=currency))
            base = sum((prorate(amount=version.amount * quantity, days_used=(s_end - s_start).days,
                                days_in_period=full, currency=currency) for s_start, s_end, _, quantity in segs), ZERO)
            true_up_before = minimum_commitment_true_up(minimum=minimum, subtotal=base + usage_before, currency=currency)
            true_up_all = minimum_commitment_true_up(minimum=minimum, subtotal=base + usage_all, currency=currency)
            _absorb_minimum(late_lines, true_up_all - true_up_before, minimum=minimum, currency=currency)
        return lines + late_lines

    def _base_fee_line(self, add, span: Span, version: PlanVersion, quantity: int, start: date, end: date,
                       currency: str, interval: str, *, advance: bool) -> None:
        full = full_days(span, interval=interval)
        days = (end - start).days
        amount = prorate(amount=version.amount * quantity, days_used=days, days_in_period=full, currency=currency)
        name = version.plan.name
        text = f"{name}" + (f" × {quantity} seats" if quantity != 1 else "")
        if days != full:
            text += f" (prorated {days}/{full} days)"
        add(kind=LineKind.SUBSCRIPTION, description=text, plan_version=version, quantity=Decimal(quantity),
            unit_amount=version.amount, amount=amount, period_start=start, period_end=end,
            metadata={"in_advance": advance, "days": days, "full_period_days": full})

    # -- inserting -----------------------------------------------------------------------------

    def insert(self) -> None:
        if self.invoices:
            bulk_create_with_history(self.invoices, Invoice, batch_size=1000)
        if self.lines:
            for line in self.lines:
                line.invoice_id = line.invoice.pk
            InvoiceLine.objects.bulk_create(self.lines, batch_size=2000)  # immutable rows: no history table
            self.lines_created = len(self.lines)
        if self.cursor_updates:
            _advance_cursors(self.cursor_updates)
        if self.proration_items:
            now = timezone.now()
            items = []
            for item, line in self.proration_items:
                item.invoiced_at = now
                item.invoice_line_id = line.pk
                item.updated_at = now
                items.append(item)
            bulk_update_with_history(items, ProrationItem, ["invoiced_at", "invoice_line_id", "updated_at"])
        if self.late_marks:
            usage_source.mark_late_billed(self.late_marks)
        if self.audits:
            audit_bulk_create(self.audits)


# --- helpers -------------------------------------------------------------------------------------

_CURSOR_SQL = """
UPDATE subscriptions_subscription AS s
SET usage_billed_through = c.usage_through, advance_billed_through = c.advance_through, updated_at = now()
FROM unnest(%s::bigint[], %s::date[], %s::date[]) AS c(id, usage_through, advance_through)
WHERE s.id = c.id
"""


def _advance_cursors(subs: list[Subscription]) -> None:
    """Move the billing cursors of the (locked) subscriptions in one statement. No history row per
    cursor move: the invoice rows (with history) and their `invoice.generated` audit events record
    which ranges were billed, and a subscription history row per billing run would double the
    writes of a 10,000-subscription run."""
    with connection.cursor() as cursor:
        cursor.execute(_CURSOR_SQL, [[s.pk for s in subs], [s.usage_billed_through for s in subs],
                                     [s.advance_billed_through for s in subs]])

def _audit(action, invoice, *, actor, rule, inputs) -> AuditEvent:
    return AuditEvent(action=action, object_type=Invoice._meta.label_lower, object_id=str(invoice.pk), actor=actor,
                      rule=rule, inputs=inputs)


def _charge_description(charge: Charge, rated) -> str:
    name = charge.invoice_display_name or charge.billable_metric.name
    return f"{name}: {rated.description}"[:500]


class _Charges:
    """Charges by plan version, loaded once per run per version (with their metric)."""

    def __init__(self):
        self._by_version: dict[int, list[Charge]] = {}

    def load(self, version_ids) -> None:
        missing = [v for v in version_ids if v not in self._by_version]
        if not missing:
            return
        for v in missing:
            self._by_version[v] = []
        for charge in Charge.objects.filter(plan_version_id__in=missing).select_related("billable_metric").order_by(
                "plan_version_id", "position", "pk"):
            self._by_version[charge.plan_version_id].append(charge)

    def get(self, version_id) -> list[Charge]:
        if version_id not in self._by_version:
            self.load([version_id])
        return self._by_version[version_id]


def _charges_by_version() -> _Charges:
    return _Charges()


def _changes_by_subscription(ids) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for sub_id, effective, applied in SubscriptionChange.objects.filter(
        subscription_id__in=ids, kind__in=[ChangeKind.PLAN, ChangeKind.QUANTITY], superseded_at__isnull=True,
    ).values_list("subscription_id", "effective_date", "applied_at"):
        out[sub_id].append((effective, applied))
    return out


def _needs_segments(sub: Subscription, changes, since: date | None = None) -> bool:
    """Fast path: no plan/seat change after the oldest unbilled day and none pending, so the
    current plan version and seats applied throughout."""
    if not changes:
        return False
    oldest = since or min(d for d in (sub.usage_billed_through, sub.advance_billed_through, sub.start_date) if d)
    return any(applied is None or effective > oldest for effective, applied in changes)


def _segments(sub: Subscription, start: date, end: date) -> list[tuple]:
    from subscriptions.selectors import plan_segments

    return plan_segments(subscription=sub, start=start, end=end)


def _merge_by_version(segments) -> list[tuple[date, date, PlanVersion]]:
    """Usage is rated per plan version: a seat change alone does not restart the tiers."""
    merged: list[list] = []
    for start, end, version, _ in segments:
        if merged and merged[-1][2].pk == version.pk and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end, version])
    return [tuple(m) for m in merged]


def _unused_time_credit(sub: Subscription, item: ProrationItem, *, currency: str, interval: str) -> tuple[Decimal, dict]:
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


def _absorb_minimum(late_lines: list, adjustment: Decimal, *, minimum: Decimal, currency: str) -> None:
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
        for fields, _ in late_lines:
            take = min(remaining, max(fields["amount"], ZERO))
            shares.append(-take)
            remaining -= take
        if remaining:
            shares[0] -= remaining
    for (fields, _), share in zip(late_lines, shares):
        if not share:
            continue
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


def _pending_prorations(ids) -> dict[int, list[ProrationItem]]:
    out: dict[int, list[ProrationItem]] = defaultdict(list)
    for item in ProrationItem.objects.filter(subscription_id__in=ids, invoiced_at__isnull=True).order_by(
            "subscription_id", "period_start", "pk"):
        out[item.subscription_id].append(item)
    return out


def _lines_span_days(lines) -> int:
    """Days from the earliest line's service start to the latest line's service end."""
    dated = [ln for ln in lines if ln.period_start and ln.period_end]
    if not dated:
        return 0
    return (max(ln.period_end for ln in dated) - min(ln.period_start for ln in dated)).days


def _previous_invoices(ids) -> dict[int, tuple[Decimal, bool, object, int]]:
    """The latest non-void cycle invoice of each subscription: (total, had usage, id, days its lines
    span). One query.
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
    return {sub_id: (total, had, pk, (end - start).days if start and end else 0)
            for sub_id, total, had, pk, start, end in rows}
