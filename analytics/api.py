"""GET /api/v1/analytics/… (API.md "Analytics"), scope billing:read. Thin: parse, call a selector,
shape. Each endpoint also answers as CSV: `?format=csv` or the `.csv` route beside it.

Money is a decimal string in major units; rates are decimal-fraction strings ("0.05") or null when
their denominator is zero; months are `YYYY-MM`."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.forecast import revenue_forecast
from analytics.mrr import add_months, month_start
from common.errors import ApplicationError
from common.money import is_valid_currency
from customers.models import Customer

MAX_MONTHS = 120
RATE_KEYS = {"logo_churn_rate", "revenue_churn_rate", "nrr", "grr", "nrr_12m", "grr_12m"}


class CSVRenderer(renderers.BaseRenderer):
    """Renders `{"csv": [row dicts]}` (what the views hand it for format=csv) as a CSV file;
    an error body (a dict without "csv") is rendered as JSON text so nothing is lost."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, dict) or "csv" not in data:
            return renderers.JSONRenderer().render(data)
        rows = data["csv"]
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue().encode("utf-8")


def _plain(value, key: str | None = None):
    if isinstance(value, Decimal):
        return selectors.rate_str(value) if key in RATE_KEYS else f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_month(params, name: str, default: date | None = None) -> date:
    raw = params.get(name)
    if raw in (None, ""):
        if default is None:
            raise ApplicationError(f"'{name}' is required (YYYY-MM).", fields={name: ["required"]})
        return default
    try:
        parts = [int(p) for p in raw.split("-")]
        if len(parts) not in (2, 3) or len(raw.split("-")[0]) != 4:
            raise ValueError
        return date(parts[0], parts[1], 1) if len(parts) == 2 else month_start(date(*parts))
    except (ValueError, TypeError):
        raise ApplicationError(f"'{name}' must be a month YYYY-MM.", fields={name: ["not a month YYYY-MM"]}) from None


def parse_date(params, name: str, default: date) -> date:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApplicationError(f"'{name}' must be a date YYYY-MM-DD.", fields={name: ["not a date YYYY-MM-DD"]}) from None


def parse_currency(params) -> str:
    """Required unless every customer pays in one currency (then that one)."""
    raw = params.get("currency")
    if raw in (None, ""):
        currencies = list(Customer.objects.values_list("currency", flat=True).distinct()[:2])
        if len(currencies) == 1:
            return currencies[0]
        raise ApplicationError("'currency' is required (amounts of different currencies are never added).",
                               fields={"currency": ["required"]})
    code = raw.upper()
    if len(code) != 3 or not is_valid_currency(code):
        raise ApplicationError(f"'{raw}' is not an ISO 4217 currency code.", fields={"currency": ["unknown currency"]})
    return code


def parse_range(params, *, default_span: int = 12) -> tuple[date, date]:
    end = parse_month(params, "to", month_start(timezone.now().date()))
    start = parse_month(params, "from", add_months(end, -(default_span - 1)))
    if start > end:
        raise ApplicationError("'from' must not be after 'to'.", fields={"from": ["after 'to'"]})
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
        raise ApplicationError(f"At most {MAX_MONTHS} months per request.", fields={"from": [f"over {MAX_MONTHS} months"]})
    return start, end


class AnalyticsView(APIView):
    required_scopes = {"GET": "billing:read"}
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    filename = "analytics"

    def answer(self, request, body: dict, rows: list[dict]):
        if request.accepted_renderer.format == "csv":
            response = Response({"csv": [_plain(r) for r in rows]})
            response["Content-Disposition"] = f'attachment; filename="{self.filename}.csv"'
            return response
        return Response(_plain(body))


CURRENCY = OpenApiParameter("currency", str, description="ISO 4217; required when customers pay in several currencies")
FORMAT = OpenApiParameter("format", str, enum=["json", "csv"])


class MrrBridgeView(AnalyticsView):
    filename = "mrr"

    @extend_schema(parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str), CURRENCY, FORMAT],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        start, end = parse_range(request.query_params)
        rows = [r.as_dict() for r in selectors.mrr_bridge(currency=currency, start=start, end=end)]
        body = {"currency": currency, "from": f"{start:%Y-%m}", "to": f"{end:%Y-%m}", "results": rows, "next": None}
        return self.answer(request, body, [{"currency": currency, **r} for r in rows])


class SummaryView(AnalyticsView):
    filename = "summary"

    @extend_schema(parameters=[OpenApiParameter("month", str), CURRENCY, FORMAT], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        month = parse_month(request.query_params, "month", month_start(timezone.now().date()))
        body = selectors.analytics_summary(currency=currency, month=month)
        return self.answer(request, body, [body])


class CohortsView(AnalyticsView):
    filename = "cohorts"

    @extend_schema(parameters=[OpenApiParameter("from", str), CURRENCY, FORMAT], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        start = parse_month(request.query_params, "from", add_months(month_start(timezone.now().date()), -11))
        cohorts = selectors.cohorts(currency=currency, start=start)
        rows = [{"cohort": c["cohort"], "cohort_customers": c["customers"], "cohort_mrr": c["mrr"], **m}
                for c in cohorts for m in c["months"]]
        return self.answer(request, {"from": f"{start:%Y-%m}", "currency": currency, "cohorts": cohorts}, rows)


class UsageRevenueView(AnalyticsView):
    filename = "usage_revenue"

    @extend_schema(parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str), CURRENCY, FORMAT],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        start, end = parse_range(request.query_params)
        rows = selectors.usage_revenue(currency=currency, start=start, end=end)
        body = {"currency": currency, "from": f"{start:%Y-%m}", "to": f"{end:%Y-%m}", "results": rows, "next": None}
        return self.answer(request, body, [{"currency": currency, **r} for r in rows])


class ArAgingView(AnalyticsView):
    filename = "ar_aging"

    @extend_schema(parameters=[OpenApiParameter("as_of", str), CURRENCY, FORMAT], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        as_of = parse_date(request.query_params, "as_of", timezone.now().date())
        body = selectors.ar_aging(currency=currency, as_of=as_of)
        totals = {"customer": "TOTAL", **body["buckets"], "total": body["total"]}
        return self.answer(request, body, [*body["customers"], totals])


class ForecastView(AnalyticsView):
    filename = "forecast"

    @extend_schema(parameters=[OpenApiParameter("from", str, description="first forecast month (default: next month)"),
                               OpenApiParameter("months", int), CURRENCY, FORMAT],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, format=None):
        currency = parse_currency(request.query_params)
        start = parse_month(request.query_params, "from", add_months(month_start(timezone.now().date()), 1))
        raw = request.query_params.get("months") or "6"
        if not raw.isdigit() or not 1 <= int(raw) <= 24:
            raise ApplicationError("'months' must be an integer from 1 to 24.", fields={"months": ["1 to 24"]})
        forecast = revenue_forecast(currency=currency, start=start, months=int(raw))
        return self.answer(request, forecast, forecast["results"])
