"""Reads behind the back-office pages. Money stays Decimal; sums are per currency (never mixed).
Figures that analytics owns (AR aging, MRR bridge, usage revenue) are read from `analytics.selectors`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.urls import reverse

from analytics.selectors import AGING_BUCKETS as ANALYTICS_AGING_BUCKETS
from analytics.selectors import ar_aging as analytics_ar_aging
from analytics.selectors import mrr_bridge, usage_revenue
from common.models import AuditEvent
from common.money import format_money_display
from common.timeutil import local_midnight_utc
from customers.models import Customer
from customers.selectors import customer_credit_balance, prepaid_credit_available
from dunning.models import LIVE_CASE_STATUSES, DunningCase
from invoicing.models import BillingRun, CreditNote, Invoice, InvoiceStatus
from payments.models import Payment, PaymentStatus
from subscriptions.models import Subscription
from usage.models import DeadLetterEvent, ReplayStatus, UsageEvent

ZERO = Decimal(0)
ISSUED = (InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE)
AGING_BUCKETS = ("Not yet due", "1–30 days", "31–60 days", "61–90 days", "Over 90 days")
ANALYTICS_AGING_KEYS = ANALYTICS_AGING_BUCKETS  # same order as AGING_BUCKETS
_MONEY = DecimalField(max_digits=20, decimal_places=4)


def _sum(qs: QuerySet, column: str) -> Decimal:
    return qs.aggregate(s=Coalesce(Sum(column), Value(ZERO, output_field=_MONEY)))["s"]


def month_start(day: date, back: int = 0) -> date:
    year, month = day.year, day.month - back
    while month <= 0:
        year, month = year - 1, month + 12
    return date(year, month, 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


# --- dashboard -----------------------------------------------------------------------------------

def ar_aging(*, currency: str, today: date) -> list[Decimal]:
    """Open amount due per aging bucket (AGING_BUCKETS order) for one currency: analytics' AR aging
    (the one definition, also behind GET /api/v1/analytics/ar_aging/)."""
    buckets = analytics_ar_aging(currency=currency, as_of=today)["buckets"]
    return [buckets[key] for key in ANALYTICS_AGING_KEYS]


def invoice_currencies() -> list[str]:
    """Currencies with issued invoices, the busiest first."""
    rows = (Invoice.objects.filter(status__in=ISSUED).values("currency").annotate(n=Count("id"))
            .order_by("-n", "currency"))
    return [r["currency"] for r in rows]


@dataclass
class MonthFigures:
    currency: str
    invoiced: Decimal
    cash: Decimal
    outstanding: Decimal
    overdue: Decimal


def month_figures(*, currency: str, today: date) -> MonthFigures:
    start, end = month_start(today), _next_month(today)
    issued = Invoice.objects.filter(status__in=ISSUED, currency=currency, issue_date__gte=start, issue_date__lt=end)
    open_ = Invoice.objects.filter(status=InvoiceStatus.FINALIZED, currency=currency)
    return MonthFigures(
        currency=currency,
        invoiced=_sum(issued, "total"),
        cash=_sum(cash_payments().filter(currency=currency, paid_on__gte=start, paid_on__lt=end), "amount_applied"),
        outstanding=_sum(open_, "amount_due"),
        overdue=_sum(open_.filter(due_date__lt=today), "amount_due"),
    )


def monthly_series(*, currency: str, today: date, months: int = 6) -> dict:
    """Invoiced (issued invoices' totals by issue month) and cash recorded (payments by date) per month."""
    labels, invoiced, cash = [], [], []
    for back in range(months - 1, -1, -1):
        start = month_start(today, back)
        end = _next_month(start)
        labels.append(start.strftime("%b %Y"))
        invoiced.append(_sum(Invoice.objects.filter(status__in=ISSUED, currency=currency, issue_date__gte=start,
                                                    issue_date__lt=end), "total"))
        cash.append(_sum(cash_payments().filter(currency=currency, paid_on__gte=start, paid_on__lt=end), "amount_applied"))
    return {"labels": labels, "invoiced": invoiced, "cash": cash}


def mrr_series(*, currency: str, today: date, months: int = 6) -> dict:
    """The MRR bridge of the last `months` months (analytics' ledger) and invoiced usage revenue."""
    start, end = month_start(today, months - 1), month_start(today)
    bridge = mrr_bridge(currency=currency, start=start, end=end)
    usage = usage_revenue(currency=currency, start=start, end=end)
    return {"labels": [b.month.strftime("%b %Y") for b in bridge], "bridge": bridge,
            "usage": [u["usage_revenue"] for u in usage]}


def cash_payments() -> QuerySet[Payment]:
    """Payments that brought money in (succeeded, possibly refunded since): their `amount_applied`
    is what they paid on the invoice (refunds are money going out, not shown as negative cash here)."""
    return Payment.objects.filter(status__in=COLLECTED)


COLLECTED = [PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED]


def failed_payments_open() -> QuerySet[Payment]:
    """Failed payments (declined charges) of invoices that are still open: what finance chases."""
    return Payment.objects.filter(status=PaymentStatus.FAILED, invoice__status=InvoiceStatus.FINALIZED)


def _dunning_open_count() -> int:
    return DunningCase.objects.filter(status__in=LIVE_CASE_STATUSES).count()


def dead_letters_open() -> QuerySet[DeadLetterEvent]:
    return DeadLetterEvent.objects.exclude(replay_status__in=[ReplayStatus.ACCEPTED, ReplayStatus.DUPLICATE])


@dataclass
class DashboardCounts:
    drafts_for_review: int
    drafts: int
    open_invoices: int
    overdue_invoices: int
    dead_letters: int
    last_run: BillingRun | None
    failed_payments: int = 0
    failed_payment_invoices: int = 0
    dunning_open: int = 0


def dashboard_counts(*, today: date) -> DashboardCounts:
    drafts = Invoice.objects.filter(status=InvoiceStatus.DRAFT).aggregate(
        n=Count("id"), review=Count("id", filter=Q(needs_review=True)))
    open_ = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).aggregate(
        n=Count("id"), overdue=Count("id", filter=Q(due_date__lt=today)))
    return DashboardCounts(drafts_for_review=drafts["review"], drafts=drafts["n"], open_invoices=open_["n"],
                           overdue_invoices=open_["overdue"], dead_letters=dead_letters_open().count(),
                           last_run=BillingRun.objects.order_by("-started_at", "-id").first(),
                           dunning_open=_dunning_open_count(),
                           **failed_payments_open().aggregate(failed_payments=Count("id"),
                                                              failed_payment_invoices=Count("invoice_id", distinct=True)))


# --- customers -----------------------------------------------------------------------------------

def customers_page(*, q: str = "", currency: str = "", country: str = "", balance: str = "") -> QuerySet[Customer]:
    # Subqueries, not two joined aggregates: joining invoices and subscriptions at once would add each
    # invoice's amount once per subscription.
    open_due = (Invoice.objects.filter(customer=OuterRef("pk"), status=InvoiceStatus.FINALIZED).order_by()
                .values("customer").annotate(s=Sum("amount_due")).values("s"))
    live = (Subscription.objects.filter(customer=OuterRef("pk"), end_date__isnull=True).order_by()
            .values("customer").annotate(n=Count("id")).values("n"))
    qs = Customer.objects.annotate(
        open_due=Coalesce(Subquery(open_due, output_field=_MONEY), Value(ZERO, output_field=_MONEY)),
        live_subscriptions=Coalesce(Subquery(live), Value(0)),
    )
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(external_id__icontains=q) | Q(email__icontains=q)
                       | Q(billing_email__icontains=q))
    if currency:
        qs = qs.filter(currency=currency.upper())
    if country:
        qs = qs.filter(country=country.upper())
    if balance == "due":
        qs = qs.filter(open_due__gt=0)
    elif balance == "clear":
        qs = qs.filter(open_due=0)
    return qs.order_by("name", "id")


@dataclass
class CustomerBalances:
    currency: str
    credit_balance: Decimal
    prepaid_available: Decimal
    open_due: Decimal
    overdue: Decimal


def customer_balances(*, customer: Customer, today: date) -> CustomerBalances:
    open_ = Invoice.objects.filter(customer=customer, status=InvoiceStatus.FINALIZED)
    return CustomerBalances(
        currency=customer.currency,
        credit_balance=customer_credit_balance(customer=customer, currency=customer.currency),
        prepaid_available=prepaid_credit_available(customer=customer, currency=customer.currency),
        open_due=_sum(open_, "amount_due"),
        overdue=_sum(open_.filter(due_date__lt=today), "amount_due"),
    )


def _zone(name: str):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass
class UsageSeries:
    metric: str
    name: str
    labels: list[str] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)


def customer_usage_series(*, customer: Customer, today: date, days: int = 30) -> list[UsageSeries]:
    """Daily usage per metric over the `days` customer-local days ending `today` (the customer's date): event count for count and
    unique_count metrics (distinct values per day would mislead once summed), the value's sum otherwise."""
    tz = _zone(customer.timezone)
    first = today - timedelta(days=days - 1)
    rows = (UsageEvent.objects.filter(customer_id=customer.pk, timestamp__gte=local_midnight_utc(first, customer.timezone))
            .annotate(day=TruncDate("timestamp", tzinfo=tz))
            .values("metric_id", "metric__code", "metric__name", "metric__aggregation", "day")
            .annotate(n=Count("id"), total=Sum("value")).order_by("metric__code", "day"))
    series: dict[int, UsageSeries] = {}
    by_day: dict[int, dict[date, Decimal]] = {}
    for row in rows:
        series.setdefault(row["metric_id"], UsageSeries(metric=row["metric__code"], name=row["metric__name"]))
        counted = row["metric__aggregation"] in ("count", "unique_count") or row["total"] is None
        by_day.setdefault(row["metric_id"], {})[row["day"]] = Decimal(row["n"]) if counted else row["total"]
    for metric_id, metric in series.items():
        for offset in range(days):
            day = first + timedelta(days=offset)
            metric.labels.append(day.isoformat())
            value = by_day[metric_id].get(day, ZERO)
            metric.values.append(value.normalize() if value else ZERO)
    return list(series.values())


def audit_timeline(*, customer: Customer, limit: int = 60) -> list[AuditEvent]:
    """Business events about the customer, its subscriptions, invoices and credit notes, newest first."""
    invoice_ids = [str(i) for i in Invoice.objects.filter(customer=customer).values_list("id", flat=True)]
    sub_ids = [str(i) for i in Subscription.objects.filter(customer=customer).values_list("id", flat=True)]
    note_ids = [str(i) for i in CreditNote.objects.filter(customer=customer).values_list("id", flat=True)]
    query = (Q(object_type="customers.customer", object_id=str(customer.pk))
             | Q(object_type="invoicing.invoice", object_id__in=invoice_ids)
             | Q(object_type="subscriptions.subscription", object_id__in=sub_ids)
             | Q(object_type="invoicing.creditnote", object_id__in=note_ids))
    return list(AuditEvent.objects.filter(query).order_by("-created_at")[:limit])


def invoice_history(*, invoice: Invoice) -> list[AuditEvent]:
    note_ids = [str(i) for i in invoice.credit_notes.values_list("id", flat=True)]
    return list(AuditEvent.objects.filter(
        Q(object_type="invoicing.invoice", object_id=str(invoice.pk))
        | Q(object_type="invoicing.creditnote", object_id__in=note_ids)).order_by("-created_at")[:100])


# --- invoices ------------------------------------------------------------------------------------

def invoices_page(*, q: str = "", status: str = "", currency: str = "", customer: str = "",
                  due: str = "", today: date | None = None) -> QuerySet[Invoice]:
    qs = Invoice.objects.select_related("customer", "subscription")
    if q:
        qs = qs.filter(Q(number__icontains=q) | Q(customer__name__icontains=q) | Q(customer__external_id__icontains=q))
    if status == "review":
        qs = qs.filter(status=InvoiceStatus.DRAFT, needs_review=True)
    elif status:
        qs = qs.filter(status=status)
    if currency:
        qs = qs.filter(currency=currency.upper())
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if due == "overdue" and today:
        qs = qs.filter(status=InvoiceStatus.FINALIZED, due_date__lt=today)
    elif due == "open":
        qs = qs.filter(status=InvoiceStatus.FINALIZED, amount_due__gt=0)
    return qs.order_by("-issue_date", "-created_at")


# --- global search -------------------------------------------------------------------------------

@dataclass
class SearchHit:
    kind: str
    label: str
    detail: str
    url: str


def global_search(*, q: str, limit: int = 8) -> list[SearchHit]:
    q = (q or "").strip()
    if len(q) < 2:
        return []
    hits: list[SearchHit] = []
    for c in Customer.objects.filter(Q(name__icontains=q) | Q(external_id__icontains=q) | Q(email__icontains=q))[:limit]:
        hits.append(SearchHit("Customer", c.name, c.external_id, reverse("backoffice:customer", args=[c.external_id])))
    for inv in Invoice.objects.select_related("customer").filter(number__icontains=q)[:limit]:
        hits.append(SearchHit("Invoice", inv.number, f"{inv.customer.name} · {inv.status}",
                              reverse("backoffice:invoice", args=[inv.pk])))
    for sub in Subscription.objects.select_related("customer").filter(external_id__icontains=q)[:limit]:
        hits.append(SearchHit("Subscription", sub.external_id, f"{sub.customer.name} · {sub.status}",
                              reverse("backoffice:customer", args=[sub.customer.external_id]) + f"#sub-{sub.pk}"))
    match = Q(reference__icontains=q) | Q(stripe_payment_intent__iexact=q) | Q(stripe_charge__iexact=q)
    try:
        match |= Q(pk=uuid.UUID(q))
    except ValueError:
        pass
    for pay in Payment.objects.select_related("customer", "invoice").filter(match).order_by("-created_at")[:limit]:
        hits.append(SearchHit("Payment", format_money_display(pay.amount, pay.currency),
                              f"{pay.customer.name} · {pay.invoice.number or 'draft'} · {pay.get_method_display()} · {pay.status}",
                              reverse("backoffice:payment", args=[pay.pk])))
    return hits


def payments_page(*, status: str = "", method: str = "", customer: str = "", currency: str = "", q: str = "",
                  start: date | None = None, end: date | None = None) -> QuerySet[Payment]:
    """Payments, newest first, filtered; `start`/`end` bound the day it was paid (or tried, for a
    failed charge) as a half-open range."""
    rows = Payment.objects.select_related("customer", "invoice", "attempt").order_by("-created_at", "pk")
    if status in PaymentStatus.values:
        rows = rows.filter(status=status)
    if method:
        rows = rows.filter(method=method)
    if customer:
        rows = rows.filter(customer__external_id=customer)
    if currency:
        rows = rows.filter(currency=currency.upper())
    if q:
        rows = rows.filter(Q(reference__icontains=q) | Q(invoice__number__iexact=q) | Q(stripe_payment_intent__iexact=q)
                           | Q(customer__name__icontains=q) | Q(customer__external_id__iexact=q))
    day = Coalesce("paid_on", TruncDate("created_at"))
    if start:
        rows = rows.annotate(day=day).filter(day__gte=start)
    if end:
        rows = rows.annotate(day=day).filter(day__lt=end)
    return rows
