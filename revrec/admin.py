"""Read-only admin for revenue recognition: schedules, the journal, closed months, and a reports
page (waterfall, rollforward, trial balance, reconciliation, forecast) from the journal only.
Nothing here writes: postings come from `revrec_sync` / `revrec_close`."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from common.errors import ApplicationError
from revrec import reports
from revrec.models import AccountingPeriod, JournalEntry, JournalLine, PerformanceObligation, ScheduleEntry, UsageAccrual
from revrec.schedules import month_end, month_start
from revrec.selectors import parse_currency_param, parse_month_param


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ScheduleEntryInline(ReadOnlyInline):
    model = ScheduleEntry
    fields = readonly_fields = ("month", "amount", "treatment", "posted_entry")


@admin.register(PerformanceObligation)
class PerformanceObligationAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "kind", "customer", "currency", "line_amount", "discount", "amount", "credited",
                    "service_start", "service_end", "voided")
    list_filter = ("kind", "currency", "voided")
    search_fields = ("invoice__number", "customer__external_id", "customer__name")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "service_start"
    inlines = [ScheduleEntryInline]
    readonly_fields = [f.name for f in PerformanceObligation._meta.fields]


class JournalLineInline(ReadOnlyInline):
    model = JournalLine
    fields = readonly_fields = ("account", "debit", "credit", "currency", "invoice", "obligation")


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("date", "source_type", "kind", "memo", "currency", "document_date", "note")
    list_filter = ("source_type", "kind", "currency")
    search_fields = ("memo", "source_id", "invoice__number", "customer__external_id")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "date"
    inlines = [JournalLineInline]
    readonly_fields = [f.name for f in JournalEntry._meta.fields]

    def get_urls(self):
        return [path("reports/", self.admin_site.admin_view(self.reports_view), name="revrec_reports"), *super().get_urls()]

    def reports_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        error = ""
        today = timezone.localdate()
        try:
            month = parse_month_param(request.GET.get("month") or f"{today:%Y-%m}", "month")
            currency = parse_currency_param(request.GET.get("currency"))
        except ApplicationError as exc:
            error, month, currency = str(exc), month_start(today), "USD"
        start = month_start(month.replace(month=1))
        context = {
            **self.admin_site.each_context(request), "title": "Revenue reports", "error": error,
            "month": f"{month:%Y-%m}", "currency": currency,
            "trial_balance": reports.trial_balance(currency=currency, through=month_end(month)),
            "rollforward": reports.rollforward(month=month, currency=currency),
            "reconciliation": reports.reconciliation(month=month, currency=currency),
            "waterfall": reports.waterfall(start=start, months=12, currency=currency),
            "forecast": reports.forecast(currency=currency, start=month, months=12),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/revrec/reports.html", context)


@admin.register(AccountingPeriod)
class AccountingPeriodAdmin(ReadOnlyAdmin):
    list_display = ("month", "closed_at", "closed_by")
    readonly_fields = ("month", "closed_at", "closed_by", "summary")


@admin.register(UsageAccrual)
class UsageAccrualAdmin(ReadOnlyAdmin):
    """Usage accrued at month closes before it was invoiced, and the invoice that released it."""

    list_display = ("month", "subscription", "currency", "period_start", "period_end", "amount", "cumulative",
                    "released_invoice")
    list_filter = ("month", "currency")
    raw_id_fields = ("subscription", "customer", "entry", "released_invoice")
