"""Analytics page: the month's summary, the MRR bridge, usage revenue, cohorts and AR aging by
customer, all read from `analytics.selectors`; CSV downloads are the analytics API's own views
served to the signed-in session (no second CSV shape)."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

from analytics import api as analytics_api
from analytics.selectors import AGING_BUCKETS, analytics_summary, ar_aging, cohorts
from backoffice import selectors
from backoffice.roles import viewer_required
from backoffice.views.base import page
from backoffice.views.pages import mrr_charts

CSV_VIEWS = {"mrr": analytics_api.MrrBridgeView, "summary": analytics_api.SummaryView,
             "cohorts": analytics_api.CohortsView, "usage_revenue": analytics_api.UsageRevenueView,
             "ar_aging": analytics_api.ArAgingView}


# The analytics API views as CSV for signed-in finance staff: session instead of API key (the page
# guard below checks the role), GET only, so no CSRF concern.
_CSV = {name: view.as_view(authentication_classes=[SessionAuthentication], permission_classes=[AllowAny])
        for name, view in CSV_VIEWS.items()}


@viewer_required
def analytics_csv(request, name: str):
    if name not in _CSV or request.method != "GET":
        raise Http404("No such report.")
    return _CSV[name](request, format="csv")


@viewer_required
def analytics_page(request):
    today = timezone.localdate()
    currencies = selectors.invoice_currencies()
    currency = request.GET.get("currency", "").upper()
    if currency not in currencies:
        currency = currencies[0] if currencies else "USD"
    month = selectors.month_start(today)
    mrr = selectors.mrr_series(currency=currency, today=today, months=12)
    bridge = mrr["bridge"]
    charts = mrr_charts(currency, mrr)
    aging = ar_aging(currency=currency, as_of=today)
    return page(request, "backoffice/analytics.html", "analytics", currency=currency, currencies=currencies,
                month=month, summary=analytics_summary(currency=currency, month=month), charts=charts,
                bridge=list(zip(mrr["labels"], bridge, mrr["usage"])),
                cohorts=cohorts(currency=currency, start=selectors.month_start(today, 11)),
                aging=aging, aging_keys=AGING_BUCKETS, aging_labels=selectors.AGING_BUCKETS)
