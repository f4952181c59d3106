from django.contrib import admin

from analytics.models import MrrMovement


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
