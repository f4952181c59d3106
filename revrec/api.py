"""Revenue recognition API (API.md "Revenue recognition"); scope billing:read. Thin: parse, call
a selector/report, shape."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError
from common.money import format_money
from common.pagination import PagePagination
from customers.models import Customer
from revrec import export, reports
from revrec.postings import revrec_sync
from revrec.schedules import month_end
from revrec.selectors import (parse_currency_param, parse_date_param, parse_int_param, parse_month_param,
                              schedules_for_invoice)

CURRENCY = OpenApiParameter("currency", str, description="ISO 4217, default USD")
MONTH = OpenApiParameter("month", str, description="YYYY-MM", required=True)


class JournalLineSerializer(serializers.Serializer):
    account = serializers.CharField()
    debit = serializers.CharField()
    credit = serializers.CharField()


class JournalEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    memo = serializers.CharField()
    source = serializers.CharField()
    source_id = serializers.CharField()
    kind = serializers.CharField()
    currency = serializers.CharField()
    invoice = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    lines = JournalLineSerializer(many=True)


def entry_json(entry) -> dict:
    return {"id": entry.pk, "date": entry.date.isoformat(), "memo": entry.memo, "source": entry.source_type,
            "source_id": entry.source_id, "kind": entry.kind, "currency": entry.currency,
            "invoice": str(entry.invoice_id) if entry.invoice_id else None, "document_date": entry.document_date.isoformat(),
            "note": entry.note,
            "lines": [{"account": ln.account, "debit": format_money(ln.debit, entry.currency),
                       "credit": format_money(ln.credit, entry.currency)} for ln in entry.lines.all()]}


def _csv(body: str | bytes, filename: str, content_type: str = "text/csv") -> HttpResponse:
    response = HttpResponse(body, content_type=content_type if content_type != "text/csv" else "text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def fresh() -> None:
    """Post source documents not yet in the journal before answering (the sweep is idempotent and
    cheap when nothing is pending), so a document finalized a moment ago is already in the answer.
    Recognition itself waits for the month's close."""
    revrec_sync()


def _entries(request):
    fresh()
    params = request.query_params
    start = parse_date_param(params.get("from"), "from")
    end = parse_date_param(params.get("to"), "to")
    if start and end and end < start:
        raise ApplicationError("to must not be before from.", fields={"to": ["before from"]})
    currency = parse_currency_param(params.get("currency"), default="") if params.get("currency") else None
    return reports.journal_entries(start=start, end=end, currency=currency)


class SchedulesView(APIView):
    @extend_schema(parameters=[OpenApiParameter("invoice", str, required=True)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        fresh()
        return Response({"results": schedules_for_invoice(invoice_id=request.query_params.get("invoice")), "next": None})


class JournalView(APIView):
    @extend_schema(parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str), CURRENCY],
                   responses={200: inline_serializer("PaginatedJournalEntryList", fields={
                       "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
                       "previous": serializers.CharField(allow_null=True),
                       "results": JournalEntrySerializer(many=True)})})
    def get(self, request):
        paginator = PagePagination()
        page = paginator.paginate_queryset(_entries(request), request, view=self)
        return paginator.get_paginated_response([entry_json(e) for e in page])


class IgnoreFormatNegotiation(BaseContentNegotiation):
    """`?format=` names the import file here, not a DRF renderer."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JournalCsvView(APIView):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str), CURRENCY,
                               OpenApiParameter("format", str, enum=["canonical", "quickbooks", "xero"])],
                   responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request):
        kind = request.query_params.get("format") or "canonical"
        if kind not in ("canonical", "quickbooks", "xero"):
            raise ApplicationError("format must be canonical, quickbooks or xero.",
                                   fields={"format": ["canonical | quickbooks | xero"]})
        entries = list(_entries(request))
        if kind == "canonical":
            return _csv(export.canonical_csv(entries), "journal.csv")
        if kind == "quickbooks":
            names = dict(Customer.objects.filter(pk__in={e.customer_id for e in entries}).values_list("pk", "name"))
            return _csv(export.quickbooks_csv(entries, names), "journal-quickbooks.csv")
        content_type, body = export.xero_export(entries)
        return _csv(body, "journal-xero.csv" if content_type == "text/csv" else "journal-xero.zip", content_type)


def _report_view(name, builder, parameters, csv_rows=None):
    class View(APIView):
        @extend_schema(parameters=parameters, responses={200: OpenApiTypes.OBJECT}, operation_id=f"revenue_{name}")
        def get(self, request):
            fresh()
            return Response(builder(request.query_params))

    class CsvView(APIView):
        @extend_schema(parameters=parameters, responses={(200, "text/csv"): OpenApiTypes.BINARY},
                       operation_id=f"revenue_{name}_csv")
        def get(self, request):
            fresh()
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            for row in csv_rows(builder(request.query_params)):
                writer.writerow(row)
            return _csv(out.getvalue(), f"{name}.csv")

    View.__name__ = f"{name.title()}View"
    CsvView.__name__ = f"{name.title()}CsvView"
    return View, CsvView


def _waterfall(params):
    return reports.waterfall(start=parse_month_param(params.get("from"), "from"),
                             months=parse_int_param(params.get("months"), "months", default=12, low=1, high=120),
                             currency=parse_currency_param(params.get("currency")))


def _waterfall_rows(data):
    months = [r["billed_month"] for r in data["rows"]]
    yield ["billed_month", "billed", *months, "credited", "remaining"]
    for row in data["rows"]:
        by = {r["month"]: r["amount"] for r in row["recognized"]}
        yield [row["billed_month"], row["billed"], *[by.get(m, "") for m in months], row["credited"], row["remaining"]]


def _rollforward(params):
    return reports.rollforward(month=parse_month_param(params.get("month"), "month"),
                               currency=parse_currency_param(params.get("currency")))


def _rollforward_rows(data):
    keys = ["month", "currency", "opening_deferred", "billed", "recognized", "credited", "closing_deferred"]
    yield keys
    yield [data[k] for k in keys]


def _reconciliation(params):
    return reports.reconciliation(month=parse_month_param(params.get("month"), "month"),
                                  currency=parse_currency_param(params.get("currency")))


def _reconciliation_rows(data):
    yield ["month", "currency", "comparison", "kind", "amount"]
    for key in ("billed", "collected", "recognized"):
        yield [data["month"], data["currency"], "total", key, data[key]]
    for comparison in ("billed_vs_collected", "billed_vs_recognized"):
        for item in data[comparison]:
            yield [data["month"], data["currency"], comparison, item["kind"], item["amount"]]


def _trial_balance(params):
    month = parse_month_param(params.get("month"), "month")
    return reports.trial_balance(currency=parse_currency_param(params.get("currency")), through=month_end(month))


def _trial_balance_rows(data):
    yield ["account", "debit", "credit", "balance"]
    for row in data["accounts"]:
        yield [row["account"], row["debit"], row["credit"], row["balance"]]
    yield ["total", data["total_debit"], data["total_credit"], data["total"]]


def _forecast(params):
    start = parse_month_param(params.get("from"), "from") if params.get("from") else None
    return reports.forecast(currency=parse_currency_param(params.get("currency")), start=start,
                            months=parse_int_param(params.get("months"), "months", default=24, low=1, high=240))


def _forecast_rows(data):
    yield ["month", "amount"]
    for row in data["months"]:
        yield [row["month"], row["amount"]]


FROM_MONTH = OpenApiParameter("from", str, description="YYYY-MM")
MONTHS = OpenApiParameter("months", int)
WaterfallView, WaterfallCsvView = _report_view("waterfall", _waterfall, [OpenApiParameter("from", str, required=True), MONTHS, CURRENCY], _waterfall_rows)
RollforwardView, RollforwardCsvView = _report_view("rollforward", _rollforward, [MONTH, CURRENCY], _rollforward_rows)
ReconciliationView, ReconciliationCsvView = _report_view("reconciliation", _reconciliation, [MONTH, CURRENCY], _reconciliation_rows)
TrialBalanceView, TrialBalanceCsvView = _report_view("trial_balance", _trial_balance, [MONTH, CURRENCY], _trial_balance_rows)
ForecastView, ForecastCsvView = _report_view("forecast", _forecast, [FROM_MONTH, MONTHS, CURRENCY], _forecast_rows)
