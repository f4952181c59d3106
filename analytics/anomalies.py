"""Usage anomaly detection (DESIGN.md §12): offline, explainable, reproducible from stored usage.

Method `robust_weekday_mad_v1`, per subscription and billable metric (count, sum and unique_count
metrics: a gauge — max, latest — has no daily usage to score), per customer-local day D:
- the daily quantity follows the metric's aggregation (usage.selectors.usage_daily); days without
  events inside the subscription's life count as 0;
- history: the days from the series' start (the later of the subscription's start and its first
  day with usage) to D − 1; under `MIN_HISTORY_DAYS` (14) days nothing is flagged;
- baseline window: the last 28 days before D (fewer if the history is shorter);
- expected = median of the window's days that fall on D's weekday (at least 2 of them; otherwise the
  median of the whole window);
- spread = 1.4826 × the median absolute deviation of every window day from its own weekday's
  median (the robust σ), floored at 10 % of the window's overall median and at 1 unit, so a flat
  or weekend-idle series does not turn noise into a huge score, and — unless the day is zero — at
  √expected (counting noise: a day at level λ varies by about √λ, which a 28-day MAD underestimates
  on small volumes);
- score = (observed − expected) / spread (signed).
Kinds (threshold T = settings.ANOMALY_SCORE_THRESHOLD, default 5):
- `zero_usage`: observed 0, expected > 0 and score ≤ −T;
- `drop`: observed > 0, observed ≤ 0.5 × expected and score ≤ −T;
- `spike`: observed ≥ 1.5 × expected and score ≥ T.
A sparse series (usage on fewer than half of its window days) is not scored: bursts are its normal
and its median and MAD are 0, so any burst would score high.
- `invoice_spike` (at billing runs, `anomaly_review_check`): a draft cycle invoice whose total is over
  `ANOMALY_INVOICE_FACTOR` (3) × the median of the subscription's last three cycle invoices (each
  scaled to the draft's span when it covered fewer days, so a prorated first period is no yardstick).

Dismissals are remembered: a dismissed anomaly accepts its pattern, so the same subscription and
metric is not flagged again for the same kind at a level the dismissal covered (a spike at most 25 %
above the dismissed observed value; a drop at most 20 % below it; zero usage on the same weekday; an
invoice spike at most 25 % above the dismissed total).

`detect_anomalies(as_of=D)` scores day D and every day since the last scan (at most 35 days back),
writes each new anomaly once (unique per subscription, metric, day and kind; inserted with ON
CONFLICT DO NOTHING) with an `anomaly.detected` audit event, so reruns change nothing. Full scans
are serialized by an advisory lock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.models import Anomaly, AnomalyKind, AnomalyScan, AnomalyStatus
from common.audit import actor_label, audit_bulk_create, audit_record
from common.errors import ConflictError
from common.models import AuditEvent

METHOD = "robust_weekday_mad_v1"
INVOICE_METHOD = "invoice_total_vs_median_of_last_3_v1"
MIN_HISTORY_DAYS = 14
WINDOW_DAYS = 28
MAX_LOOKBACK_DAYS = 35
MAD_SCALE = 1.4826
SPREAD_FLOOR_FRACTION = 0.10
SPIKE_RATIO = 1.5
DROP_RATIO = 0.5
RECENT_INVOICES = 3
DENSE_FRACTION = 0.5
# Metrics whose day without events is a day of zero usage. A gauge (max, latest) keeps its level on
# days without events, so a daily series of it says nothing about usage: those are not scored.
SCORED_AGGREGATIONS = ("count", "sum", "unique_count")
_LOCK_KEY = 0x17A0_0A11  # pg_advisory_xact_lock key of the scan


def score_threshold() -> float:
    return float(getattr(settings, "ANOMALY_SCORE_THRESHOLD", 5))


def review_kinds() -> tuple[str, ...]:
    """Anomaly kinds that hold a draft: those that raise the bill. Drops and zero-usage days are listed
    for follow-up but never delay an invoice (a period with no usage at all is held by invoicing's own
    zero_usage_after_usage rule)."""
    return tuple(getattr(settings, "ANOMALY_REVIEW_KINDS", (AnomalyKind.SPIKE,)))


def invoice_factor() -> Decimal:
    return Decimal(str(getattr(settings, "ANOMALY_INVOICE_FACTOR", 3)))


# --- the pure engine ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    subscription_id: int
    metric_id: int
    day: date
    kind: str
    observed: float
    expected: float
    score: float
    inputs: dict = field(default_factory=dict)


def score_series(*, values: np.ndarray, first_day: date, days: list[date], threshold: float | None = None
                 ) -> list[tuple[date, str, float, float, float, dict]]:
    """Score `days` of one dense daily series (values[i] is the quantity of first_day + i; the series
    starts at its first day of history). Returns (day, kind, observed, expected, score, inputs) for
    the flagged days only."""
    return [found[1:] for found in score_matrix(values=np.asarray(values, dtype=float)[None, :], first_day=first_day,
                                                days=days, threshold=threshold)]


def score_matrix(*, values: np.ndarray, first_day: date, days: list[date], threshold: float | None = None
                 ) -> list[tuple[int, date, str, float, float, float, dict]]:
    """`score_series` for many series of the same span at once: values[r, i] is series r's quantity
    on first_day + i. Returns (r, day, kind, observed, expected, score, inputs) for flagged days, in
    day order. A billing run scores every subscription's period (10,000 subscriptions × 31 days),
    so each day's window statistics are computed for all series together, column by column with
    numpy (the same float64 medians as day by day, series by series)."""
    threshold = score_threshold() if threshold is None else threshold
    n = values.shape[1]
    weekdays = (np.arange(n) + first_day.weekday()) % 7
    out = []
    for day in days:
        i = (day - first_day).days
        if i < MIN_HISTORY_DAYS or i >= n:
            continue
        lo = max(0, i - WINDOW_DAYS)
        window, wd = values[:, lo:i], weekdays[lo:i]
        dense = np.count_nonzero(window, axis=1) >= DENSE_FRACTION * (i - lo)
        if not dense.any():
            continue  # sparse: bursts are its normal, a day's level says nothing
        rows = np.flatnonzero(dense)
        window = window[rows]
        same = window[:, wd == weekdays[i]]
        overall = np.median(window, axis=1)
        expected = np.median(same, axis=1) if same.shape[1] >= 2 else overall
        residuals = np.empty_like(window)
        for w in np.unique(wd):
            columns = wd == w
            residuals[:, columns] = window[:, columns] - np.median(window[:, columns], axis=1)[:, None]
        mad = np.median(np.abs(residuals), axis=1)
        spread = np.maximum(np.maximum(MAD_SCALE * mad, SPREAD_FLOOR_FRACTION * overall), 1.0)
        observed = values[rows, i]
        # counting noise: a level-λ day varies by about √λ (not for a day of nothing)
        spread = np.where(observed > 0, np.maximum(spread, np.sqrt(np.maximum(expected, 0.0))), spread)
        score = (observed - expected) / spread
        zero = (observed == 0) & (expected > 0) & (score <= -threshold)
        drop = ~zero & (observed > 0) & (observed <= DROP_RATIO * expected) & (score <= -threshold)
        spike = ~zero & ~drop & (observed >= SPIKE_RATIO * expected) & (score >= threshold)
        for k in np.flatnonzero(zero | drop | spike):
            kind = AnomalyKind.ZERO_USAGE if zero[k] else AnomalyKind.DROP if drop[k] else AnomalyKind.SPIKE
            inputs = {"window": [(first_day + timedelta(days=lo)).isoformat(), (day - timedelta(days=1)).isoformat()],
                      "window_days": int(i - lo), "same_weekday_values": [_num(v) for v in same[k]],
                      "window_median": _num(overall[k]), "mad": _num(mad[k]), "spread": _num(spread[k]),
                      "threshold": threshold, "history_days": int(i)}
            out.append((int(rows[k]), day, str(kind), float(observed[k]), float(expected[k]), float(score[k]), inputs))
    return out


def detect_in_frame(*, rows, bounds: dict[int, tuple[date, date | None]], days: list[date],
                    threshold: float | None = None) -> list[Finding]:
    """rows: (subscription_id, metric_id, day, quantity) for days with usage; bounds: each
    subscription's [start_date, end_date). Scores `days` for every (subscription, metric) present;
    series of the same span are scored together (score_matrix)."""
    if not days:
        return []
    last = max(days)
    series: dict[tuple[int, int], dict[date, float]] = defaultdict(dict)
    for sub_id, metric_id, day, quantity in rows:
        series[(sub_id, metric_id)][day] = float(quantity)
    prepared = []  # (key, first day, values)
    spans: dict[tuple[date, date], list[int]] = defaultdict(list)
    for (sub_id, metric_id), by_day in series.items():
        start, end = bounds.get(sub_id, (None, None))
        used = [d for d, v in by_day.items() if v != 0]
        if not used:
            continue
        first = max(min(used), start) if start else min(used)
        stop = min(last + timedelta(days=1), end) if end else last + timedelta(days=1)
        n = (stop - first).days
        if n <= MIN_HISTORY_DAYS:
            continue
        values = np.zeros(n)
        for d, v in by_day.items():
            if first <= d < stop:
                values[(d - first).days] = v
        spans[(first, stop)].append(len(prepared))
        prepared.append(((sub_id, metric_id), first, values))
    found: dict[int, list[Finding]] = defaultdict(list)
    for (first, stop), members in spans.items():
        matrix = np.vstack([prepared[m][2] for m in members])
        for r, day, kind, observed, expected, score, inputs in score_matrix(
                values=matrix, first_day=first, days=[d for d in days if first <= d < stop], threshold=threshold):
            sub_id, metric_id = prepared[members[r]][0]
            found[members[r]].append(Finding(sub_id, metric_id, day, kind, observed, expected, score, inputs))
    return [f for m in range(len(prepared)) for f in found.get(m, ())]


def _num(value) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else round(value, 6)


# --- memory of dismissals ----------------------------------------------------------------------

def _suppressed(finding_kind: str, observed: float, day: date, dismissed: list[Anomaly]) -> Anomaly | None:
    for d in dismissed:
        if d.kind != finding_kind:
            continue
        seen = float(d.observed)
        if finding_kind in (AnomalyKind.SPIKE, AnomalyKind.INVOICE_SPIKE) and observed <= seen * 1.25:
            return d
        if finding_kind == AnomalyKind.DROP and observed >= seen * 0.8:
            return d
        if finding_kind == AnomalyKind.ZERO_USAGE and d.date.weekday() == day.weekday():
            return d
    return None


def _dismissed_by_key(subscription_ids) -> dict[tuple, list[Anomaly]]:
    out: dict[tuple, list[Anomaly]] = defaultdict(list)
    for a in Anomaly.objects.filter(subscription_id__in=list(subscription_ids), status=AnomalyStatus.DISMISSED):
        out[(a.subscription_id, a.billable_metric_id)].append(a)
    return out


# --- the scan --------------------------------------------------------------------------------

@dataclass
class ScanResult:
    days: list[date]
    created: list[Anomaly]
    suppressed: int = 0


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def anomalies_detect(*, as_of: date, days: list[date] | None = None, subscription_ids=None, actor=None,
                     record_scan: bool = True) -> ScanResult:
    """Score `days` (default: as_of and every day since the last scan, at most 35 days back) and
    store new anomalies with their `anomaly.detected` audit events. Safe to rerun and to run twice
    at once (an advisory lock serializes scans; each anomaly is unique)."""
    from catalog.models import BillableMetric
    from subscriptions.models import Subscription
    from usage.selectors import usage_daily

    with transaction.atomic():
        if subscription_ids is None:
            # A full scan; the billing run's per-chunk scoring takes no lock (it holds its subscription
            # rows, and waiting here while holding them could deadlock with another run's chunk).
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        if days is None:
            earliest = as_of - timedelta(days=MAX_LOOKBACK_DAYS - 1)
            last = AnomalyScan.objects.filter(as_of__lt=as_of).order_by("-as_of").values_list("as_of", flat=True).first()
            first = max(earliest, last + timedelta(days=1)) if last else earliest
            days = [first + timedelta(days=k) for k in range((as_of - first).days + 1)]
        if not days:
            return ScanResult(days=[], created=[])
        lo = min(days) - timedelta(days=WINDOW_DAYS)
        rows = usage_daily(start=lo, end=max(days) + timedelta(days=1), subscription_ids=subscription_ids)
        additive = set(BillableMetric.objects.filter(pk__in={r[1] for r in rows}, aggregation__in=SCORED_AGGREGATIONS)
                       .values_list("pk", flat=True))
        rows = [r for r in rows if r[1] in additive]
        sub_ids = {r[0] for r in rows}
        subs = {s.pk: s for s in Subscription.objects.filter(pk__in=sub_ids).only("pk", "customer_id", "start_date",
                                                                                  "end_date")}
        bounds = {pk: (s.start_date, s.end_date) for pk, s in subs.items()}
        findings = detect_in_frame(rows=rows, bounds=bounds, days=days)
        result = _store(findings, subs=subs, actor=actor)
        result.days = days
        if record_scan and subscription_ids is None:
            AnomalyScan.objects.create(as_of=as_of, days_scored=len(days), anomalies_found=len(result.created))
        return result


def _store(findings: list[Finding], *, subs, actor) -> ScanResult:
    result = ScanResult(days=[], created=[])
    if not findings:
        return result
    existing = set(Anomaly.objects.filter(subscription_id__in={f.subscription_id for f in findings},
                                          date__gte=min(f.day for f in findings), billable_metric__isnull=False)
                   .values_list("subscription_id", "billable_metric_id", "date", "kind"))
    dismissed = _dismissed_by_key({f.subscription_id for f in findings})
    now = timezone.now()
    new = []
    for f in findings:
        if (f.subscription_id, f.metric_id, f.day, f.kind) in existing:
            continue
        accepted = _suppressed(f.kind, f.observed, f.day, dismissed.get((f.subscription_id, f.metric_id), []))
        if accepted is not None:
            result.suppressed += 1
            continue
        new.append(Anomaly(customer_id=subs[f.subscription_id].customer_id, subscription_id=f.subscription_id,
                           billable_metric_id=f.metric_id, date=f.day, kind=f.kind, observed=_dec(f.observed),
                           expected=_dec(f.expected), score=Decimal(repr(round(f.score, 4))), method=METHOD,
                           inputs=f.inputs, detected_at=now))
    result.created = _insert(new, actor=actor)
    return result


def _insert(anomalies: list[Anomaly], *, actor) -> list[Anomaly]:
    if not anomalies:
        return []
    # ON CONFLICT DO NOTHING: a scan and a billing run may score the same day at once; the rows this
    # call wrote are the ones carrying its detected_at.
    stamp = anomalies[0].detected_at
    Anomaly.objects.bulk_create(anomalies, ignore_conflicts=True)
    mine = {(a.subscription_id, a.billable_metric_id, a.invoice_id, a.date, a.kind): a.pk
            for a in Anomaly.objects.filter(detected_at=stamp, subscription_id__in={a.subscription_id for a in anomalies})}
    anomalies = [a for a in anomalies if (a.subscription_id, a.billable_metric_id, a.invoice_id, a.date, a.kind) in mine]
    for a in anomalies:
        a.pk = a.id = mine[(a.subscription_id, a.billable_metric_id, a.invoice_id, a.date, a.kind)]
    if not anomalies:
        return []
    label = actor_label(actor) if actor is not None else "system"
    audit_bulk_create([
        AuditEvent(action="anomaly.detected", object_type=Anomaly._meta.label_lower, object_id=str(a.pk), actor=label,
                   rule=a.method, inputs={"kind": a.kind, "subscription": a.subscription_id, "date": a.date.isoformat(),
                                          "billable_metric": a.billable_metric_id, "observed": str(a.observed),
                                          "expected": str(a.expected), "score": str(a.score)})
        for a in anomalies])
    return anomalies


# --- dismiss / confirm -----------------------------------------------------------------------

def _resolve(*, anomaly: Anomaly, status: str, actor, note: str) -> Anomaly:
    with transaction.atomic():
        locked = Anomaly.objects.select_for_update().get(pk=anomaly.pk)
        if locked.status != AnomalyStatus.OPEN:
            raise ConflictError(f"Anomaly {locked.pk} is {locked.status}; only an open anomaly can be {status}.",
                                code="anomaly_not_open")
        locked.status = status
        locked.resolved_by = actor_label(actor) if actor is not None else "system"
        locked.resolved_at = timezone.now()
        locked.note = note or ""
        locked.save(update_fields=["status", "resolved_by", "resolved_at", "note"])
        audit_record(action=f"anomaly.{status}", obj=locked, actor=locked.resolved_by, rule="finance_review",
                     inputs={"kind": locked.kind, "date": locked.date.isoformat(), "note": locked.note})
        return locked


def anomaly_dismiss(*, anomaly: Anomaly, actor=None, note: str = "") -> Anomaly:
    """Finance says it is normal: the pattern is remembered and not flagged again (see module doc)."""
    return _resolve(anomaly=anomaly, status=AnomalyStatus.DISMISSED, actor=actor, note=note)


def anomaly_confirm(*, anomaly: Anomaly, actor=None, note: str = "") -> Anomaly:
    return _resolve(anomaly=anomaly, status=AnomalyStatus.CONFIRMED, actor=actor, note=note)


# --- the billing run's review check (registered in AnalyticsConfig.ready) -----------------------

def anomaly_review_check(drafts) -> dict:
    """Score the drafts' closed usage periods (so detection also runs at every billing run), raise
    `invoice_spike` on cycle drafts far above their recent invoices, and hold every draft whose
    period has an open anomaly: {invoice_pk: [reason, ...]}."""
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
        for a in open_rows:
            if a.subscription_id == d.subscription.pk and inv.period_start <= a.date < inv.period_end:
                out[inv.pk].append(_reason(a))
        if inv.pk in spikes:
            out[inv.pk].append(_reason(spikes[inv.pk]))
    return dict(out)


def _reason(a: Anomaly) -> dict:
    if a.kind == AnomalyKind.INVOICE_SPIKE:  # money evidence, as the review queue shows it
        extra = {"total": str(a.observed), "recent_invoices_median": str(a.expected)}
    else:
        extra = {}
    return {**_reason_base(a), **extra}


def _reason_base(a: Anomaly) -> dict:
    return {"rule": f"anomaly.{a.kind}", "anomaly": a.pk, "kind": a.kind,
            "billable_metric": a.billable_metric.code if a.billable_metric_id else None, "date": a.date.isoformat(),
            "observed": f"{a.observed.normalize():f}", "expected": f"{a.expected.normalize():f}", "score": str(a.score),
            "method": a.method}


def _invoice_spikes(drafts) -> dict:
    from django.db.models import OuterRef, Subquery

    from invoicing.models import Invoice, InvoiceLine, InvoiceReason, InvoiceStatus

    cycle = [d for d in drafts if d.invoice.reason == InvoiceReason.SUBSCRIPTION_CYCLE and d.invoice.total > 0]
    if not cycle:
        return {}
    history: dict[int, list[tuple]] = defaultdict(list)
    # Spans are the days an invoice's lines cover (as invoicing measures them: an in-advance fee reaches
    # into the next period, so a first full invoice covers the closed short period and a whole one).
    dated = InvoiceLine.objects.filter(invoice=OuterRef("pk"), period_start__isnull=False, period_end__isnull=False)
    rows = (Invoice.objects.filter(subscription_id__in={d.subscription.pk for d in cycle},
                                   reason=InvoiceReason.SUBSCRIPTION_CYCLE)
            .exclude(status=InvoiceStatus.VOID).exclude(pk__in=[d.invoice.pk for d in cycle])
            .annotate(first_day=Subquery(dated.order_by("period_start").values("period_start")[:1]),
                      last_day=Subquery(dated.order_by("-period_end").values("period_end")[:1]))
            .values_list("subscription_id", "billing_date", "pk", "total", "first_day", "last_day"))
    for sub_id, billing_date, pk, total, start, end in rows:
        history[sub_id].append((billing_date, str(pk), total, (end - start).days if start and end else 0))
    dismissed = _dismissed_by_key({d.subscription.pk for d in cycle})
    factor = invoice_factor()
    now = timezone.now()
    new = []
    for d in sorted(cycle, key=lambda d: (d.subscription.pk, d.invoice.billing_date)):
        inv = d.invoice
        dated = [ln for ln in d.lines if ln.period_start and ln.period_end]
        days = (max(ln.period_end for ln in dated) - min(ln.period_start for ln in dated)).days if dated else 0
        recent = sorted(h for h in history[d.subscription.pk] if h[0] < inv.billing_date)[-RECENT_INVOICES:]
        history[d.subscription.pk].append((inv.billing_date, str(inv.pk), inv.total, days))
        if not recent:
            continue
        scaled = [total * (Decimal(days) / Decimal(span) if span and days > span else 1) for _, _, total, span in recent]
        baseline = Decimal(str(np.median([float(s) for s in scaled]))) if len(scaled) != 1 else scaled[0]
        if baseline <= 0 or inv.total <= factor * baseline:
            continue
        if _suppressed(AnomalyKind.INVOICE_SPIKE, float(inv.total), inv.billing_date,
                       dismissed.get((d.subscription.pk, None), [])):
            continue
        new.append(Anomaly(customer_id=inv.customer_id, subscription_id=d.subscription.pk, invoice_id=inv.pk,
                           date=inv.billing_date, kind=AnomalyKind.INVOICE_SPIKE, observed=inv.total,
                           expected=baseline.quantize(Decimal("0.0001")),
                           score=(inv.total / baseline).quantize(Decimal("0.0001")), method=INVOICE_METHOD,
                           detected_at=now,
                           inputs={"total": str(inv.total), "factor": str(factor),
                                   "recent_invoices": [{"invoice": pk, "total": str(t), "days": s, "scaled": str(x)}
                                                       for (_, pk, t, s), x in zip(recent, scaled)],
                                   "days": days}))
    return {a.invoice_id: a for a in _insert(new, actor=None)}
