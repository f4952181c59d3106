from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from common.admin_mixins import NoDeleteAdminMixin
from customers.models import ApiKey, Customer
from customers.services import api_key_revoke


@admin.register(Customer)
class CustomerAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("external_id", "name", "currency", "country", "collection_method", "created_at")
    list_filter = ("currency", "collection_method", "country", "tax_exempt")
    search_fields = ("external_id", "name", "email", "billing_email")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "updated_at", "stripe_customer_id")


@admin.register(ApiKey)
class ApiKeyAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "prefix", "scopes", "is_active", "last_used_at", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "key_hash", "scopes", "last_used_at", "revoked_at", "created_at", "updated_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key`, which shows the secret once

    @admin.display(boolean=True)
    def is_active(self, obj):
        return obj.is_active

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.order_by("pk"):
            api_key_revoke(api_key=key, actor=request.user)
            self.message_user(request, f"Revoked {key}.", messages.SUCCESS)
