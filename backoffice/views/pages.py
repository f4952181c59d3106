"""Dashboard, global search and customers."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from backoffice import selectors
from backoffice.roles import viewer_required
from backoffice.views.base import page, paginate, query_without_page
from common.money import format_money
from common.timeutil import local_date
from customers.models import Customer
from invoicing.models import CreditNote, Invoice
from payments.models import Payment
from payments.selectors import payment_methods_for
from dunning.selectors import case_next_action, dunning_cases_list
from subscriptions.models import Subscription


def _chart_number(value, currency: str | None = None) -> str:
    """Chart data travel as exact decimal strings (money quantized to its currency, as the API shows
    it); the page's script turns them into numbers for drawing only."""
    return format_money(value, currency) if currency else format(value, "f")


def mrr_charts(currency: str, mrr: dict) -> dict:
    """The MRR bridge (movements stacked, MRR at month end as a line) and usage revenue charts."""
    bridge = mrr["bridge"]

    def money(values):
        return [_chart_number(v, currency) for v in values]
    return {
        "mrr": {"labels": mrr["labels"], "currency": currency, "stacked": True, "datasets": [
            {"label": "New", "data": money(b.new for b in bridge)},
            {"label": "Expansion", "data": money(b.expansion for b in bridge)},
            {"label": "Reactivation", "data": money(b.reactivation for b in bridge)},
            {"label": "Contraction", "data": money(-b.contraction for b in bridge)},
            {"label": "Churn", "data": money(-b.churn for b in bridge)},
            {"label": "MRR at month end", "data": money(b.mrr for b in bridge), "type": "line"}]},
        "usage": {"labels": mrr["labels"], "currency": currency,
                  "datasets": [{"label": f"Usage revenue ({currency})", "data": money(mrr["usage"])}]},
    }


@viewer_required
def dashboard(request):
    today = timezone.localdate()
    currencies = selectors.invoice_currencies()
    currency = request.GET.get("currency", "").upper()
    if currency not in currencies:
        currency = currencies[0] if currencies else "USD"
    aging = selectors.ar_aging(currency=currency, today=today)
    series = selectors.monthly_series(currency=currency, today=today)
    mrr = selectors.mrr_series(currency=currency, today=today)
    bridge = mrr["bridge"]
    charts = {
        "aging": {"labels": list(selectors.AGING_BUCKETS), "currency": currency,
                  "datasets": [{"label": f"Amount due ({currency})", "data": [_chart_number(v, currency) for v in aging]}]},
        "cash": {"labels": series["labels"], "currency": currency,
                 "datasets": [{"label": f"Invoiced ({currency})", "data": [_chart_number(v, currency) for v in series["invoiced"]]},
                              {"label": f"Cash recorded ({currency})", "data": [_chart_number(v, currency) for v in series["cash"]]}]},
        **mrr_charts(currency, mrr),
    }
    return page(request, "backoffice/dashboard.html", "dashboard",
                counts=selectors.dashboard_counts(today=today), currency=currency, currencies=currencies,
                month=selectors.month_start(today), aging=list(zip(selectors.AGING_BUCKETS, aging)),
                figures=[selectors.month_figures(currency=c, today=today) for c in currencies] or
                [selectors.month_figures(currency=currency, today=today)],
                series=list(zip(series["labels"], series["invoiced"], series["cash"])), charts=charts,
                bridge=list(zip(mrr["labels"], bridge, mrr["usage"])))


@viewer_required
def search(request):
    q = request.GET.get("q", "")
    hits = selectors.global_search(q=q)
    if request.htmx:
        return render(request, "backoffice/partials/search_results.html", {"hits": hits, "q": q})
    return page(request, "backoffice/search.html", "", hits=hits, q=q)


@viewer_required
def customers(request):
    filters = {k: request.GET.get(k, "").strip() for k in ("q", "currency", "country", "balance")}
    rows = paginate(request, selectors.customers_page(**filters))
    context = {"rows": rows, "filters": filters, "query": query_without_page(request),
               "currencies": Customer.objects.order_by().values_list("currency", flat=True).distinct()}
    if request.htmx and request.htmx.target == "customer-table":
        return render(request, "backoffice/partials/customer_table.html", context)
    return page(request, "backoffice/customers.html", "customers", **context)


@viewer_required
def customer(request, external_id: str):
    obj = get_object_or_404(Customer, external_id=external_id)
    today = timezone.localdate()
    usage = selectors.customer_usage_series(customer=obj, today=local_date(timezone.now(), obj.timezone))
    usage_charts = [{"id": f"usage-{i}", "data_id": f"usage-{i}-data", "title": s.name, "metric": s.metric,
                     "chart": {"labels": s.labels, "datasets": [{"label": s.metric,
                                                                 "data": [_chart_number(v) for v in s.values]}]}}
                    for i, s in enumerate(usage)]
    return page(
        request, "backoffice/customer.html", "customers", customer=obj,
        balances=selectors.customer_balances(customer=obj, today=today),
        subscriptions=Subscription.objects.filter(customer=obj).select_related("plan_version__plan").order_by("-start_date"),
        invoices=Invoice.objects.filter(customer=obj).order_by("-issue_date", "-created_at")[:50],
        payments=Payment.objects.filter(customer=obj).select_related("invoice", "attempt__payment_method").order_by("-created_at")[:50],
        payment_methods=payment_methods_for(customer=obj),
        dunning_cases=[{"case": c, "next": case_next_action(c)} for c in dunning_cases_list(customer=obj.external_id)[:10]],
        credit_notes=CreditNote.objects.filter(customer=obj).select_related("invoice").order_by("-issue_date")[:50],
        grants=obj.credit_grants.order_by("-created_at")[:20],
        balance_transactions=obj.balance_transactions.order_by("-created_at")[:20],
        usage_charts=usage_charts, timeline=selectors.audit_timeline(customer=obj))
