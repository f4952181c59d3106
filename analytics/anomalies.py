"""Usage anomaly detection (DESIGN.md §12): offline, explainable, reproducible from stored usage.

Method `robust_weekday_mad_v2`, per subscription and billable metric (count, sum and unique_count
metrics: a gauge — max, latest — has no daily usage to score), per customer-local day D:
- the daily quantity follows the metric's aggregation (usage.selectors.usage_daily); days without
  events inside the subscription's life count as 0;
- history: the days from the series' start (the later of the subscription's start and its first
  day with usage) to D − 1; under `MIN_HISTORY_DAYS` (14) days nothing is flagged;
- baseline window: the last 28 days before D (fewer if the history is shorter);
- two models of the window, the better one used (`inputs.model`): `weekday` — each day against the
  median of the other window days on its weekday (leave one out, so the residuals are the same kind
  of difference as D against its expected value) — and `flat` — each day against the window's
  median. `weekday` is used when its mean absolute residual is not larger than `flat`'s (a weekly
  pattern), else `flat` (noisy usage without one: four same-weekday days are a noisy yardstick);
- expected = the median of the window's days on D's weekday (`weekday`) or of the whole window;
- spread = 1.4826 × the median absolute residual of the chosen model (the robust σ), floored at
  10 % of max(expected, a quarter of the window's median) and at 1 unit, so a flat or weekend-idle
  series does not turn noise into a huge score, and — unless the day is zero — at √expected
  (counting noise: a day at level λ varies by about √λ, which a 28-day MAD underestimates on small
  volumes);
- score = (observed − expected) / spread (signed).
(v1 took the residuals from weekday medians that included the day itself, which shrank the spread
about twofold on noisy usage: 0.25 false alarms per customer-month on usage varying ±40 % a day.)
Kinds (threshold T = settings.ANOMALY_SCORE_THRESHOLD, default 4.5; bench/anomalies.py measures it):
- `zero_usage`: observed 0, expected > 0 and score ≤ −T;
- `drop`: observed > 0, observed ≤ 0.5 × expected and score ≤ −T;
- `spike`: observed ≥ 1.5 × expected and score ≥ T.
One flag per episode: a day continuing yesterday's anomaly in the same direction (up: spike; down:
drop, zero usage) is not flagged again, so an outage or a level shift is one anomaly, not one a day.
A sparse series (usage on fewer than half of its window days) is not scored: bursts are its normal
and its median and MAD are 0, so any burst would score high.
- `invoice_spike` (at billing runs, `analytics.anomaly_review.anomaly_review_check`), like for like: a draft cycle invoice is
  compared with the median of the subscription's last three cycle invoices (each scaled to the
  draft's span when it covered fewer days, so a prorated first period is no yardstick) after
  replacing only its usage: recent median total + (the draft's usage at the previous invoice's
  prices − the recent median usage) over `ANOMALY_INVOICE_FACTOR` (3) × the recent median total.
  What the explanation attributes to a plan change, seats, a coupon that ended, a minimum
  true-up or taxes never makes an invoice spike; a rise in usage volume does. `observed` and
  `expected` are the usage amounts (now at the previous prices, and the recent median); the inputs
  keep the totals.

Dismissals are remembered: a dismissed anomaly accepts its pattern, so the same subscription and
metric is not flagged again for the same kind at a level the dismissal covered (a spike at most 25 %
above the dismissed observed value; a drop at most 20 % below it; zero usage on the same weekday; an
invoice spike at most 25 % above the dismissed total).

`detect_anomalies(as_of=D)` scores day D and every day since the last scan (at most 35 days back),
writes each new anomaly once (unique per subscription, metric, day and kind; inserted with ON
CONFLICT DO NOTHING) with an `anomaly.detected` audit event, so reruns change nothing. Full scans
are serialized by an advisory lock and hold their subscriptions FOR KEY SHARE before writing, so a
scan and a billing run scoring the same days write each anomaly once and never deadlock
(tests/intel/test_concurrency.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.models import Anomaly, AnomalyKind, AnomalyScan, AnomalyStatus
from catalog.models import BillableMetric
from common.audit import actor_label, audit_bulk_create, audit_record
from common.errors import ConflictError
from common.models import AuditEvent
from subscriptions.models import Subscription
from usage.selectors import usage_daily

METHOD = "robust_weekday_mad_v2"
INVOICE_METHOD = "invoice_usage_change_vs_median_of_last_3_v2"
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
    return float(getattr(settings, "ANOMALY_SCORE_THRESHOLD", 4.5))


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
    the flagged days only. One flag per episode: a day whose previous day was already past the
    threshold in the same direction (up: spike; down: drop or zero usage) continues that anomaly
    and is not flagged again (an outage or a level shift is one anomaly, not one a day until the
    28-day baseline catches up)."""
    return [found[1:] for found in score_matrix(values=np.asarray(values, dtype=float)[None, :], first_day=first_day,
                                                days=days, threshold=threshold)]


def score_matrix(*, values: np.ndarray, first_day: date, days: list[date], threshold: float | None = None
                 ) -> list[tuple[int, date, str, float, float, float, dict]]:
    """`score_series` for many series of the same span at once: values[r, i] is series r's quantity
    on first_day + i. Returns (r, day, kind, observed, expected, score, inputs) for flagged days, in
    day order. A billing run scores every subscription's period (10,000 subscriptions × 31 days), so
    each day's statistics are computed for all series together with numpy: the same float64
    arithmetic as scoring one series at a time (tests/intel/test_anomaly_engine.py compares them)."""
    threshold = score_threshold() if threshold is None else threshold
    n = values.shape[1]
    weekdays = (np.arange(n) + first_day.weekday()) % 7
    columns: dict[int, _Column | None] = {}

    def column(i: int) -> _Column | None:
        if i not in columns:
            columns[i] = _score_column(values, weekdays, i, threshold)
        return columns[i]

    out = []
    for i in sorted({(day - first_day).days for day in days}):
        today = column(i)
        if today is None or not today.flagged.any():
            continue
        before = column(i - 1)
        previous = np.zeros(values.shape[0], dtype=int)  # yesterday's direction per series (0: not flagged)
        if before is not None:
            previous[before.rows] = before.direction
        day = first_day + timedelta(days=i)
        lo = max(0, i - WINDOW_DAYS)
        for k in np.flatnonzero(today.flagged):
            r = int(today.rows[k])
            if previous[r] == today.direction[k]:
                continue  # the same episode as yesterday's
            inputs = {"window": [(first_day + timedelta(days=lo)).isoformat(), (day - timedelta(days=1)).isoformat()],
                      "window_days": int(i - lo), "same_weekday_values": [_num(v) for v in today.same[k]],
                      "window_median": _num(today.overall[k]),
                      "model": "weekday" if today.weekday_model[k] else "flat", "mad": _num(today.mad[k]),
                      "spread": _num(today.spread[k]), "threshold": threshold, "history_days": int(i)}
            out.append((r, day, str(today.kind[k]), float(today.observed[k]), float(today.expected[k]),
                        float(today.score[k]), inputs))
    return out


class _Column(NamedTuple):
    """One day's scores for the dense series (`rows`) of a matrix."""
    rows: np.ndarray
    same: np.ndarray
    overall: np.ndarray
    weekday_model: np.ndarray
    expected: np.ndarray
    mad: np.ndarray
    spread: np.ndarray
    observed: np.ndarray
    score: np.ndarray
    kind: np.ndarray  # AnomalyKind value, "" when not flagged
    direction: np.ndarray  # +1 spike, -1 drop or zero usage, 0 not flagged

    @property
    def flagged(self) -> np.ndarray:
        return self.direction != 0


def _score_column(values: np.ndarray, weekdays: np.ndarray, i: int, threshold: float) -> _Column | None:
    """Day i of every series, or None when no series can be scored that day."""
    if i < MIN_HISTORY_DAYS or i >= values.shape[1]:
        return None
    lo = max(0, i - WINDOW_DAYS)
    window, wd = values[:, lo:i], weekdays[lo:i]
    rows = np.flatnonzero(np.count_nonzero(window, axis=1) >= DENSE_FRACTION * (i - lo))
    if not rows.size:
        return None  # sparse: bursts are its normal, a day's level says nothing
    window = window[rows]
    same = window[:, wd == weekdays[i]]
    overall = np.median(window, axis=1)
    flat = np.abs(window - overall[:, None])
    weekly = np.abs(_loo_residuals(window, wd))
    # The weekday model only when it explains the window better than one level for every day
    # (mean absolute residuals, the weekday ones left-one-out so its extra medians earn their keep):
    # on a series without a weekly pattern, four same-weekday days are a noisy yardstick.
    if same.shape[1] >= 2:
        weekday_model = weekly.mean(axis=1) <= flat.mean(axis=1)
        expected = np.where(weekday_model, np.median(same, axis=1), overall)
    else:
        weekday_model, expected = np.zeros(len(rows), dtype=bool), overall
    mad = np.where(weekday_model, np.median(weekly, axis=1), np.median(flat, axis=1))
    spread = np.maximum(np.maximum(MAD_SCALE * mad, SPREAD_FLOOR_FRACTION * np.maximum(expected, overall / 4)), 1.0)
    observed = values[rows, i]
    # counting noise: a level-λ day varies by about √λ (not for a day of nothing)
    spread = np.where(observed > 0, np.maximum(spread, np.sqrt(np.maximum(expected, 0.0))), spread)
    score = (observed - expected) / spread
    zero = (observed == 0) & (expected > 0) & (score <= -threshold)
    drop = ~zero & (observed > 0) & (observed <= DROP_RATIO * expected) & (score <= -threshold)
    spike = ~zero & ~drop & (observed >= SPIKE_RATIO * expected) & (score >= threshold)
    kind = np.where(zero, str(AnomalyKind.ZERO_USAGE), np.where(drop, str(AnomalyKind.DROP),
                                                                np.where(spike, str(AnomalyKind.SPIKE), "")))
    direction = np.where(spike, 1, np.where(zero | drop, -1, 0))
    return _Column(rows, same, overall, weekday_model, expected, mad, spread, observed, score, kind, direction)


def _loo_residuals(window: np.ndarray, wd: np.ndarray) -> np.ndarray:
    """Each window day minus the median of the OTHER window days on its weekday (leave one out), per
    series (row): the same kind of difference as the scored day minus its expected value. Residuals
    from a weekday median that includes the day itself shrink toward 0 (with 4 days a weekday, two of
    them sit next to the median), which made the spread too small and noise look like spikes.
    Columns: weekdays in order, each weekday's days sorted."""
    parts = []
    for w in np.unique(wd):
        ordered = np.sort(window[:, wd == w], axis=1)
        n = ordered.shape[1]
        if n < 2:
            continue
        m, left_out = n - 1, np.arange(n)

        def rest(j: int) -> np.ndarray:  # element j of the sorted days without day k, for every k
            return ordered[:, np.where(j < left_out, j, j + 1)]

        median = rest(m // 2) if m % 2 else (rest(m // 2 - 1) + rest(m // 2)) / 2
        parts.append(ordered - median)
    return np.hstack(parts) if parts else np.zeros((window.shape[0], 1))


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

def dismissal_matching(finding_kind: str, observed: float, day: date, dismissed: list[Anomaly]) -> Anomaly | None:
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


def dismissals_by_key(subscription_ids) -> dict[tuple, list[Anomaly]]:
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
        lo = min(days) - timedelta(days=WINDOW_DAYS + 1)  # + 1: the day before the first, for its episode
        rows = usage_daily(start=lo, end=max(days) + timedelta(days=1), subscription_ids=subscription_ids)
        additive = set(BillableMetric.objects.filter(pk__in={r[1] for r in rows}, aggregation__in=SCORED_AGGREGATIONS)
                       .values_list("pk", flat=True))
        rows = [r for r in rows if r[1] in additive]
        sub_ids = {r[0] for r in rows}
        subs = {s.pk: s for s in Subscription.objects.filter(pk__in=sub_ids).only("pk", "customer_id", "start_date",
                                                                                  "end_date")}
        bounds = {pk: (s.start_date, s.end_date) for pk, s in subs.items()}
        findings = detect_in_frame(rows=rows, bounds=bounds, days=days)
        if subscription_ids is None and findings:
            _hold_subscriptions({f.subscription_id for f in findings})
        result = _store(findings, subs=subs, actor=actor)
        result.days = days
        if record_scan and subscription_ids is None:
            AnomalyScan.objects.create(as_of=as_of, days_scored=len(days), anomalies_found=len(result.created))
        return result


def _hold_subscriptions(subscription_ids) -> None:
    """A full scan takes FOR KEY SHARE on its subscriptions (pk order, one statement) before writing.
    The anomaly rows' foreign keys take that lock anyway, row by row, in the middle of the INSERT; a
    billing-run chunk holds its subscriptions FOR UPDATE and writes the same anomalies from its review
    check, so without this the two could each wait for the other (scan: the FK lock on a held
    subscription; chunk: the unique index entry of the scan's uncommitted anomaly). Taken first, the
    scan waits for the chunk to commit (and then skips what it wrote), or the chunk waits for the scan."""
    table = connection.ops.quote_name(Subscription._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE", [sorted(subscription_ids)])


def _store(findings: list[Finding], *, subs, actor) -> ScanResult:
    result = ScanResult(days=[], created=[])
    if not findings:
        return result
    existing = set(Anomaly.objects.filter(subscription_id__in={f.subscription_id for f in findings},
                                          date__gte=min(f.day for f in findings), billable_metric__isnull=False)
                   .values_list("subscription_id", "billable_metric_id", "date", "kind"))
    dismissed = dismissals_by_key({f.subscription_id for f in findings})
    now = timezone.now()
    new = []
    for f in findings:
        if (f.subscription_id, f.metric_id, f.day, f.kind) in existing:
            continue
        accepted = dismissal_matching(f.kind, f.observed, f.day, dismissed.get((f.subscription_id, f.metric_id), []))
        if accepted is not None:
            result.suppressed += 1
            continue
        new.append(Anomaly(customer_id=subs[f.subscription_id].customer_id, subscription_id=f.subscription_id,
                           billable_metric_id=f.metric_id, date=f.day, kind=f.kind, observed=_dec(f.observed),
                           expected=_dec(f.expected), score=Decimal(repr(round(f.score, 4))), method=METHOD,
                           inputs=f.inputs, detected_at=now))
    new.sort(key=lambda a: (a.subscription_id, a.billable_metric_id, a.date, a.kind))  # one lock order for all writers
    result.created = anomalies_insert(new, actor=actor)
    return result


def anomalies_insert(anomalies: list[Anomaly], *, actor) -> list[Anomaly]:
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
