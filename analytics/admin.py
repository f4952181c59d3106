from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from analytics.anomalies import anomaly_confirm, anomaly_dismiss
from analytics.models import Anomaly, MrrMovement, UsageAlert, UsageAlertTrigger
from common.errors import ApplicationError


@admin.register(MrrMovement)
class MrrMovementAdmin(admin.ModelAdmin):
    """Read-only: the ledger is derived from the subscription history (`analytics_rebuild`)."""

    list_display = ("month", "customer", "currency", "kind", "amount", "mrr_before", "mrr_after")
    list_filter = ("currency", "kind")
    list_select_related = ("customer",)
    date_hierarchy = "month"
    search_fields = ("customer__external_id", "customer__name")
    readonly_fields = [f.name for f in MrrMovement._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Usage intelligence ----------------------------------------------------------------------------

@admin.register(Anomaly)
class AnomalyAdmin(admin.ModelAdmin):
    """Read-only; finance dismisses or confirms through the actions (the same services as the API).
    Viewers (no change permission) see no actions and are refused if they post one."""

    list_display = ("date", "kind", "customer", "subscription", "billable_metric", "observed", "expected", "score",
                    "status")
    list_filter = ("status", "kind")
    list_select_related = ("customer", "subscription", "billable_metric")
    date_hierarchy = "date"
    search_fields = ("customer__external_id", "customer__name", "subscription__external_id")
    readonly_fields = [f.name for f in Anomaly._meta.fields]
    actions = ["dismiss_selected", "confirm_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only: no Save; dismiss/confirm are the actions

    def has_delete_permission(self, request, obj=None):
        return False

    def _each(self, request, queryset, service, verb):
        if not request.user.has_perm("analytics.change_anomaly"):
            raise PermissionDenied
        for anomaly in queryset.order_by("pk"):
            try:
                service(anomaly=anomaly, actor=request.user)
                self.message_user(request, f"{verb} {anomaly}.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, f"{anomaly}: {exc.message}", messages.ERROR)

    @admin.action(description="Dismiss selected anomalies (normal: remember the pattern)")
    def dismiss_selected(self, request, queryset):
        self._each(request, queryset, anomaly_dismiss, "Dismissed")

    @admin.action(description="Confirm selected anomalies")
    def confirm_selected(self, request, queryset):
        self._each(request, queryset, anomaly_confirm, "Confirmed")


class UsageAlertTriggerInline(admin.TabularInline):
    model = UsageAlertTrigger
    extra = 0
    can_delete = False
    readonly_fields = ("period_start", "triggered_at", "units", "amount")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UsageAlert)
class UsageAlertAdmin(admin.ModelAdmin):
    """Read-only: alerts are created through the API (POST /subscriptions/{id}/alerts/)."""

    list_display = ("id", "subscription", "billable_metric", "threshold_units", "threshold_amount", "created_at")
    list_select_related = ("subscription", "billable_metric")
    search_fields = ("subscription__external_id", "billable_metric__code")
    readonly_fields = [f.name for f in UsageAlert._meta.fields]
    inlines = [UsageAlertTriggerInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
