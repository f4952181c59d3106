"""Revenue page (revrec): the month's rollforward, three-way reconciliation, trial balance and the
waterfall of the twelve billing months up to it, read from `revrec.reports` (the API's own reports);
the journal with filters; CSV / GL downloads that are the revenue API's own views served to the
signed-in session; and "close month" for finance admins, which calls `revrec.close.revrec_close`."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

from backoffice import selectors
from backoffice.roles import admin_required, viewer_required
from backoffice.views.base import page, paginate, query_without_page
from common.errors import ApplicationError
from revrec import api as revrec_api
from revrec import reports
from revrec.close import parse_month, revrec_close
from revrec.models import Account, AccountingPeriod, JournalEntry, JournalLine
from revrec.schedules import month_end

CSV_VIEWS = {"journal": revrec_api.JournalCsvView, "waterfall": revrec_api.WaterfallCsvView,
             "rollforward": revrec_api.RollforwardCsvView, "reconciliation": revrec_api.ReconciliationCsvView,
             "trial_balance": revrec_api.TrialBalanceCsvView, "forecast": revrec_api.ForecastCsvView}

# The revenue API's CSV views for signed-in finance staff: session instead of API key (the page
# guard checks the role), GET only, so no CSRF concern. One CSV shape, the API's.
_CSV = {name: view.as_view(authentication_classes=[SessionAuthentication], permission_classes=[AllowAny])
        for name, view in CSV_VIEWS.items()}

GL_FORMATS = [("canonical", "Journal CSV"), ("quickbooks", "QuickBooks CSV"), ("xero", "Xero CSV")]
SOURCES = ["invoice", "payment", "credit_note", "void", "recognition", "refund", "uncollectible"]


def _currency(request) -> tuple[str, list[str]]:
    currencies = selectors.invoice_currencies()
    currency = request.GET.get("currency", "").upper()
    if currency not in currencies:
        currency = currencies[0] if currencies else "USD"
    return currency, currencies


def _month(request, today: date) -> date:
    """The chosen month (?month=YYYY-MM), by default the last month (the one to close)."""
    try:
        return parse_month(request.GET["month"])
    except (KeyError, ValueError):
        return selectors.month_start(today, 1)


@viewer_required
def revenue_csv(request, name: str):
    if name not in _CSV or request.method != "GET":
        raise Http404("No such report.")
    return _CSV[name](request)


def waterfall_chart(data: dict) -> dict:
    """Recognized revenue per month of the window, stacked by the month it was billed in, and the
    deferred balance at each month's end as a line."""
    months = [row["month"] for row in data["deferred_balance"]]
    datasets = []
    for row in data["rows"]:
        by = {r["month"]: r["amount"] for r in row["recognized"]}
        values = [by.get(m, "0") for m in months]
        if any(v.strip("0.-") for v in values):
            datasets.append({"label": f"Billed {row['billed_month']}", "data": values})
    datasets.append({"label": "Deferred at month end", "type": "line",
                     "data": [row["closing_deferred"] for row in data["deferred_balance"]]})
    return {"labels": months, "currency": data["currency"], "stacked": True, "datasets": datasets}


@viewer_required
def revenue(request):
    today = timezone.localdate()
    revrec_api.fresh()
    currency, currencies = _currency(request)
    month = _month(request, today)
    first = selectors.month_start(month, 11)
    waterfall = reports.waterfall(start=first, months=12, currency=currency)
    closed = AccountingPeriod.objects.order_by("-month")
    return page(request, "backoffice/revenue.html", "revenue", currency=currency, currencies=currencies,
                month=month, month_param=f"{month:%Y-%m}", first_param=f"{first:%Y-%m}",
                next_month_param=f"{selectors._next_month(month):%Y-%m}", gl_formats=GL_FORMATS,
                rollforward=reports.rollforward(month=month, currency=currency),
                reconciliation=reports.reconciliation(month=month, currency=currency),
                trial_balance=reports.trial_balance(currency=currency, through=month_end(month)),
                waterfall=waterfall, waterfall_months=[r["month"] for r in waterfall["deferred_balance"]],
                chart=waterfall_chart(waterfall), forecast=reports.forecast(currency=currency, months=12),
                period=closed.filter(month=month).first(), closed=closed[:24],
                month_ended=month < selectors.month_start(today))


@viewer_required
def journal(request):
    revrec_api.fresh()
    filters = {k: request.GET.get(k, "").strip() for k in ("from", "to", "currency", "source", "account", "q")}
    rows = JournalEntry.objects.select_related("customer", "invoice").prefetch_related("lines").order_by("-date", "-pk")
    errors = []
    for key, lookup in (("from", "date__gte"), ("to", "date__lt")):
        if filters[key]:
            try:
                rows = rows.filter(**{lookup: date.fromisoformat(filters[key])})
            except ValueError:
                errors.append(f"{key}: not a date (YYYY-MM-DD)")
    if filters["currency"]:
        rows = rows.filter(currency=filters["currency"].upper())
    if filters["source"] in SOURCES:
        rows = rows.filter(source_type=filters["source"])
    if filters["account"] in Account.values:
        rows = rows.filter(pk__in=JournalLine.objects.filter(account=filters["account"]).values("entry_id"))
    if filters["q"]:
        q = filters["q"]
        rows = rows.filter(Q(memo__icontains=q) | Q(invoice__number__iexact=q) | Q(customer__external_id__iexact=q))
    # The GL downloads take the API's filters (from, to, currency) only.
    export = {k: filters[k] for k in ("from", "to", "currency") if filters[k] and not any(e.startswith(k) for e in errors)}
    return page(request, "backoffice/journal.html", "revenue", rows=paginate(request, rows), filters=filters,
                errors=errors, sources=SOURCES, gl_formats=GL_FORMATS, accounts=Account.choices, query=query_without_page(request),
                export_query=urlencode(export), currencies=selectors.invoice_currencies())


@admin_required
def revenue_close(request):
    try:
        month = parse_month(request.POST.get("month", ""))
    except ValueError as exc:
        messages.error(request, f"month: {exc}")
        return redirect("backoffice:revenue")
    try:
        summary = revrec_close(month=month, actor=request.user.get_username())
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if summary["already_closed"]:
            messages.success(request, f"{month:%Y-%m} was closed already; nothing more to recognize.")
        else:
            messages.success(request, f"Closed {month:%Y-%m}: {summary['entries']} recognition entries posted.")
    response = redirect("backoffice:revenue")
    response["Location"] += f"?month={month:%Y-%m}" + (f"&currency={request.POST['currency']}"
                                                         if request.POST.get("currency", "").isalpha() else "")
    return response
